// The log's compact reservation records across restarts: a segment names a cell or an actor once
// (wal/FORMAT.md §3.8), and a writer that goes on in the same segment after a restart must go on
// numbering from the names recovery read there, not from zero, or later records would name the
// wrong cells.

import Foundation
import Glibc
import Stockpile
import StockpileWAL
import Testing

@Suite struct CompactLogTests {
    @Test("reservations logged before and after restarts in one segment come back on their own cells")
    func namesSurviveRestarts() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cells = ["A", "B", "C", "D"]
        var made: [(id: String, variant: String)] = []
        for round in 0..<3 {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: ManualClock())
            if round == 0 {
                for v in cells { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 100, reason: .received) }
            }
            // Each round names some cells the segment named before and, in the first rounds, new ones.
            for (i, v) in cells.dropFirst(round).enumerated() {
                let id = "r\(round)-\(i)"
                let reply = await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: 1)]), actor: "round-\(round % 2)")
                #expect(reply.value != nil, "\(id): \(reply)")
                made.append((id, v))
            }
            try engine.close()
        }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: ManualClock())
        defer { try? engine.close() }
        for (id, variant) in made {
            let r = await engine.reservation(id).value?.reservation
            #expect(r?.lines.map(\.variant) == [variant], "\(id)")
        }
        for v in cells {
            let expected = made.filter { $0.variant == v }.count
            #expect(await engine.cell(variant: v, warehouse: "MAIN").value?.reserved.units == Int64(expected), "\(v)")
        }
        #expect(await engine.verify().isEmpty)
        // One segment throughout: the restarts went on in it, with its names.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("wal-") }
        #expect(segments.count == 1, "\(segments)")
        // Every reservation went to the log as a reservation record, every adjustment as a commit.
        let records = try LogRecovery.recover(directory: dir).records
        #expect(records.filter { $0.type == .reservation }.count == made.count)
        #expect(records.filter { $0.type == .commit }.count == cells.count)
    }

    @Test("a reservation record after a RESET in the same segment replays onto its cell as the reset left it")
    func cellNumbersAcrossReset() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let line = { (v: String) in [ReserveLine(variant: v, warehouse: "MAIN", quantity: 1)] }
        // One shard, so that B, made first after the reset, takes the place A had.
        var configuration = EngineConfiguration()
        configuration.shardCount = 1
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
            _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
            #expect(await engine.reserve(ReserveRequest(id: "r1", lines: line("A"))).value != nil)
            #expect(await engine.reset() == nil)
            // After the reset another cell comes first, so A's place in its shard is not the one it
            // had; the segment still names A by the number it gave it before.
            _ = await engine.adjust(variant: "B", warehouse: "MAIN", by: 5, reason: .received)
            _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 7, reason: .received)
            #expect(await engine.reserve(ReserveRequest(id: "r2", lines: line("A"))).value != nil)
            #expect(await engine.reserve(ReserveRequest(id: "r3", lines: line("A"))).value != nil)
            try engine.close()
        }
        let records = try LogRecovery.recover(directory: dir).records
        #expect(records.filter { $0.type == .reservation }.count == 3, "each reservation a reservation record, in one segment")
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
        defer { try? engine.close() }
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.reserved.units == 2)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand.units == 7)
        #expect(await engine.cell(variant: "B", warehouse: "MAIN").value?.reserved.units == 0)
        #expect(await engine.reservation("r1").value == nil)
        #expect(await engine.verify().isEmpty)
    }

    @Test("recovery hands the log over in batches that hold its records in order, a reservation record's fields apart")
    func recoveredBatches() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: ManualClock())
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10_000, reason: .received)
        // More records than one batch holds, reservation records and commits mixed.
        var commands: [Command] = []
        for i in 0..<1_500 {
            if i % 100 == 50 {
                commands.append(.adjust(variant: "B", warehouse: "MAIN", delta: 1, reason: .received))
            } else {
                commands.append(.reserve(ReserveRequest(id: "r\(i)", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1)])))
            }
        }
        let outcomes = await engine.execute(commands)
        #expect(outcomes.allSatisfy { $0.value != nil })
        try engine.close()
        let whole = try LogRecovery.recover(directory: dir).records
        var batches: [RecoveredBatch] = []
        _ = try LogRecovery.recover(directory: dir) { batches.append($0) }
        #expect(batches.count >= 2, "more records than a batch holds")
        #expect(batches.flatMap(\.records) == whole)
        #expect(whole.filter { $0.type == .reservation }.count == 1_485 && whole.filter { $0.type == .commit }.count == 16)
        for b in batches {
            #expect(b.count == b.reservations.count + b.others.count && b.hashes.count == b.reservations.count)
            for k in 0..<b.count {
                let record = b.record(at: k)
                #expect(record.lsn == b.firstLSN + UInt64(k))
                #expect((b.items[k].reservation != nil) == (record.type == .reservation))
                if let i = b.items[k].reservation {
                    #expect(b.hashes[i].id == b.reservations[i].id.hashValue && b.hashes[i].cell == b.reservations[i].cell.stableHash)
                }
            }
            // What start-up keeps of a batch when the log's durable end is inside it.
            let half = b.count / 2
            #expect(b.prefix(through: b.firstLSN + UInt64(half)).records == Array(b.records.prefix(half + 1)))
            #expect(b.prefix(through: b.firstLSN - 1).isEmpty)
            #expect(b.prefix(through: b.lastLSN!).records == b.records)
        }
    }

    @Test("a reservation record replays to the reservation, cells, counters, ledger and expiry its commit would")
    func reservationRecordsReplayAsTheirCommits() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        // One of each kind of field a reservation record carries: a TTL (whole milliseconds, and one
        // finer, which the shard cannot keep compact), a customer, a backorder, an untracked line and
        // a strategy.
        let requests = [
            ReserveRequest(id: "plain", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)]),
            ReserveRequest(id: "ttl", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1)], ttl: .seconds(30)),
            ReserveRequest(id: "fine", lines: [ReserveLine(variant: "B", warehouse: "MAIN", quantity: 1)], ttl: .microseconds(60_000_500)),
            ReserveRequest(id: "cust", lines: [ReserveLine(variant: "B", warehouse: "MAIN", quantity: 3)], customer: "c-1", strategy: .most),
            ReserveRequest(id: "back", lines: [ReserveLine(variant: "BO", warehouse: "MAIN", quantity: 5)]),
            ReserveRequest(id: "free", lines: [ReserveLine(variant: "U", warehouse: "MAIN", quantity: 7)]),
        ]
        var live: [String: Reservation] = [:]
        var liveCells: [CellRecord] = []
        var liveEvents: [LedgerEntry] = []
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
            _ = await engine.setWarehouse(WarehouseChange(code: "MAIN"))
            _ = await engine.setPolicy(PolicyChange(variant: "BO", backorder: true))
            _ = await engine.setPolicy(PolicyChange(variant: "U", unlimited: true))
            for v in ["A", "B"] { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 10, reason: .received) }
            for request in requests {
                let reply = await engine.reserve(request, actor: "buyer")
                live[request.id] = try #require(reply.value?.reservation, "\(request.id): \(reply)")
            }
            liveCells = await engine.allCells()
            liveEvents = await engine.events(from: 1, limit: 1000)
            try engine.close()
        }
        let records = try LogRecovery.recover(directory: dir).records
        #expect(records.filter { $0.type == .reservation }.count == requests.count, "every reservation went to the log as a reservation record")

        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
        defer { try? engine.close() }
        for request in requests {
            #expect(await engine.reservation(request.id).value?.reservation == live[request.id], "\(request.id)")
            // A replay of the same request answers as before.
            let again = await engine.reserve(request, actor: "buyer")
            #expect(again.value?.replayed == true && again.value?.reservation == live[request.id], "\(request.id): \(again)")
        }
        #expect(await engine.allCells() == liveCells)
        #expect(await engine.events(from: 1, limit: 1000) == liveEvents)
        #expect(await engine.verify().isEmpty)
        // The holds with a TTL expire when they are due, as if the engine had never stopped.
        clock.advance(by: .seconds(31))
        await engine.runDueWork()
        #expect(await engine.reservation("ttl").value?.reservation.status == .expired)
        #expect(await engine.reservation("fine").value?.reservation.status == .active)
        clock.advance(by: .seconds(30))
        await engine.runDueWork()
        #expect(await engine.reservation("fine").value?.reservation.status == .expired)
        #expect(await engine.reservation("plain").value?.reservation.status == .active)
    }

    @Test("an id forgotten after its retention and reserved again on another cell replays as the second reservation")
    func reusedIDReplays() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let second: Reservation
        // The second reservation's cell is in another shard than the first's, so a replay that left the
        // first where it was would keep two reservations under one id (which `verify` reports).
        let router = ShardRouter(count: EngineConfiguration().shardCount)
        let shardOfA = router.shard(for: CellKey(variant: "A", warehouse: "MAIN"))
        let other = try #require((0..<100).map { "B\($0)" }.first { router.shard(for: CellKey(variant: $0, warehouse: "MAIN")) != shardOfA })
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
            for v in ["A", other] { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 10, reason: .received) }
            let first = await engine.reserve(ReserveRequest(id: "again", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)]))
            #expect(first.value != nil, "\(first)")
            _ = await engine.release("again")
            // Past the retention window (24 h): the id is forgotten, which the log does not record.
            clock.advance(by: .seconds(25 * 3600))
            await engine.runDueWork()
            let made = await engine.reserve(ReserveRequest(id: "again", lines: [ReserveLine(variant: other, warehouse: "MAIN", quantity: 3)]))
            #expect(made.value?.replayed == false, "a forgotten id makes a new reservation: \(made)")
            second = try #require(made.value?.reservation)
            try engine.close()
        }
        let records = try LogRecovery.recover(directory: dir).records
        #expect(records.filter { $0.type == .reservation }.count == 2, "both reservations went to the log as reservation records")
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
        defer { try? engine.close() }
        #expect(await engine.reservation("again").value?.reservation == second)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.reserved == .zero)
        #expect(await engine.cell(variant: other, warehouse: "MAIN").value?.reserved.units == 3)
        #expect(await engine.verify().isEmpty)
    }
}
