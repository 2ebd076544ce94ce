// Replay by shard: however many threads apply the log, start-up ends in the state one thread applying
// every record in LSN order makes. The log here mixes what puts that to the test: reservations of
// several lines across shards (each shard applies its part), ids forgotten and made again with
// another home (the earlier home drops the old one at its place in its own order), a RESET between
// them, catalog changes every shard copies, KEYs, expiries and forgetting; and it is long enough for
// the reader to run ahead of the appliers by several batches, and for the ring of recent entries (kept
// small here) to wrap many times: memory keeps the same newest entries after a replay.

import Foundation
@testable import Stockpile
import StockpileCore
import Testing

@Suite("Replay by shard")
struct ReplayByShardTests {
    /// Each variant's HISTORY in MAIN: the entries memory keeps for it, newest first.
    static func histories(_ engine: Engine, variants: [String]) async -> [String: [LedgerEntry]] {
        var out: [String: [LedgerEntry]] = [:]
        for v in variants { out[v] = await engine.history(variant: v, warehouse: "MAIN", limit: 100).value ?? [] }
        return out
    }

    /// `collidingTags`: the directory's tags of reservation ids keep 3 bits of each hash, so that ids
    /// made again share their tag with others: replay cannot tell their old slots apart, and the
    /// shards' answers settle it.
    @Test("one, two or three threads applying the log start up in the same state", arguments: zip([false, true, true], [false, false, true]))
    func sameStateWhateverTheThreads(resetHalfway: Bool, collidingTags: Bool) async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let seed = testSeed(fallback: 2026)
        var rng = SplitMix64(seed: seed)
        let shardCount = 8
        let router = ShardRouter(count: shardCount)
        // Variants spread over the shards; ids from a small pool, so that they are forgotten and made
        // again, often in another shard.
        let variants = (0..<16).map { "V\($0)" }
        #expect(Set(variants.map { router.shard(for: CellKey(variant: $0, warehouse: "MAIN")) }).count >= 4, "the variants should spread over shards")
        let ids = (0..<24).map { "id-\($0)" }
        let freshIDs = resetHalfway ? (0..<3).map { "fresh-\($0)" } : []
        func configuration(threads: Int) -> EngineConfiguration {
            var c = EngineConfiguration(
                shardCount: shardCount, retention: .seconds(2), eventsInMemoryCount: 64, snapshotEveryRecords: 0, replayThreadCount: threads)
            if collidingTags { c.directoryLowMask = 0x1FFF_FFFF_FFFF_FFFF }
            return c
        }
        func someVariant() -> String { variants[Int(rng.next() % UInt64(variants.count))] }

