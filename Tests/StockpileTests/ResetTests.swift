// RESET empties the engine as one logged commit: afterwards nothing of the old state answers (stock,
// reservations, keys, warehouses, policies, KPIs), the ledger goes on gapless with a `reset` entry,
// and a restart — from the log alone or from a snapshot taken after it — comes back to the same state.

import Foundation
@testable import Stockpile
import StockpileWAL
import Testing

@Suite("Reset")
struct ResetTests {
    /// Stock, a hold and an order, a keyed adjustment, a warehouse and a policy, some KPIs.
    static func populate(_ engine: Engine) async {
        _ = await engine.setWarehouse(WarehouseChange(code: "EAST", priority: 5))
        _ = await engine.setPolicy(PolicyChange(variant: "B", backorder: true))
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
        _ = await engine.adjust(variant: "B", warehouse: "EAST", by: 4, reason: .received, key: "k-1")
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: -1, reason: .damaged)
        _ = await engine.reserve(ReserveRequest(id: "hold-1", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)], ttl: .seconds(60)))
        _ = await engine.reserve(ReserveRequest(id: "order-1", lines: [ReserveLine(variant: "B", warehouse: "EAST", quantity: 1)]))
        _ = await engine.fulfill("order-1")
        _ = await engine.reserve(ReserveRequest(id: "too-much", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 100)]))
    }

    /// What an engine that was just reset answers.
    static func expectEmpty(_ engine: Engine, context: String) async {
        let stats = await engine.stats()
        #expect(stats.cells == 0 && stats.onHand == .zero && stats.reserved == .zero && stats.activeReservations == 0, "\(context)")
        #expect(stats.counters == StockCounters(), "\(context): KPIs start over")
        #expect(stats.refused.values.allSatisfy { $0 == 0 }, "\(context): refusal counts start over")
        #expect(engine.warehouses().map(\.code) == ["MAIN"], "\(context)")
        #expect(engine.policy(of: "B").value?.backorder == false, "\(context)")
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == .zero, "\(context)")
        #expect(await engine.reservation("hold-1").refusal?.code == .notFound, "\(context)")
        #expect(await engine.verify().isEmpty, "\(context)")
    }

    @Test("RESET empties everything; the ledger goes on with a reset entry; ids and keys are free again")
    func resetInMemory() async throws {
        let engine = Engine(clock: ManualClock())
        await Self.populate(engine)
        let before = engine.nextSeq
        #expect(await engine.reset(actor: "harness") == nil)
        await Self.expectEmpty(engine, context: "in memory")
        let entry = try #require(await engine.events(from: before, limit: 10).first)
        #expect(entry.seq == before && entry.type == .reset && entry.actor == "harness")
        // The old id and key act anew: no replay of what came before the reset.
        #expect(await engine.adjust(variant: "B", warehouse: "MAIN", by: 4, reason: .received, key: "k-1").value?.replayed == false)
        let hold = await engine.reserve(ReserveRequest(id: "hold-1", lines: [ReserveLine(variant: "B", warehouse: "MAIN", quantity: 1)]))
        #expect(hold.value?.replayed == false)
        #expect(await engine.events(from: before + 1, limit: 10).first?.seq == before + 1, "numbering goes on after the reset")
        #expect(await engine.verify().isEmpty)
    }

    @Test("a reset survives a restart, replayed from the log or loaded from a snapshot taken after it")
    func resetIsDurable() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0)
        for withSnapshot in [false, true] {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
            await Self.populate(engine)
            if withSnapshot { _ = try await engine.writeSnapshot() }
            #expect(await engine.reset() == nil)
            _ = await engine.adjust(variant: "C", warehouse: "MAIN", by: 3, reason: .received)
            if withSnapshot { _ = try await engine.writeSnapshot() }
            try engine.close()

            let reopened = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
            #expect(await reopened.cell(variant: "C", warehouse: "MAIN").value?.onHand == 3, "snapshot \(withSnapshot)")
            #expect(await reopened.cell(variant: "A", warehouse: "MAIN").value?.onHand == .zero, "snapshot \(withSnapshot)")
            #expect(reopened.warehouses().map(\.code) == ["MAIN"], "snapshot \(withSnapshot)")
            #expect(await reopened.reservation("hold-1").refusal?.code == .notFound, "snapshot \(withSnapshot)")
            #expect(await reopened.stats().counters.unitsReserved == .zero, "snapshot \(withSnapshot)")
            #expect(await reopened.verify().isEmpty)
            // Empty again for the next round.
            #expect(await reopened.reset() == nil)
            try reopened.close()
        }
    }
}

/// A directory entry left for a reservation a RESET emptied (the reset ran between the reservation's
/// commit and its entry): the next request for the id finds it gone instead of looking forever.
@Suite("Reset leftovers")
struct ResetLeftoverTests {
    @Test("a stale directory entry answers NOTFOUND and frees the id")
    func staleDirectoryEntry() async throws {
        let engine = Engine(clock: ManualClock())
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received)
        let mask = engine.router.mask(of: [CellKey(variant: "A", warehouse: "MAIN")])
        engine.directory.restore("ghost", mask)
        #expect(await engine.confirm("ghost").refusal?.code == .notFound)
        engine.directory.restore("ghost", mask)
        let made = await engine.reserve(ReserveRequest(id: "ghost", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1)]))
        #expect(made.value?.replayed == false, "\(made)")
        #expect(await engine.verify().isEmpty)
    }
}
