// A seeded generator (SplitMix64): the same seed gives the same sequence on every machine, which
// makes a buyer's plan repeatable from the seed printed at the start of a run.

import StockpileCore

public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<1 with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// A duration drawn evenly from `range`, to the nanosecond.
    mutating func duration(in range: ClosedRange<Duration>) -> Duration {
        let low = range.lowerBound.wholeNanoseconds
        let span = range.upperBound.wholeNanoseconds - low
        return .nanoseconds(low + Int64(unit() * Double(span)))
    }
}

extension Duration {
    /// The duration in seconds, for reports.
    var seconds: Double { Double(wholeNanoseconds) / 1e9 }
}
