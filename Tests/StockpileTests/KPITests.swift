// The KPIs of SPEC §6 over one scripted history, each asserted exactly: units reserved, fulfilled,
// released and expired; stockouts; shrinkage and the adjustment trend by reason; stock accuracy from
// cycle counts. The definitions are those of docs/DECISIONS.md, "Queries and figures".

import Stockpile
import StockpileCore
import Testing

@Suite("KPIs")
struct KPITests {
    @Test("a scripted history moves every KPI by exactly what it did")
    func scriptedHistory() async throws {
        let f = BlackBox.Fixture()
        func must<T>(_ o: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
            try BlackBox.must(o, sourceLocation: sourceLocation)
        }
        let part = { (q: Int64) in LineSelector(variant: "A", warehouse: "MAIN", quantity: Quantity(q)) }

        // A: received 10 (available 10).
        try await f.receive("A", "MAIN", 10)
        // r1 reserves 4, ships 1, the other 3 are released (available 6, then 9 with on_hand 9).
        _ = try must(await f.reserve("r1", [BlackBox.line("A", "MAIN", 4)]))
        _ = try must(await f.engine.fulfill("r1", line: part(1)))
        _ = try must(await f.engine.release("r1"))
        // A hold of 6 expires (available 3, then 9 again).
        _ = try must(await f.reserve("hold", [BlackBox.line("A", "MAIN", 6)], ttl: .seconds(60)))
        f.advance(.seconds(60))
        #expect(try await f.reservation("hold").status == .expired)
        // r2 takes the last 9 (available 9 → 0: the first stockout), then ships (0 → 0: no new stockout).
        _ = try must(await f.reserve("r2", [BlackBox.line("A", "MAIN", 9)]))
        _ = try must(await f.engine.fulfill("r2"))
        #expect(try await f.fig("A") == "0/0")
        // A refused reservation moves no unit counter.
        #expect(await f.reserve("r3", [BlackBox.line("A", "MAIN", 1)]).refusal?.code == .insufficient)

        // B: received 5, damaged 2, lost 1 (on_hand 2).
        try await f.receive("B", "MAIN", 5)
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -2, reason: .damaged))
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -1, reason: .lost))
        // Cycle counts: B as the books say (no variance), B one short, C found 3 where none were booked.
        #expect(try must(await f.engine.count(variant: "B", warehouse: "MAIN", counted: 2)).variance == 0)
        #expect(try must(await f.engine.count(variant: "B", warehouse: "MAIN", counted: 1)).variance == -1)
        #expect(try must(await f.engine.count(variant: "C", warehouse: "MAIN", counted: 3)).variance == 3)
        // The last of B is lost (available 1 → 0: the second stockout).
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -1, reason: .lost))
        // A correction is an adjustment; SETQTY and RETURN are not, whatever their reason.
        _ = try must(await f.engine.adjust(variant: "C", warehouse: "MAIN", by: 1, reason: .correction))
        _ = try must(await f.engine.setQuantity(variant: "C", warehouse: "MAIN", to: 6, reason: .received))
        _ = try must(await f.engine.returnStock(variant: "C", warehouse: "MAIN", quantity: 2, disposition: .restock))
        _ = try must(await f.engine.returnStock(variant: "C", warehouse: "MAIN", quantity: 1, disposition: .damaged))

        let stats = await f.engine.stats()
        let k = stats.counters
        #expect(k.unitsReserved == 19, "4 + 6 + 9")
        #expect(k.unitsFulfilled == 10, "1 + 9")
        #expect(k.unitsReleased == 3)
        #expect(k.unitsExpired == 6)
        #expect(k.stockouts == 2)
        #expect(k.shrinkage == 4, "damaged 2, lost 1 + 1; a damaged return is not shrinkage")
        #expect(k.adjustedByReason == [.received: 15, .damaged: -2, .lost: -2, .correction: 1])
        #expect(k.cycleCounts == 3)
        #expect(k.cycleCountsWithoutVariance == 1)
        #expect(stats.accuracyBasisPoints == 3333, "1 of 3 counts found no variance")
        #expect(stats.refused[.insufficient] == 1)
        #expect(stats.onHand == 8, "A 0, B 0, C 6 + 2 restocked")
        #expect(stats.reserved == 0)
        #expect(stats.cells == 3)
        #expect(stats.activeReservations == 0)
        #expect(await f.engine.verify().isEmpty)
    }
}
