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

    @Test("grouping positions by key lists each key's positions in order, with their places and each key's start")
    func groupsPositionsByKey() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 2026
        print("CountingSort seed \(seed)")
        var random = SplitMix64(seed: seed)
        for (count, keyCount) in [(0, 1), (1, 1), (5, 16), (300, 16), (1_000, 64), (50, 3)] {
            let keys = (0..<count).map { _ in Int(random.next() % UInt64(keyCount)) }
            var order = [Int](repeating: -1, count: count)
            var place = [Int](repeating: -1, count: count)
            var starts = [Int](repeating: 7, count: keyCount + 1)
            order.withUnsafeMutableBufferPointer { order in
                place.withUnsafeMutableBufferPointer { place in
                    starts.withUnsafeMutableBufferPointer { starts in
                        CountingSort.group(count: count, key: { keys[$0] }, order: order, starts: starts, place: place)
                    }
                }
            }
            // What a stable sort of the positions by key gives.
            let expected = (0..<count).sorted { (keys[$0], $0) < (keys[$1], $1) }
            #expect(order == expected, "\(count) positions, \(keyCount) keys (seed \(seed))")
            for i in 0..<count { #expect(order[place[i]] == i, "position \(i)'s place (seed \(seed))") }
            for k in 0..<keyCount {
                #expect(order[starts[k]..<starts[k + 1]].allSatisfy { keys[$0] == k }, "key \(k)'s range (seed \(seed))")
                #expect(starts[k + 1] - starts[k] == keys.filter { $0 == k }.count, "key \(k)'s count (seed \(seed))")
            }
        }
    }
}
