// SplitMix64: a small, fast seeded generator that gives the same sequence on every machine, so a
// run (a benchmark, a flash sale, a randomized test) can be repeated from the seed it printed. The
// one copy the engine's tools and tests all use.

public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    @inlinable public init(seed: UInt64) { state = seed }

    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `range` (by the remainder: a slight bias, harmless for tests and load).
    @inlinable public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    /// A number in 0..<1 with 53 random bits.
    @inlinable public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// True with probability `p`.
    @inlinable public mutating func chance(_ p: Double) -> Bool { unit() < p }
}
