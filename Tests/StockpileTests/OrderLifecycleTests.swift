// Scripted orders through `OrderLifecycle`: every status change, its retry (the same result, the stock
// changed once), partial shipments, cancels, returns and untracked lines, with the exact stock
// figures afterwards. The rules tested are those of docs/DECISIONS.md, "Order lifecycle".

import Foundation
import Stockpile
import StockpileCore
import Testing



private func must<T>(_ outcome: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try BlackBox.must(outcome, sourceLocation: sourceLocation)
}

private func figures(_ r: Reservation?) -> [String] { r.map(BlackBox.figures) ?? [] }

private func line(_ variant: String, _ quantity: Int64, warehouse: String = "*", tracked: Bool = true) -> OrderLine {
    OrderLine(variant: variant, warehouse: warehouse, quantity: Quantity(quantity), isTracked: tracked)
}

private func item(_ variant: String, _ quantity: Int64, warehouse: String? = nil) -> OrderItem {
    OrderItem(variant: variant, warehouse: warehouse, quantity: Quantity(quantity))
}

private func back(_ variant: String, _ quantity: Int64, _ disposition: ReturnDisposition, warehouse: String? = nil) -> ReturnedItem {
    ReturnedItem(variant: variant, warehouse: warehouse, quantity: Quantity(quantity), disposition: disposition)
}

/// A result with `replayed` cleared: what a retry must equal.
private func unmarked(_ r: OrderInventoryResult) -> OrderInventoryResult {
    var r = r
    r.replayed = false
    return r
}

@Suite("Order lifecycle")
struct OrderLifecycleTests {
    let f = BlackBox.Fixture()
    var orders: OrderLifecycle { OrderLifecycle(engine: f.engine) }

