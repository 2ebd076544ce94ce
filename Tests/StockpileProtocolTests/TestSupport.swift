// What the protocol tests share: a seeded generator, the seed a randomized test uses, and random
// cuts of a byte stream.

import Foundation
import StockpileCore

extension SplitMix64 {
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// The seed of a randomized test: STOCKPILE_SEED when set, otherwise `fallback`.
func seed(fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? fallback
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Sizes that cut `count` bytes into pieces: mostly small, now and then a large one, so both the
/// byte-at-a-time paths and the many-items-per-append paths of a parser run.
func randomChunks(for count: Int, using random: inout SplitMix64) -> [Int] {
    var chunks: [Int] = []
    var covered = 0
    while covered < count {
        let size = random.int(0...9) == 0 ? random.int(1...4096) : random.int(1...16)
        chunks.append(size)
        covered += size
    }
    return chunks
}
