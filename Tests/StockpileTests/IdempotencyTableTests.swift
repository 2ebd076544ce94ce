// The directory's table of names: setting many names in one call (`replace(_:old:)`, which replay uses
// a batch of records at a time, one lock per stripe) ends in the same table, and reads back the same
// earlier values, as setting them one at a time in order. Seeded (STOCKPILE_SEED).

import StockpileCore
import Testing

@testable import Stockpile

@Suite("Idempotency table")
struct IdempotencyTableTests {
    @Test("replacing names in batches equals replacing them one at a time, duplicates and crowded stripes included")
    func batchedReplaceEqualsOneAtATime() {
        let seed = testSeed(fallback: 4242)
        var rng = SplitMix64(seed: seed)
        let batched = IdempotencyTable<UInt64>()
        let single = IdempotencyTable<UInt64>()
        // Few enough names that a batch often names one twice or more; batches large enough that
        // some stripes get more than the prefetch distance of names.
        let names = (0..<3_000).map { "id-\($0)" }
        for round in 0..<40 {
            let size = Int(rng.next() % 1_500)
            let batch: [(name: String, hash: Int, value: UInt64)] = (0..<size).map { _ in
                let name = names[Int(rng.next() % UInt64(names.count))]
                return (name, name.hashValue, rng.next() % 64)
            }
            var old: [UInt64?] = []
            batch.withUnsafeBufferPointer { batched.replace($0, old: &old) }
            #expect(old.count == batch.count, "seed \(seed) round \(round)")
            for (i, n) in batch.enumerated() {
                #expect(old[i] == single.replace(n.name, hash: n.hash, n.value), "seed \(seed) round \(round) name \(i)")
            }
        }
        let a = Dictionary(uniqueKeysWithValues: batched.all().map { ($0.0, $0.1) })
        let b = Dictionary(uniqueKeysWithValues: single.all().map { ($0.0, $0.1) })
        #expect(a == b, "seed \(seed)")
        #expect(!a.isEmpty)
    }
}
