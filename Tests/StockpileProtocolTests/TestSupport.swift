// What the protocol tests share: a seeded generator, the seed a randomized test uses, and random
// cuts of a byte stream.

import Foundation

/// SplitMix64: small, fast, and the same sequence on every platform.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// The seed of a randomized test: STOCKPILE_SEED when set, otherwise `fallback`.
func seed(fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? fallback
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Sizes that cut `count` bytes into pieces: mostly small, now and then a large one, so both the
/// byte-at-a-time paths and the many-items-per-append paths of a parser run.
func randomChunks(for count: Int, using random: inout SeededRandom) -> [Int] {
    var chunks: [Int] = []
    var covered = 0
    while covered < count {
        let size = random.int(0...9) == 0 ? random.int(1...4096) : random.int(1...16)
        chunks.append(size)
        covered += size
    }
    return chunks
}