        // Ids forgotten and made again in another shard, and in the same one.
        var (remade, remadeHere) = (0, 0)
        // Synced every 20 ms rather than per operation, to keep the test short; closing syncs the rest.
        let durability = DurabilityPolicy.interval(.milliseconds(20))
        let engine = try Engine.open(dataDirectory: dir, durability: durability, configuration: configuration(threads: 1), clock: clock)
        _ = await engine.setWarehouse(WarehouseChange(code: "EAST", priority: 5))
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 50, reason: .received) }
        var homes: [String: Int] = [:]
        var keyed: [(key: String, variant: String, delta: Quantity, receipt: CellReceipt)] = []
        let operations = 18_000
        for i in 0..<operations {
            if resetHalfway && i == operations / 2 {
                #expect(await engine.reset() == nil)
                homes.removeAll()
                _ = await engine.setWarehouse(WarehouseChange(code: "WEST", priority: 2))
                for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 30, reason: .received) }
                // Ids made soon after the RESET (most likely in the batch of records it is in) and
                // never touched again: replay must not let the RESET empty what comes after it.
                for id in freshIDs {
                    let request = ReserveRequest(id: id, lines: [ReserveLine(variant: someVariant(), warehouse: "MAIN", quantity: 1)])
                    #expect(await engine.reserve(request).value != nil, "seed \(seed)")
                }
            }
            let id = ids[Int(rng.next() % UInt64(ids.count))]
            switch rng.next() % 10 {
            case 0, 1, 2:
                let v = someVariant()
                let ttl: Duration? = rng.next() % 2 == 0 ? .seconds(Int64(1 + rng.next() % 4)) : nil
                let request = ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: Quantity(Int64(1 + rng.next() % 3)))], ttl: ttl)
                if case .ok(let r) = await engine.reserve(request), !r.replayed {
                    // Made anew while the id was known before: it was forgotten in between.
                    let home = router.shard(for: CellKey(variant: v, warehouse: "MAIN"))
                    if let before = homes[id] {
                        if before != home { remade += 1 } else { remadeHere += 1 }
                    }
                    homes[id] = home
                }
            case 3:
                // Several lines, usually in several shards.
                var lines: [ReserveLine] = []
                for v in Set((0..<(2 + rng.next() % 2)).map { _ in someVariant() }) {
                    lines.append(ReserveLine(variant: v, warehouse: "MAIN", quantity: 1))
                }
                if case .ok(let r) = await engine.reserve(ReserveRequest(id: id, lines: lines, ttl: .seconds(3))), !r.replayed {
                    homes[id] = lines.map { router.shard(for: CellKey(variant: $0.variant, warehouse: "MAIN")) }.min()
                }
            case 4:
                _ = await engine.release(id, key: rng.next() % 2 == 0 ? "cancel-\(i)" : nil)
            case 5:
                _ = await engine.fulfill(id)
            case 6:
                _ = await engine.adjust(variant: someVariant(), warehouse: "MAIN", by: Quantity(Int64(1 + rng.next() % 5)), reason: .received, key: "recv-\(i)")
            case 7:
                _ = await engine.transfer(variant: someVariant(), from: "MAIN", to: "EAST", quantity: 1, key: "move-\(i)")
            case 8:
                if rng.next() % 4 == 0 {
                    _ = await engine.setPolicy(PolicyChange(variant: someVariant(), backorder: rng.next() % 2 == 0, lowStock: 2))
                } else {
                    _ = await engine.extend(id, ttl: .seconds(2))
                }
            default:
                // Holds expire and closed ids are forgotten (not logged: replay schedules both again).
                clock.advance(by: .milliseconds(Int64(500 + rng.next() % 2500)))
                await engine.runDueWork()
            }
        }
        // Keys used last, within the retention window, for the retries after each start-up.
        for j in 0..<5 {
            let (v, delta) = (someVariant(), Quantity(Int64(1 + j)))
            if case .ok(let receipt) = await engine.adjust(variant: v, warehouse: "MAIN", by: delta, reason: .received, key: "last-\(j)") {
                keyed.append(("last-\(j)", v, delta, receipt))
            }
        }
        #expect(keyed.count == 5, "seed \(seed)")
        #expect(await engine.verify().isEmpty, "seed \(seed)")
        let before = await DurabilityTests.observe(engine, variants: variants, ids: ids + freshIDs)
        // What memory keeps of the ledger (EVENTS reads the log for what it does not; HISTORY reads
        // only memory): after the replay, the same newest entries.
        let historyBefore = await Self.histories(engine, variants: variants)
        #expect(historyBefore.values.reduce(0) { $0 + $1.count } > 0, "seed \(seed)")
        #expect(remade >= 3 && remadeHere >= 3, "the workload should make forgotten ids again, in another shard and in the same (seed \(seed))")
        #expect(engine.logStatus.lastLSN > 8 * 1024, "the log should span many batches (seed \(seed))")
        try engine.close()

        for threads in [1, 2, 3] {
            let reopened = try Engine.open(dataDirectory: dir, durability: durability, configuration: configuration(threads: threads), clock: clock, warn: { _ in })
            #expect(reopened.startupReport?.replayThreadCount == threads)
            let after = await DurabilityTests.observe(reopened, variants: variants, ids: ids + freshIDs)
            #expect(after.ledger == before.ledger, "\(threads) threads (seed \(seed))")
            #expect(await Self.histories(reopened, variants: variants) == historyBefore, "\(threads) threads (seed \(seed))")
            #expect(after.cells == before.cells, "\(threads) threads (seed \(seed))")
            #expect(after.reservations == before.reservations, "\(threads) threads (seed \(seed))")
            #expect(after.warehouses == before.warehouses, "\(threads) threads (seed \(seed))")
            #expect(after.counters == before.counters, "\(threads) threads (seed \(seed))")
            // A shard still keeping a reservation whose id was made again elsewhere is a problem here.
            let problems = await reopened.verify()
            #expect(problems.count == 0, "\(threads) threads: \(problems.prefix(3)) (seed \(seed))")
            // Keys are remembered: a retry answers the original reply as a replay (and writes nothing).
            for k in keyed {
                var original = k.receipt
                original.replayed = true
                let replay = await reopened.adjust(variant: k.variant, warehouse: "MAIN", by: k.delta, reason: .received, key: k.key)
                #expect(replay.value == original, "\(threads) threads: KEY \(k.key) (seed \(seed))")
            }
            try reopened.close()
        }
    }

    @Test("RESETs close together, and ids made between and after them, replay to the same state")
    func resetsCloseTogether() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = { (threads: Int) in
            EngineConfiguration(shardCount: 4, eventsInMemoryCount: 32, snapshotEveryRecords: 0, replayThreadCount: threads)
        }
        let variants = (0..<8).map { "V\($0)" }
        var ids: [String] = []
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration(1), clock: clock)
        // RESET as the log's first records, twice in a row, between reservations and after them, all
        // within one batch of the replay (1,024 records), and ids made again after each.
        #expect(await engine.reset() == nil)
        #expect(await engine.reset() == nil)
        for round in 0..<4 {
            for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 10, reason: .received) }
            for (i, v) in variants.enumerated() {
                // The same ids every round (each RESET forgets them), and a fresh one each round.
                for id in ["same-\(i)", "round\(round)-\(i)"] {
                    let request = ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: 1)])
                    #expect(await engine.reserve(request).value != nil, "round \(round): \(id)")
                    if !ids.contains(id) { ids.append(id) }
                }
            }
            if round < 3 { #expect(await engine.reset() == nil) }
        }
        #expect(engine.logStatus.lastLSN < 1_000, "one replay batch")
        #expect(await engine.verify().isEmpty)
        let before = await DurabilityTests.observe(engine, variants: variants, ids: ids)
        let historyBefore = await Self.histories(engine, variants: variants)
        try engine.close()
        for threads in [1, 2] {
            let reopened = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration(threads), clock: clock, warn: { _ in })
            let after = await DurabilityTests.observe(reopened, variants: variants, ids: ids)
            #expect(after.reservations == before.reservations, "\(threads) threads")
            #expect(after.cells == before.cells, "\(threads) threads")
            #expect(after.counters == before.counters, "\(threads) threads")
            #expect(await Self.histories(reopened, variants: variants) == historyBefore, "\(threads) threads")
            #expect(await reopened.verify().isEmpty, "\(threads) threads")
            try reopened.close()
        }
    }

    @Test("the ring of recent entries holds as much after a replay when it spans several of the replay's batches")
    func ringLargerThanABatch() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        // A ring of 3,000 entries: about three of the replay's batches of 1,024 records, over a log of
        // about ten.
        let ringCount = 3_000
        let configuration = { (threads: Int) in
            EngineConfiguration(shardCount: 4, eventsInMemoryCount: ringCount, snapshotEveryRecords: 0, replayThreadCount: threads)
        }
        let variants = (0..<6).map { "V\($0)" }
        let engine = try Engine.open(dataDirectory: dir, durability: .interval(.milliseconds(20)), configuration: configuration(1), clock: clock)
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 100_000, reason: .received) }
        for i in 0..<5_000 {
            let id = "r\(i)"
            let request = ReserveRequest(id: id, lines: [ReserveLine(variant: variants[i % variants.count], warehouse: "MAIN", quantity: 1)])
            #expect(await engine.reserve(request).value != nil)
            // A release now and then: records that are commits, between the compact reservation records.
            if i % 7 == 0 { #expect(await engine.release(id).value != nil) }
        }
        #expect(engine.logStatus.lastLSN > 5 * 1_024, "the log should span several replay batches")
        // Every entry the ring keeps, by cell, newest first.
        func histories(_ engine: Engine) async -> [[LedgerEntry]] {
            var out: [[LedgerEntry]] = []
            for v in variants { out.append(await engine.history(variant: v, warehouse: "MAIN", limit: Limits.listCountMax).value ?? []) }
            return out
        }
        let before = await histories(engine)
        #expect(before.reduce(0) { $0 + $1.count } == ringCount, "the ring is full")
        try engine.close()
        for threads in [1, 2] {
            let reopened = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration(threads), clock: clock, warn: { _ in })
            #expect(await histories(reopened) == before, "\(threads) threads")
            try reopened.close()
        }
    }
}
