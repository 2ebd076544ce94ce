// A durable engine keeps every acknowledged change across a restart: the state, the ledger, the
// reservations, the idempotency keys and the holds still to expire come back from the log exactly.

import Foundation
import Glibc
import Stockpile
import StockpileWAL
import Testing

@Suite("Durability across a restart")
struct DurabilityTests {
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/stockpile-engine-test-XXXXXX".utf8CString)
        let made = try #require(mkdtemp(&template))
        return String(cString: made)
    }

    /// Everything a restart must bring back, as queries see it.
    struct Observed: Equatable {
        var cells: [String: [CellRecord]] = [:]
        var reservations: [String: Reservation] = [:]
        var ledger: [LedgerEntry] = []
        var warehouses: [Warehouse] = []
        var counters: StockCounters
    }

    static func observe(_ engine: Engine, variants: [String], ids: [String]) async -> Observed {
        var o = Observed(counters: await engine.stats().counters)
        for v in variants { o.cells[v] = await engine.stock(variant: v).value?.cells }
        for id in ids { o.reservations[id] = await engine.reservation(id).value?.reservation }
        var from: UInt64 = 1
        while true {
            let page = await engine.events(from: from, limit: 1000)
            o.ledger += page
            guard let last = page.last, page.count == 1000 else { break }
            from = last.seq + 1
        }
        o.warehouses = engine.warehouses()
        return o
    }

    /// The restart, with no snapshot, or with one taken after operation `snapshotAt` of the workload
    /// (so start-up loads it and replays only the rest).
    @Test(
        "every acknowledged change, key and pending expiry survives a restart",
        arguments: [(DurabilityPolicy.always, nil), (.interval(.milliseconds(5)), nil), (.always, 150), (.always, 299)] as [(DurabilityPolicy, Int?)])
    func restart(_ policy: DurabilityPolicy, snapshotAt: Int?) async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, retention: .seconds(600))
        let seed = testSeed(fallback: 77)
        var rng = SplitMix64(seed: seed)
        let variants = ["A", "B", "C", "D"]
        var ids: [String] = []
        var keyedAdjusts: [(key: String, variant: String, delta: Quantity, receipt: CellReceipt)] = []

        do {
            let engine = try Engine.open(dataDirectory: dir, durability: policy, configuration: configuration, clock: clock, segmentByteCount: 32 << 10)
            _ = await engine.setWarehouse(WarehouseChange(code: "east", priority: 5))
            _ = await engine.setPolicy(PolicyChange(variant: "D", backorder: true, lowStock: 3))
            for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 40, reason: .received) }
            for i in 0..<300 {
                let v = variants[Int(rng.next() % 4)]
                switch rng.next() % 8 {
                case 0, 1, 2:
                    let id = "r\(i)"
                    let ttl: Duration? = rng.next() % 2 == 0 ? .seconds(Int64(5 + rng.next() % 60)) : nil
                    if case .ok = await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: rng.next() % 3 == 0 ? "*" : "MAIN", quantity: Quantity(Int64(1 + rng.next() % 4)))], ttl: ttl)) {
                        ids.append(id)
                    }
                case 3:
                    if let id = ids.randomElement(using: &rng) { _ = await engine.fulfill(id, key: "ship-\(i)") }
                case 4:
                    if let id = ids.randomElement(using: &rng) { _ = await engine.release(id, key: "cancel-\(i)") }
                case 5:
                    _ = await engine.transfer(variant: v, from: "MAIN", to: "EAST", quantity: 1, key: "move-\(i)")
                case 6:
                    let delta = Quantity(Int64(1 + rng.next() % 5))
                    if case .ok(let receipt) = await engine.adjust(variant: v, warehouse: "MAIN", by: delta, reason: .received, key: "recv-\(i)") {
                        keyedAdjusts.append(("recv-\(i)", v, delta, receipt))
                    }
                default:
                    clock.advance(by: .seconds(Int64(rng.next() % 20)))
                }
                if i == snapshotAt {
                    let report = try await engine.writeSnapshot()
                    #expect(FileManager.default.fileExists(atPath: dir + "/" + report.fileName))
                }
            }
            let before = await Self.observe(engine, variants: variants, ids: ids)
            #expect(before.ledger.count > 200 && ids.count > 50, "the workload should have changed plenty (seed \(seed))")
            try engine.close()

            let reopened = try Engine.open(dataDirectory: dir, durability: policy, configuration: configuration, clock: clock, segmentByteCount: 32 << 10)
            let after = await Self.observe(reopened, variants: variants, ids: ids)
            #expect(after.ledger.count == before.ledger.count, "seed \(seed)")
            #expect(after.ledger == before.ledger, "the ledger differs after a restart (seed \(seed))")
            #expect(after.cells == before.cells, "seed \(seed)")
            #expect(after.reservations == before.reservations, "seed \(seed)")
            #expect(after.warehouses == before.warehouses, "seed \(seed)")
            #expect(after.counters == before.counters, "seed \(seed)")
            #expect(await reopened.verify().isEmpty, "seed \(seed)")

            // Keys and ids are remembered: retries replay instead of acting again.
            #expect(!keyedAdjusts.isEmpty)
            for k in keyedAdjusts {
                var original = k.receipt
                original.replayed = true
                let replay = await reopened.adjust(variant: k.variant, warehouse: "MAIN", by: k.delta, reason: .received, key: k.key)
                #expect(replay.value == original, "KEY \(k.key) must replay its original reply after a restart (seed \(seed))")
            }
            let retry = await reopened.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received, key: "recv-never-used")
            #expect(retry.value?.replayed == false)
            let again = await reopened.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received, key: "recv-never-used")
            #expect(again.value?.replayed == true)
            if let id = ids.first, let r = before.reservations[id] {
                let request = ReserveRequest(id: id, lines: r.fingerprint.lines, ttl: r.fingerprint.ttl, customer: r.fingerprint.customer, strategy: r.fingerprint.strategy)
                #expect(await reopened.reserve(request).value?.replayed == true, "seed \(seed)")
            }

            // Holds still pending expire on time after the restart.
            clock.advance(by: .seconds(3600))
            await reopened.runDueWork()
            for id in ids {
                if let r = await reopened.reservation(id).value?.reservation, r.expiresAt != nil {
                    Issue.record("reservation \(id) should have expired (seed \(seed))")
                }
            }
            #expect(await reopened.verify().isEmpty)
            try reopened.close()
        }
    }

    @Test("a hold that expired after a partial shipment still answers EXPIRED after a restart, from the log or a snapshot", arguments: [false, true])
    func shippedThenExpiredSurvivesRestart(snapshot: Bool) async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
        _ = await engine.reserve(ReserveRequest(id: "h", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 5)], ttl: .seconds(60)))
        _ = await engine.fulfill("h", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 2))
        clock.advance(by: .seconds(60))
        await engine.runDueWork()
        let before = try #require(await engine.reservation("h").value?.reservation)
        #expect(before.status == .fulfilled)
        if snapshot { _ = try await engine.writeSnapshot() }
        try engine.close()

        let reopened = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
        #expect(await reopened.reservation("h").value?.reservation == before)
        #expect(await reopened.extend("h", ttl: .seconds(60)).refusal?.code == .expired)
        #expect(await reopened.confirm("h").refusal?.code == .expired)
        #expect(await reopened.fulfill("h", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1)).refusal?.code == .expired)
        #expect(await reopened.verify().isEmpty)
        try reopened.close()
    }

    /// A batch's run of new reservations spans shards: each shard numbers its own part, so the log
    /// holds them shard by shard. A restart replays them into the same state, ledger and counters,
    /// and the batch's outcomes were those of one at a time (each cell ends at what its replies say).
    @Test("batches whose runs span shards come back whole after a restart")
    func batchesAcrossShardsSurviveRestart() async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configuration = EngineConfiguration(shardCount: 8)
        let seed = testSeed(fallback: 4711)
        print("batches across shards: seed \(seed) (rerun: STOCKPILE_SEED=\(seed))")
        var rng = SplitMix64(seed: seed)
        let variants = (0..<24).map { "V\($0)" }
        var ids: [String] = []
        let before: Observed
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
            for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 40, reason: .received) }
            for b in 0..<20 {
                var batch: [Command] = []
                for i in 0..<Int(8 + rng.next() % 40) {
                    let id = "b\(b)-\(i)"
                    ids.append(id)
                    let v = variants[Int(rng.next() % UInt64(variants.count))]
                    batch.append(.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: Quantity(Int64(1 + rng.next() % 3)))])))
                    // Now and then something else ends a run, and a release of an earlier id.
                    if rng.next() % 9 == 0, let earlier = ids.dropLast().randomElement(using: &rng) { batch.append(.release(id: earlier)) }
                }
                let outcomes = await engine.execute(batch)
                #expect(outcomes.count == batch.count, "seed \(seed) batch \(b)")
            }
            #expect(await engine.verify().isEmpty, "seed \(seed)")
            before = await Self.observe(engine, variants: variants, ids: ids)
            try engine.close()
        }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
        defer { try? engine.close() }
        let after = await Self.observe(engine, variants: variants, ids: ids)
        #expect(after == before, "seed \(seed)")
        #expect(after.ledger.enumerated().allSatisfy { $0.element.seq == UInt64($0.offset + 1) }, "seed \(seed): the ledger is gapless")
        #expect(await engine.verify().isEmpty, "seed \(seed)")
    }

    @Test("a second engine on a data directory in use is refused; the directory is free again once the first is closed")
    func oneWriterPerDirectory() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var first: Engine? = try Engine.open(dataDirectory: directory, durability: .always, clock: ManualClock())
        #expect(await first?.adjust(variant: "SKU", warehouse: "MAIN", by: 3, reason: .received).value != nil)
        #expect(throws: EngineOpenError.self) { _ = try Engine.open(dataDirectory: directory, durability: .always) }
        do {
            _ = try Engine.open(dataDirectory: directory, durability: .always)
        } catch {
            #expect("\(error)".contains("another stockpile process is using this data directory"), "\(error)")
        }
        try first?.close()
        first = nil
        let second = try Engine.open(dataDirectory: directory, durability: .always, clock: ManualClock())
        #expect(await second.cell(variant: "SKU", warehouse: "MAIN").value?.onHand == 3)
        try second.close()
    }

    @Test("EVENTS older than memory keeps come from the log, gapless and as they were")
    func eventsFromTheLog() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = try Engine.open(
            dataDirectory: directory, durability: .always, configuration: EngineConfiguration(eventsInMemoryCount: 4), clock: ManualClock())
        var receipts: [CellReceipt] = []
        for i in 1...10 {
            receipts.append(try #require(await engine.adjust(variant: "SKU", warehouse: "MAIN", by: Quantity(Int64(i)), reason: .received).value))
        }
        let all = await engine.events(from: 1, limit: 100)
        #expect(all.map(\.seq) == Array(1...10))
        #expect(all.map(\.onHand) == receipts.map(\.cell.onHand))
        #expect(await engine.events(from: 3, limit: 2).map(\.seq) == [3, 4])
        #expect(await engine.events(from: 5, limit: 4).map(\.seq) == [5, 6, 7, 8])
        #expect(await engine.events(from: 11, limit: 4).isEmpty)
        // An engine in memory has only what it keeps.
        let memory = Engine(configuration: EngineConfiguration(eventsInMemoryCount: 4), clock: ManualClock())
        for _ in 1...10 { _ = await memory.adjust(variant: "SKU", warehouse: "MAIN", by: 1, reason: .received) }
        #expect(await memory.events(from: 1, limit: 100).map(\.seq) == [7, 8, 9, 10])
        try engine.close()
    }
}