    /// Applies a change and requires it to succeed.
    @discardableResult
    private func apply(
        _ change: OrderStatusChange, _ order: String, _ lines: [OrderLine], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> OrderInventoryResult {
        try must(await orders.apply(change, toOrder: order, lines: lines), sourceLocation: sourceLocation)
    }

    /// Applies a change twice and checks that the retry answers the same, marked as a replay, and
    /// writes nothing to the ledger.
    @discardableResult
    private func applyTwice(
        _ change: OrderStatusChange, _ order: String, _ lines: [OrderLine], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> OrderInventoryResult {
        let first = try await apply(change, order, lines, sourceLocation: sourceLocation)
        #expect(!first.replayed, sourceLocation: sourceLocation)
        let seq = f.nextSeq
        let retry = try await apply(change, order, lines, sourceLocation: sourceLocation)
        #expect(retry.replayed, "the retry is recognised", sourceLocation: sourceLocation)
        #expect(unmarked(retry) == first, "the retry answers what the change answered", sourceLocation: sourceLocation)
        #expect(f.nextSeq == seq, "the retry writes nothing", sourceLocation: sourceLocation)
        return first
    }

    // MARK: Processing and shipping

    @Test("processing reserves every line once; a retry answers the same and reserves nothing more")
    func processingIsIdempotent() async throws {
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 4)
        let lines = [line("A", 3), line("B", 4)]
        let r = try await applyTwice(.processing, "1001", lines)
        #expect(r.orderID == "1001")
        #expect(r.reservationID == "order:1001")
        #expect(r.reservation?.status == .active)
        #expect(r.reservation?.expiresAt == nil, "an order reservation does not expire")
        #expect(figures(r.reservation) == ["A MAIN q=3 f=0 r=0 b=0 rem=3", "B MAIN q=4 f=0 r=0 b=0 rem=4"])
        #expect(r.skipped.isEmpty)
        #expect(try await f.fig("A") == "10/3")
        #expect(try await f.fig("B") == "4/4")
        #expect(await f.engine.stats().counters.unitsReserved == 7)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("processing refused for want of stock leaves nothing, and its retry after a delivery succeeds")
    func processingRefusedThenRetried() async throws {
        try await f.receive("A", "MAIN", 1)
        let refused = await orders.apply(.processing, toOrder: "1002", lines: [line("A", 2)])
        #expect(refused.refusal?.code == .insufficient)
        #expect(refused.refusal?.available == 1)
        #expect(try await f.fig("A") == "1/0")
        try await f.receive("A", "MAIN", 5)
        let r = try await apply(.processing, "1002", [line("A", 2)])
        #expect(figures(r.reservation) == ["A MAIN q=2 f=0 r=0 b=0 rem=2"])
        #expect(try await f.fig("A") == "6/2")
    }

    @Test("processing the same order with other lines is CONFLICT")
    func processingWithOtherLinesConflicts() async throws {
        try await f.receive("A", "MAIN", 10)
        try await apply(.processing, "1003", [line("A", 2)])
        #expect(await orders.apply(.processing, toOrder: "1003", lines: [line("A", 3)]).refusal?.code == .conflict)
        #expect(try await f.fig("A") == "10/2")
    }

    @Test("shipped ships everything reserved once; the retry answers the same shipment")
    func shippedIsIdempotent() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 3)]
        try await apply(.processing, "2001", lines)
        let r = try await applyTwice(.shipped, "2001", lines)
        #expect(r.reservation?.status == .fulfilled)
        #expect(figures(r.reservation) == ["A MAIN q=3 f=3 r=0 b=0 rem=0"])
        #expect(try await f.fig("A") == "7/0")
        #expect(await f.engine.stats().counters.unitsFulfilled == 3)
    }

    @Test("shipped with nothing reserved is NOTFOUND and changes nothing")
    func shippedWithoutProcessing() async throws {
        try await f.receive("A", "MAIN", 10)
        let seq = f.nextSeq
        let refused = await orders.apply(.shipped, toOrder: "2002", lines: [line("A", 3)])
        #expect(refused.refusal?.code == .notFound)
        #expect(refused.refusal?.message == "order 2002 has nothing reserved: apply processing before shipping")
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "10/0")
    }

    // MARK: Partial shipments

    @Test("partial shipments, each retried, then the rest: every unit ships once")
    func partialShipmentsThenTheRest() async throws {
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 5)
        let lines = [line("A", 5), line("B", 2)]
        try await apply(.processing, "3001", lines)

        let box1 = try await applyTwice(.partiallyShipped(shipmentID: "box-1", items: [item("A", 2)]), "3001", lines)
        #expect(box1.reservation?.status == .partiallyFulfilled)
        #expect(figures(box1.reservation) == ["A MAIN q=5 f=2 r=0 b=0 rem=3", "B MAIN q=2 f=0 r=0 b=0 rem=2"])
        #expect(try await f.fig("A") == "8/3")

        // Two cells in one shipment, named in the order opposite to the cells': the plan does not care.
        let box2 = try await applyTwice(.partiallyShipped(shipmentID: "box-2", items: [item("B", 2), item("A", 1, warehouse: "main")]), "3001", lines)
        #expect(figures(box2.reservation) == ["A MAIN q=5 f=3 r=0 b=0 rem=2", "B MAIN q=2 f=2 r=0 b=0 rem=0"])
        #expect(try await f.fig("A") == "7/2")
        #expect(try await f.fig("B") == "3/0")

        // A late retry of the first box, after the second: still a replay of what it did.
        let late = try await apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 2)]), "3001", lines)
        #expect(late.replayed)
        #expect(unmarked(late) == box1)

        let rest = try await applyTwice(.shipped, "3001", lines)
        #expect(rest.reservation?.status == .fulfilled)
        #expect(figures(rest.reservation) == ["A MAIN q=5 f=5 r=0 b=0 rem=0", "B MAIN q=2 f=2 r=0 b=0 rem=0"])
        #expect(try await f.fig("A") == "5/0")
        #expect(try await f.fig("B") == "3/0")
        #expect(await f.engine.stats().counters.unitsFulfilled == 7)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("shipped after partial shipments that shipped everything changes nothing")
    func shippedAfterEverythingShippedInParts() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 2)]
        try await apply(.processing, "3002", lines)
        try await apply(.partiallyShipped(shipmentID: "all-of-it", items: [item("A", 2)]), "3002", lines)
        let seq = f.nextSeq
        let r = try await apply(.shipped, "3002", lines)
        #expect(r.reservation?.status == .fulfilled)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "8/0")
    }

    @Test("a shipment of more than remains is refused whole: no cell of it ships")
    func shipmentOfMoreThanRemains() async throws {
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 10)
        let lines = [line("A", 2), line("B", 1)]
        try await apply(.processing, "3003", lines)
        let refused = await orders.apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 1), item("B", 2)]), toOrder: "3003", lines: lines)
        #expect(refused.refusal?.code == .invalid)
        #expect(refused.refusal?.message == "shipment box-1 of B MAIN: 2 is more than the 1 that remain")
        #expect(try await f.fig("A") == "10/2")
        #expect(try await f.fig("B") == "10/1")
        // The refused shipment left its id unused: a corrected shipment under the same id goes through.
        let r = try await apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 1), item("B", 1)]), "3003", lines)
        #expect(figures(r.reservation) == ["A MAIN q=2 f=1 r=0 b=0 rem=1", "B MAIN q=1 f=1 r=0 b=0 rem=0"])
    }

    @Test("a shipment refused midway says so, and its retry completes it without shipping anything twice")
    func shipmentRefusedMidwayThenRetried() async throws {
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 2)
        let lines = [line("A", 2), line("B", 2)]
        try await apply(.processing, "3006", lines)
        // Both B units are lost after they were reserved: B can no longer ship (a physical shortfall).
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -2, reason: .lost))
        let box = OrderStatusChange.partiallyShipped(shipmentID: "box-1", items: [item("A", 1), item("B", 1)])
        let refused = await orders.apply(box, toOrder: "3006", lines: lines)
        #expect(refused.refusal?.code == .insufficient)
        #expect(refused.refusal?.message.hasSuffix("(after 1 of 2 cells of box-1 were applied; retry the same change to complete it)") == true)
        #expect(try await f.fig("A") == "9/1")
        try await f.receive("B", "MAIN", 1)
        let r = try await apply(box, "3006", lines)
        #expect(!r.replayed, "the B cell was shipped only now")
        #expect(figures(r.reservation) == ["A MAIN q=2 f=1 r=0 b=0 rem=1", "B MAIN q=2 f=1 r=0 b=0 rem=1"])
        #expect(try await f.fig("A") == "9/1", "A shipped once")
        #expect(try await f.fig("B") == "0/1")
    }

    @Test("a shipment id reused for other items is CONFLICT")
    func shipmentIDReused() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 5)]
        try await apply(.processing, "3004", lines)
        try await apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 1)]), "3004", lines)
        #expect(await orders.apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 2)]), toOrder: "3004", lines: lines).refusal?.code == .conflict)
        #expect(try await f.fig("A") == "9/4")
    }

    @Test("a variant held in two warehouses needs its warehouse named in a shipment")
    func splitLineNeedsWarehouse() async throws {
        try await f.warehouse("EAST", priority: 5)
        try await f.receive("A", "MAIN", 2)
        try await f.receive("A", "EAST", 2)
        let lines = [line("A", 3)]
        _ = try must(await OrderLifecycle(engine: f.engine, strategy: .split).apply(.processing, toOrder: "3005", lines: lines))
        let r = try await f.reservation("order:3005")
        #expect(figures(r) == ["A MAIN q=2 f=0 r=0 b=0 rem=2", "A EAST q=1 f=0 r=0 b=0 rem=1"])
        let unnamed = await orders.apply(.partiallyShipped(shipmentID: "b1", items: [item("A", 1)]), toOrder: "3005", lines: lines)
        #expect(unnamed.refusal?.code == .invalid)
        #expect(unnamed.refusal?.message == "A is held in MAIN and EAST: name the warehouse")
        let named = try await apply(.partiallyShipped(shipmentID: "b1", items: [item("A", 1, warehouse: "east")]), "3005", lines)
        #expect(figures(named.reservation) == ["A MAIN q=2 f=0 r=0 b=0 rem=2", "A EAST q=1 f=1 r=0 b=0 rem=0"])
        #expect(try await f.fig("A", "EAST") == "1/0")
        let elsewhere = await orders.apply(.partiallyShipped(shipmentID: "b2", items: [item("B", 1)]), toOrder: "3005", lines: lines)
        #expect(elsewhere.refusal?.code == .notFound)
    }

    // MARK: Cancel

    @Test("cancel releases what remains, once; after a partial shipment the order stays fulfilled for what shipped")
    func cancelAfterPartialShipment() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 5)]
        try await apply(.processing, "4001", lines)
        try await apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 2)]), "4001", lines)
        let r = try await applyTwice(.cancelled, "4001", lines)
        #expect(r.reservation?.status == .fulfilled, "something shipped and nothing remains (SPEC §7.5)")
        #expect(figures(r.reservation) == ["A MAIN q=5 f=2 r=3 b=0 rem=0"])
        #expect(try await f.fig("A") == "8/0")
        let counters = await f.engine.stats().counters
        #expect(counters.unitsFulfilled == 2)
        #expect(counters.unitsReleased == 3)
        let release = try #require(await f.events().last { $0.type == .release })
        #expect(release.reason == .cancelled)

        // Shipping the cancelled order now has nothing to ship and ships nothing.
        let seq = f.nextSeq
        let shipped = try await apply(.shipped, "4001", lines)
        #expect(shipped.reservation?.status == .fulfilled)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "8/0")
    }

    @Test("shipping an order cancelled before anything shipped is CLOSED")
    func shippedAfterCancel() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 4)]
        try await apply(.processing, "4002", lines)
        let cancelled = try await apply(.cancelled, "4002", lines)
        #expect(cancelled.reservation?.status == .released)
        #expect(await orders.apply(.shipped, toOrder: "4002", lines: lines).refusal?.code == .closed)
        #expect(await orders.apply(.partiallyShipped(shipmentID: "b", items: [item("A", 1)]), toOrder: "4002", lines: lines).refusal?.code == .closed)
        #expect(try await f.fig("A") == "10/0")
    }

    @Test("cancel of an order that holds nothing succeeds and changes nothing")
    func cancelWithNothingReserved() async throws {
        let seq = f.nextSeq
        let r = try await apply(.cancelled, "4003", [line("A", 1)])
        #expect(r.reservation == nil)
        #expect(!r.replayed)
        #expect(f.nextSeq == seq)
    }

    // MARK: Returns

    @Test("a return restocks or records damage per item, once; the retry answers the same receipts")
    func returnsRestockAndDamaged() async throws {
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 10)
        let lines = [line("A", 4), line("B", 2)]
        try await apply(.processing, "5001", lines)
        try await apply(.shipped, "5001", lines)
        #expect(try await f.fig("A") == "6/0")
        #expect(try await f.fig("B") == "8/0")

        let seq = f.nextSeq
        let r = try await applyTwice(.returned(returnID: "rma-1", items: [back("B", 1, .damaged), back("A", 2, .restock), back("A", 1, .damaged)]), "5001", lines)
        #expect(r.reservation == nil, "a return changes cells, not the reservation")
        #expect(r.returns.map { "\($0.cell.variant) \($0.cell.warehouse) \($0.cell.onHand)/\($0.cell.reserved)" } == [
            "A MAIN 6/0", "A MAIN 8/0", "B MAIN 8/0",
        ])
        #expect(try await f.fig("A") == "8/0", "two restocked, one damaged")
        #expect(try await f.fig("B") == "8/0", "damaged goods do not go back on the shelf")
        let entries = await f.events(from: seq)
        #expect(entries.map { "\($0.type.rawValue) \($0.variant) \($0.reason?.rawValue ?? "-") \($0.deltaOnHand)" } == [
            "return A damaged 0", "return A returned 2", "return B damaged 0",
        ])
        #expect(entries.allSatisfy { $0.reference == "order 5001 return rma-1" })
        #expect(try await f.reservation("order:5001").status == .fulfilled)
    }

    @Test("a return of more than was shipped is refused whole and changes nothing")
    func returnOfMoreThanShipped() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 4)]
        try await apply(.processing, "5002", lines)
        try await apply(.partiallyShipped(shipmentID: "box-1", items: [item("A", 1)]), "5002", lines)
        let seq = f.nextSeq
        let refused = await orders.apply(.returned(returnID: "rma-1", items: [back("A", 1, .restock), back("A", 1, .damaged)]), toOrder: "5002", lines: lines)
        #expect(refused.refusal?.code == .invalid)
        #expect(refused.refusal?.message == "return rma-1 of A: 2 is more than the 1 shipped")
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "9/3")
        let cancelledBeforeShipping = await orders.apply(.returned(returnID: "rma-2", items: [back("A", 1, .restock)]), toOrder: "5003", lines: lines)
        #expect(cancelledBeforeShipping.refusal?.code == .invalid, "nothing of it is known: no reservation, no warehouse")
    }

    @Test("a return may go to another warehouse than the goods left; a variant shipped from two must name one")
    func returnToAnotherWarehouse() async throws {
        try await f.warehouse("EAST", priority: 5)
        try await f.warehouse("RETURNS", priority: 9)
        try await f.receive("A", "MAIN", 2)
        try await f.receive("A", "EAST", 2)
        let lines = [line("A", 3)]
        _ = try must(await OrderLifecycle(engine: f.engine, strategy: .split).apply(.processing, toOrder: "5005", lines: lines))
        try await apply(.shipped, "5005", lines)
        let unnamed = await orders.apply(.returned(returnID: "rma-1", items: [back("A", 1, .restock)]), toOrder: "5005", lines: lines)
        #expect(unnamed.refusal?.message == "A is held in MAIN and EAST: name the warehouse")
        let nowhere = await orders.apply(
            .returned(returnID: "rma-1", items: [back("A", 1, .restock, warehouse: "MAIN"), back("A", 1, .restock, warehouse: "WEST")]), toOrder: "5005", lines: lines)
        #expect(nowhere.refusal?.code == .notFound, "checked before any cell is returned")
        #expect(try await f.fig("A") == "0/0")
        let r = try await applyTwice(
            .returned(returnID: "rma-1", items: [back("A", 2, .restock, warehouse: "returns"), back("A", 1, .damaged, warehouse: "EAST")]), "5005", lines)
        #expect(r.returns.map { "\($0.cell.warehouse) \($0.cell.onHand)" } == ["EAST 1", "RETURNS 2"])
        #expect(try await f.fig("A", "RETURNS") == "2/0")
        #expect(try await f.fig("A", "EAST") == "1/0")
        let tooMany = await orders.apply(.returned(returnID: "rma-2", items: [back("A", 4, .restock, warehouse: "RETURNS")]), toOrder: "5005", lines: lines)
        #expect(tooMany.refusal?.message == "return rma-2 of A: 4 is more than the 3 shipped")
    }

    @Test("a return after the reservation was forgotten goes to the warehouse the order names")
    func returnAfterRetention() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 2, warehouse: "main")]
        try await apply(.processing, "5004", lines)
        try await apply(.shipped, "5004", lines)
        f.advance(.seconds(3601))  // the fixture's retention is an hour
        #expect(await f.engine.reservation("order:5004").refusal?.code == .notFound)
        let r = try await applyTwice(.returned(returnID: "rma-1", items: [back("A", 2, .restock)]), "5004", lines)
        #expect(r.returns.map(\.cell.onHand) == [10])
        #expect(try await f.fig("A") == "10/0")
    }

    // MARK: Untracked products

    @Test("untracked lines never reach the engine and every change reports them")
    func untrackedLinesAreSkipped() async throws {
        try await f.receive("A", "MAIN", 10)
        let lines = [line("A", 2), line("GIFT-NOTE", 1, tracked: false), line("SETUP-FEE", 1, warehouse: "MAIN", tracked: false)]
        let skippedLines = [item("GIFT-NOTE", 1, warehouse: "*"), item("SETUP-FEE", 1, warehouse: "MAIN")]
        let processed = try await applyTwice(.processing, "6001", lines)
        #expect(processed.skipped == skippedLines)
        #expect(figures(processed.reservation) == ["A MAIN q=2 f=0 r=0 b=0 rem=2"])

        let box = try await applyTwice(.partiallyShipped(shipmentID: "box-1", items: [item("A", 1), item("GIFT-NOTE", 1)]), "6001", lines)
        #expect(box.skipped == [item("GIFT-NOTE", 1)])
        let shipped = try await apply(.shipped, "6001", lines)
        #expect(shipped.skipped == skippedLines)
        let returned = try await apply(.returned(returnID: "rma-1", items: [back("SETUP-FEE", 1, .restock), back("A", 1, .restock)]), "6001", lines)
        #expect(returned.skipped == [item("SETUP-FEE", 1)])
        #expect(returned.returns.count == 1)

        #expect(try await f.fig("A") == "9/0")
        #expect(await f.engine.stats().cells == 1, "no cell was made for an untracked product")
        #expect(await f.events().allSatisfy { $0.variant != "GIFT-NOTE" && $0.variant != "SETUP-FEE" })
    }

    @Test("an order of untracked lines only: every change succeeds, holds nothing and writes nothing")
    func onlyUntrackedLines() async throws {
        let lines = [line("GIFT-CARD", 1, tracked: false)]
        let seq = f.nextSeq
        for change in [OrderStatusChange.processing, .shipped, .cancelled, .partiallyShipped(shipmentID: "b", items: [item("GIFT-CARD", 1)])] {
            let r = try await apply(change, "6002", lines)
            #expect(r.reservation == nil)
            #expect(r.skipped.map(\.variant) == ["GIFT-CARD"])
            #expect(!r.replayed)
        }
        #expect(f.nextSeq == seq)
        #expect(await f.engine.reservation("order:6002").refusal?.code == .notFound)
    }

    // MARK: Names

    @Test("ids that cannot make a reservation id or a KEY are INVALID before anything happens")
    func invalidNames() async throws {
        let lines = [line("A", 1)]
        let seq = f.nextSeq
        #expect(await orders.apply(.processing, toOrder: "has space", lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.processing, toOrder: String(repeating: "9", count: 123), lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.shipped, toOrder: String(repeating: "9", count: 111), lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.partiallyShipped(shipmentID: "a/b", items: [item("A", 1)]), toOrder: "1", lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.returned(returnID: "", items: [back("A", 1, .restock)]), toOrder: "1", lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.partiallyShipped(shipmentID: "b", items: [item("A", 0)]), toOrder: "1", lines: lines).refusal?.code == .invalid)
        #expect(await orders.apply(.returned(returnID: "r", items: [back("A", -1, .restock)]), toOrder: "1", lines: lines).refusal?.code == .invalid)
        #expect(f.nextSeq == seq)
    }

    // MARK: Restart

    @Test("a retry after a restart of a durable engine is still recognised")
    func retryAfterRestart() async throws {
        var template = Array("/tmp/stockpile-orders-test-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let lines = [line("A", 3)]
        let box = OrderStatusChange.partiallyShipped(shipmentID: "box-1", items: [item("A", 1)])
        let first: OrderInventoryResult
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
            _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
            let orders = OrderLifecycle(engine: engine)
            _ = try must(await orders.apply(.processing, toOrder: "7001", lines: lines))
            first = try must(await orders.apply(box, toOrder: "7001", lines: lines))
            try engine.close()
        }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: clock)
        let orders = OrderLifecycle(engine: engine)
        let retry = try must(await orders.apply(box, toOrder: "7001", lines: lines))
        #expect(retry.replayed)
        #expect(unmarked(retry) == first)
        let processedAgain = try must(await orders.apply(.processing, toOrder: "7001", lines: lines))
        #expect(processedAgain.replayed)
        #expect(try must(await engine.cell(variant: "A", warehouse: "MAIN")).onHand == 9)
        #expect(try must(await engine.cell(variant: "A", warehouse: "MAIN")).reserved == 2)
        try engine.close()
    }
}
