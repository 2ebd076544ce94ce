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
                // 0 is the directory's claim marker, never a value.
                return (name, name.hashValue, 1 + rng.next() % 64)
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

    @Test("a directory entry is the id and the shard mask: 24 bytes, a claim included")
    func directoryEntrySize() {
        // Every reservation kept, open or closed, has one; a claim is marked in the value itself.
        #expect(MemoryLayout<IDTable<UInt64>.Entry>.stride == 24)
    }

    @Test("a request waiting for a claim on its name wakes when the claim settles, and sees the result")
    func waitersWakeOnSettle() async {
        let table = IdempotencyTable<UInt64>()
        guard case .claimed = table.tryClaim("r1", hash: "r1".hashValue) else {
            Issue.record("a free name is claimed")
            return
        }
        #expect(table.isInFlight("r1"))
        #expect(table.tryLookup("r1", hash: "r1".hashValue) == nil, "in flight: no answer without waiting")
        async let seen = table.lookup("r1")
        async let claimedAgain = table.claim("r1")
        // Settled once both wait.
        while table.waiterCount("r1") < 2 { await Task.yield() }
        table.commit("r1", 5)
        #expect(await seen == 5)
        guard case .existing(5) = await claimedAgain else {
            Issue.record("a claim after the commit finds the committed value")
            return
        }
        #expect(!table.isInFlight("r1") && table.peek("r1") == 5)
        // Given up, the name is free again, for a waiter too.
        #expect(table.reclaim("r1") == 5)
        async let free = table.lookup("r1")
        while table.waiterCount("r1") < 1 { await Task.yield() }
        table.abandon("r1")
        #expect(await free == nil)
        #expect(table.all().isEmpty && table.pendingNames().isEmpty && table.waiterCount("r1") == 0)
    }
}
