import Foundation
import StockpileCore
import Testing

@Suite("Radix sort of 64-bit hashes")
struct RadixSortTests {
    @Test("sorts as sort() does: random keys, repeats, narrow and wide ranges, small and large arrays")
    func sortsAsSortDoes() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 2026
        print("radixSort seed \(seed)")
        var random = SplitMix64(seed: seed)
        // Keys of every kind the passes treat differently: full 64-bit spread, only low digits (the
        // upper passes are skipped), only high digits, few distinct values (many repeats), extremes.
        let shapes: [(String, (inout SplitMix64) -> UInt64)] = [
            ("full", { $0.next() }),
            ("low 20 bits", { $0.next() & 0xF_FFFF }),
            ("high bits", { $0.next() & 0xFFFF_0000_0000_0000 }),
            ("8 values", { $0.next() % 8 }),
            ("extremes", { $0.next() % 2 == 0 ? 0 : .max }),
        ]
        for count in [0, 1, 2, 4095, 4096, 10_000, 100_003] {
            for (name, make) in shapes {
                var keys = (0..<count).map { _ in make(&random) }
                let expected = keys.sorted()
                keys.radixSort()
                #expect(keys == expected, "\(name), \(count) keys (seed \(seed))")
            }
        }
    }
}
