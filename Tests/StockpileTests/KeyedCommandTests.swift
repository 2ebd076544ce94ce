// EXTEND, CONFIRM, WAREHOUSE SET and POLICY SET take a KEY like every other mutation but RESERVE
// (SPEC §2): a retry with the key replays the first reply and writes nothing, a different command
// under it is CONFLICT, and both hold after a restart from the log.

import Foundation
import Stockpile
import StockpileCore
import Testing

@Suite("KEY on EXTEND, CONFIRM, WAREHOUSE SET and POLICY SET")
struct KeyedCommandTests {
    @Test("a keyed retry replays the first reply and writes nothing, before and after a restart")
    func keyedRetries() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0)
        let extend = Command.extend(id: "r1", ttl: .seconds(120), key: "k-ext")
        let confirm = Command.confirm(id: "r2", key: "k-conf")
        let confirmUnchanged = Command.confirm(id: "r3", key: "k-conf-none")
        let warehouse = Command.setWarehouse(WarehouseChange(code: "east", priority: 5), key: "k-wh")
        let policy = Command.setPolicy(PolicyChange(variant: "A", lowStock: 2), key: "k-pol")
        var first: [Command: Reply] = [:]
        let entriesAfterFirst: UInt64

        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
            _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
            for (id, ttl) in [("r1", Duration.seconds(60)), ("r2", .seconds(60)), ("r3", nil)] as [(String, Duration?)] {
                #expect(await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1)], ttl: ttl)).value != nil)
            }
            for command in [extend, confirm, confirmUnchanged, warehouse, policy] {
                let reply = try #require(await engine.execute(command).value, "\(command)")
                first[command] = reply
            }
            guard case .reservation(let extended) = first[extend] else { Issue.record("EXTEND answered \(String(describing: first[extend]))"); return }
            #expect(extended.reservation.expiresAt == clock.now().advanced(by: .seconds(120)))
            entriesAfterFirst = engine.nextSeq

            // Later, the same requests again: each replays what it answered, and nothing moves.
            clock.advance(by: .seconds(10))
            try await Self.expectReplays(engine, first)
            #expect(engine.nextSeq == entriesAfterFirst, "a keyed retry wrote a ledger entry")
            try await Self.expectConflicts(engine)
            try engine.close()
        }

        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
        defer { try? engine.close() }
        try await Self.expectReplays(engine, first)
        #expect(engine.nextSeq == entriesAfterFirst, "a keyed retry after the restart wrote a ledger entry")
        try await Self.expectConflicts(engine)
        #expect(await engine.reservation("r1").value?.reservation.expiresAt == first[extend].flatMap { reply -> Timestamp? in
            if case .reservation(let r) = reply { return r.reservation.expiresAt }
            return nil
        })
    }

    static func expectReplays(_ engine: Engine, _ first: [Command: Reply], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for (command, reply) in first {
            let again = try #require(await engine.execute(command).value, "\(command)", sourceLocation: sourceLocation)
            #expect(again == reply.markedReplayed, "\(command)", sourceLocation: sourceLocation)
        }
    }

    /// The same keys under other requests are refused, and change nothing.
    static func expectConflicts(_ engine: Engine, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let others: [Command] = [
            .extend(id: "r1", ttl: .seconds(300), key: "k-ext"),
            .confirm(id: "r1", key: "k-conf"),
            .setWarehouse(WarehouseChange(code: "EAST", priority: 6), key: "k-wh"),
            .setPolicy(PolicyChange(variant: "A", lowStock: 3), key: "k-pol"),
            .adjust(variant: "A", warehouse: "MAIN", delta: 1, reason: .received, key: "k-conf-none"),
        ]
        for command in others {
            #expect(await engine.execute(command).refusal?.code == .conflict, "\(command)", sourceLocation: sourceLocation)
        }
    }
}
