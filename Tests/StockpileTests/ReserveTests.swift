// Black-box tests of RESERVE, derived from SPEC §1, §2, §7 and docs/DECISIONS.md (not from the code):
// single and multi-line requests, merging, all-or-nothing, INSUFFICIENT figures, warehouses that do
// not exist or are inactive, placement of `*` lines, backorder and unlimited variants, replays and
// conflicts, and the limits on ids, quantities, lines and TTLs.
//
// The small fixture these three files share (`BlackBox`) is at the end of this file.

import Stockpile
import StockpileCore
import Testing

private typealias Fixture = BlackBox.Fixture

private func rline(_ variant: String, _ warehouse: String, _ quantity: Int64) -> ReserveLine {
    BlackBox.line(variant, warehouse, quantity)
}

private func must<T>(_ outcome: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try BlackBox.must(outcome, sourceLocation: sourceLocation)
}

private func figures(_ r: Reservation) -> [String] { BlackBox.figures(r) }

@Suite("RESERVE")
struct ReserveTests {

    // MARK: Single and multi-line

    @Test("a single-line reserve holds the stock, records the line and logs one reserve entry")
    func singleLine() async throws {
        let f = Fixture()
        try await f.receive("SKU-1", "MAIN", 10)
        let before = f.nextSeq
        let r = try must(await f.reserve("order-1", [rline("SKU-1", "MAIN", 3)], customer: "cust-9", actor: "checkout"))
        #expect(!r.replayed)
        #expect(r.reservation.id == "order-1")
        #expect(r.reservation.status == .active)
        #expect(r.reservation.expiresAt == nil)
        #expect(r.reservation.customer == "cust-9")
        #expect(r.reservation.createdAt == f.now)
        #expect(figures(r.reservation) == ["SKU-1 MAIN q=3 f=0 r=0 b=0 rem=3"])
        #expect(try await f.fig("SKU-1") == "10/3")
        let entries = await f.events(from: before)
        #expect(entries.count == 1)
        let e = try #require(entries.first)
        #expect(e.seq == before)
        #expect(e.type == .reserve)
        #expect(e.variant == "SKU-1" && e.warehouse == "MAIN")
        #expect(e.deltaOnHand == 0 && e.deltaReserved == 3)
        #expect(e.onHand == 10 && e.reserved == 3 && e.available == 7)
        #expect(e.reservation == "order-1")
        #expect(e.actor == "checkout")
        // The query shows the same reservation as the reply.
        #expect(try await f.reservation("order-1") == r.reservation)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test(
        "a single-line reserve's entry reads back whole whether its names fit a slot of the ring of recent entries or not",
        arguments: [
            ("SKU-1", "order-1", "checkout"),
            (String(repeating: "V", count: 64), String(repeating: "r", count: 128), String(repeating: "a", count: 40)),
        ])
    func singleLineEntryNames(variant: String, id: String, actor: String) async throws {
        let f = Fixture()
        try await f.receive(variant, "MAIN", 10)
        let before = f.nextSeq
        _ = try must(await f.reserve(id, [rline(variant, "MAIN", 4)], actor: actor))
        let entries = await f.events(from: before)
        #expect(entries.count == 1)
        let e = try #require(entries.first)
        #expect(e.seq == before && e.type == .reserve)
        #expect(e.variant == variant && e.warehouse == "MAIN")
        #expect(e.deltaOnHand == 0 && e.deltaReserved == 4)
        #expect(e.onHand == 10 && e.reserved == 4)
        #expect(e.reservation == id && e.actor == actor && e.note == "" && e.reference == "" && e.reason == nil)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a multi-line reserve over several variants and warehouses changes every cell and logs consecutive entries")
    func multiLine() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        let variants = (0..<12).map { "V\($0)" }
        for v in variants {
            try await f.receive(v, "MAIN", 5)
            try await f.receive(v, "EAST", 7)
        }
        let lines = variants.enumerated().map { i, v in rline(v, i.isMultiple(of: 2) ? "MAIN" : "EAST", Int64(i % 4 + 1)) }
        let before = f.nextSeq
        let r = try must(await f.reserve("multi", lines))
        #expect(r.reservation.lines.count == 12)
        #expect(r.reservation.lines.map(\.variant) == variants, "lines keep the order of the request")
        for (i, v) in variants.enumerated() {
            let w = i.isMultiple(of: 2) ? "MAIN" : "EAST"
            let other = i.isMultiple(of: 2) ? "EAST" : "MAIN"
            let onHand = i.isMultiple(of: 2) ? 5 : 7
            #expect(try await f.fig(v, w) == "\(onHand)/\(i % 4 + 1)")
            #expect(try await f.fig(v, other).hasSuffix("/0"))
        }
        let entries = await f.events(from: before)
        #expect(entries.count == 12)
        #expect(entries.map(\.seq) == Array(before..<(before + 12)))
        #expect(entries.allSatisfy { $0.type == .reserve && $0.reservation == "multi" })
        #expect(Set(entries.map(\.variant)) == Set(variants))
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("lines naming the same cell are merged into one line, first appearance fixing the order, warehouse case ignored")
    func mergesLinesPerCell() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 10)
        try await f.receive("A", "EAST", 10)
        let before = f.nextSeq
        let r = try must(
            await f.reserve("m1", [rline("A", "MAIN", 2), rline("B", "MAIN", 1), rline("A", "main", 3), rline("A", "EAST", 1), rline("B", "Main", 4)]))
        #expect(
            figures(r.reservation) == [
                "A MAIN q=5 f=0 r=0 b=0 rem=5", "B MAIN q=5 f=0 r=0 b=0 rem=5", "A EAST q=1 f=0 r=0 b=0 rem=1",
            ])
        #expect(try await f.fig("A") == "10/5")
        #expect(try await f.fig("B") == "10/5")
        #expect(try await f.fig("A", "EAST") == "10/1")
        let entries = await f.events(from: before)
        #expect(entries.count == 3, "one entry per cell, not per request line")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("demand is summed per cell before it is checked: two lines that each fit but together do not are refused")
    func summedDemandIsChecked() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 4)
        let out = await f.reserve("sum", [rline("A", "MAIN", 2), rline("A", "MAIN", 3)])
        let refusal = try #require(out.refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "A" && refusal.warehouse == "MAIN")
        #expect(refusal.available == 4 && refusal.requested == 5, "INSUFFICIENT names the summed demand")
        #expect(try await f.fig("A") == "4/0")
    }

    // MARK: All or nothing

    struct AllOrNothingCase: Sendable, CustomTestStringConvertible {
        var failingIndex: Int
        var lineCount: Int
        var testDescription: String { "line \(failingIndex + 1) of \(lineCount) cannot be met" }
    }

    @Test(
        "a refused multi-line request changes no cell and writes no event",
        arguments: [
            AllOrNothingCase(failingIndex: 0, lineCount: 6), AllOrNothingCase(failingIndex: 3, lineCount: 6),
            AllOrNothingCase(failingIndex: 5, lineCount: 6), AllOrNothingCase(failingIndex: 19, lineCount: 20),
        ])
    func allOrNothing(_ c: AllOrNothingCase) async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        for i in 0..<c.lineCount { try await f.receive("P\(i)", i.isMultiple(of: 3) ? "EAST" : "MAIN", 3) }
        let lines = (0..<c.lineCount).map { i in rline("P\(i)", i.isMultiple(of: 3) ? "EAST" : "MAIN", i == c.failingIndex ? 4 : 2) }
        let seq = f.nextSeq
        let statsBefore = await f.engine.stats()
        let out = await f.reserve("aon", lines)
        let refusal = try #require(out.refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "P\(c.failingIndex)")
        #expect(refusal.available == 3 && refusal.requested == 4)
        for i in 0..<c.lineCount {
            #expect(try await f.fig("P\(i)", i.isMultiple(of: 3) ? "EAST" : "MAIN") == "3/0", "cell P\(i) must be untouched")
        }
        #expect(f.nextSeq == seq)
        #expect(await f.events(from: seq).isEmpty)
        #expect(await f.engine.reservation("aon").refusal?.code == .notFound)
        let statsAfter = await f.engine.stats()
        #expect(statsAfter.reserved == statsBefore.reserved)
        #expect(statsAfter.activeReservations == 0)
        #expect(statsAfter.counters.unitsReserved == 0)
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: INSUFFICIENT figures

    struct InsufficientCase: Sendable, CustomTestStringConvertible {
        var name: String
        var onHand: Int64
        var alreadyReserved: Int64
        var damaged: Int64
        var request: Int64
        var available: Int64
        var testDescription: String { name }
    }

    @Test(
        "INSUFFICIENT names the variant, the warehouse, what was available and what was requested",
        arguments: [
            InsufficientCase(name: "empty cell", onHand: 0, alreadyReserved: 0, damaged: 0, request: 1, available: 0),
            InsufficientCase(name: "one short", onHand: 5, alreadyReserved: 0, damaged: 0, request: 6, available: 5),
            InsufficientCase(name: "partly reserved", onHand: 10, alreadyReserved: 7, damaged: 0, request: 4, available: 3),
            InsufficientCase(name: "fully reserved", onHand: 10, alreadyReserved: 10, damaged: 0, request: 1, available: 0),
            InsufficientCase(name: "cell in shortfall reports its negative available, as STOCK does", onHand: 10, alreadyReserved: 8, damaged: 5, request: 1, available: -3),
        ])
    func insufficientFigures(_ c: InsufficientCase) async throws {
        let f = Fixture()
        if c.onHand > 0 { try await f.receive("SKU", "MAIN", c.onHand) }
        if c.alreadyReserved > 0 { _ = try must(await f.reserve("first", [rline("SKU", "MAIN", c.alreadyReserved)])) }
        if c.damaged > 0 { _ = try must(await f.engine.adjust(variant: "SKU", warehouse: "MAIN", by: Quantity(-c.damaged), reason: .damaged)) }
        let cellBefore = try await f.fig("SKU")
        let refusal = try #require(await f.reserve("second", [rline("SKU", "main", c.request)]).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "SKU")
        #expect(refusal.warehouse == "MAIN")
        #expect(refusal.available == Quantity(c.available))
        #expect(refusal.requested == Quantity(c.request))
        #expect(refusal.description == "INSUFFICIENT SKU MAIN available \(c.available) requested \(c.request)")
        #expect(try await f.fig("SKU") == cellBefore)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("INSUFFICIENT names the first line, in request order, that cannot be met")
    func insufficientNamesFirstFailingLine() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        try await f.receive("B", "MAIN", 1)
        try await f.receive("C", "MAIN", 2)
        let refusal = try #require(await f.reserve("x", [rline("A", "MAIN", 5), rline("C", "MAIN", 3), rline("B", "MAIN", 2)]).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "C" && refusal.available == 2 && refusal.requested == 3)
    }

    @Test("INSUFFICIENT for a `*` line names warehouse `*` and the total available over active warehouses")
    func insufficientForPlacedLine() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.warehouse("WEST")
        try await f.receive("A", "MAIN", 2)
        try await f.receive("A", "EAST", 3)
        try await f.receive("A", "WEST", 50)
        try await f.warehouse("WEST", active: false)
        for strategy in PlacementStrategy.allCases {
            let refusal = try #require(await f.reserve("star-\(strategy)", [rline("A", "*", 6)], strategy: strategy).refusal)
            #expect(refusal.code == .insufficient, "strategy \(strategy)")
            #expect(refusal.variant == "A")
            #expect(refusal.warehouse == "*")
            #expect(refusal.available == 5, "inactive WEST does not count")
            #expect(refusal.requested == 6)
            #expect(refusal.description == "INSUFFICIENT A * available 5 requested 6")
        }
        #expect(try await f.fig("A") == "2/0")
        #expect(try await f.fig("A", "EAST") == "3/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("INSUFFICIENT states the same available that STOCK shows, negative after a loss below reserved")
    func insufficientAgreesWithStockInShortfall() async throws {
        let f = Fixture()
        try await f.receive("s", "MAIN", 8)
        _ = try must(await f.reserve("held", [rline("s", "MAIN", 8)]))
        let loss = try must(await f.engine.adjust(variant: "s", warehouse: "MAIN", by: -3, reason: .damaged))
        #expect(loss.cell.available == -3 && loss.shortfall == 3)
        let shown = try await f.cell("s").available
        #expect(shown == -3)
        let refusal = try #require(await f.reserve("x", [rline("s", "MAIN", 1)]).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.available == shown)
        #expect(refusal.description == "INSUFFICIENT s MAIN available -3 requested 1")
        #expect(try await f.fig("s") == "5/8")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("INSUFFICIENT for a `*` line reports the sum of what STOCK shows for the active warehouses, shortfalls included")
    func insufficientForPlacedLineCountsShortfalls() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.warehouse("WEST")
        try await f.receive("s", "MAIN", 8)
        _ = try must(await f.reserve("held", [rline("s", "MAIN", 8)]))
        _ = try must(await f.engine.adjust(variant: "s", warehouse: "MAIN", by: -3, reason: .damaged))
        try await f.receive("s", "EAST", 2)
        try await f.receive("s", "WEST", 50)
        try await f.warehouse("WEST", active: false)
        let stock = try must(await f.engine.stock(variant: "s"))
        let shownOverActive = stock.cells.filter { $0.warehouse != "WEST" }.reduce(Quantity.zero) { $0 + $1.available }
        #expect(shownOverActive == -1, "MAIN -3 and EAST 2; inactive WEST is left out")
        for strategy in PlacementStrategy.allCases {
            let refusal = try #require(await f.reserve("star-\(strategy)", [rline("s", "*", 3)], strategy: strategy).refusal)
            #expect(refusal.code == .insufficient, "strategy \(strategy)")
            #expect(refusal.warehouse == "*" && refusal.available == shownOverActive && refusal.requested == 3, "strategy \(strategy)")
        }
        // Placement still takes what a warehouse really has: EAST's 2 are not hidden by MAIN's shortfall.
        let r = try must(await f.reserve("fits", [rline("s", "*", 2)]))
        #expect(figures(r.reservation) == ["s EAST q=2 f=0 r=0 b=0 rem=2"])
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("INSUFFICIENT of a backorder variant whose backorder was turned off reports its negative available")
    func insufficientAfterBackorderIsNegative() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        try await f.receive("PRE", "MAIN", 2)
        _ = try must(await f.reserve("early", [rline("PRE", "MAIN", 5)]))
        try await f.policy("PRE", backorder: false)
        let refusal = try #require(await f.reserve("late", [rline("PRE", "MAIN", 1)]).refusal)
        let shown = try await f.cell("PRE").available
        #expect(refusal.available == -3 && refusal.available == shown)
        #expect(refusal.description == "INSUFFICIENT PRE MAIN available -3 requested 1")
    }

    @Test("`priority` and `most` need one warehouse that takes the whole line; INSUFFICIENT then reports the total, even when it exceeds the request")
    func noSingleWarehouseCanTakeTheLine() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 3)
        try await f.receive("A", "EAST", 3)
        for strategy in [PlacementStrategy.priority, .most] {
            let refusal = try #require(await f.reserve("x", [rline("A", "*", 5)], strategy: strategy).refusal)
            #expect(refusal.code == .insufficient)
            #expect(refusal.warehouse == "*" && refusal.available == 6 && refusal.requested == 5)
        }
        let r = try must(await f.reserve("x", [rline("A", "*", 5)], strategy: .split))
        #expect(figures(r.reservation) == ["A MAIN q=3 f=0 r=0 b=0 rem=3", "A EAST q=2 f=0 r=0 b=0 rem=2"])
    }

    @Test("a `*` line is placed on what the explicit lines leave, and INSUFFICIENT reports that remainder")
    func placedLineAfterExplicitLines() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 3)
        try await f.receive("A", "EAST", 2)
        let refusal = try #require(await f.reserve("x", [rline("A", "*", 4), rline("A", "MAIN", 2)]).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.warehouse == "*")
        #expect(refusal.available == 3)
        #expect(refusal.requested == 4)
        // With 3 it fits: MAIN keeps 1, EAST 2, so priority puts the `*` line in EAST.
        let r = try must(await f.reserve("y", [rline("A", "*", 2), rline("A", "MAIN", 2)]))
        #expect(figures(r.reservation).sorted() == ["A EAST q=2 f=0 r=0 b=0 rem=2", "A MAIN q=2 f=0 r=0 b=0 rem=2"])
        #expect(try await f.fig("A") == "3/2")
        #expect(try await f.fig("A", "EAST") == "2/2")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("`*` with no active warehouse at all is INSUFFICIENT with warehouse `*` and available 0")
    func placedLineWithNoActiveWarehouse() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 9)
        try await f.warehouse("MAIN", active: false)
        let refusal = try #require(await f.reserve("x", [rline("A", "*", 1)]).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.warehouse == "*")
        #expect(refusal.available == 0)
        #expect(refusal.requested == 1)
        #expect(try await f.fig("A") == "9/0")
    }

    // MARK: NOTFOUND, INACTIVE, precedence

    @Test("a warehouse that does not exist is NOTFOUND; a malformed code is INVALID")
    func unknownWarehouse() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        #expect(await f.reserve("x", [rline("A", "NOPE", 1)]).refusal?.code == .notFound)
        #expect(await f.reserve("x", [rline("A", "MAIN", 1), rline("A", "nope", 1)]).refusal?.code == .notFound)
        #expect(await f.reserve("x", [rline("A", "BAD!", 1)]).refusal?.code == .invalid)
        #expect(await f.reserve("x", [rline("A", String(repeating: "W", count: 33), 1)]).refusal?.code == .invalid)
        #expect(await f.reserve("x", [rline("A", "", 1)]).refusal?.code == .invalid)
        #expect(try await f.fig("A") == "5/0")
        #expect(await f.engine.reservation("x").refusal?.code == .notFound)
        // A valid 32-character code that exists is fine.
        let long = String(repeating: "W", count: 32)
        try await f.warehouse(long)
        try await f.receive("A", long, 1)
        _ = try must(await f.reserve("x", [rline("A", long.lowercased(), 1)]))
    }

    @Test("an inactive warehouse takes no new reservation (INACTIVE); reactivated, it does")
    func inactiveWarehouse() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "EAST", 5)
        try await f.warehouse("EAST", active: false)
        let refusal = try #require(await f.reserve("x", [rline("A", "EAST", 1)]).refusal)
        #expect(refusal.code == .inactive)
        #expect(try await f.fig("A", "EAST") == "5/0")
        try await f.warehouse("EAST", active: true)
        _ = try must(await f.reserve("x", [rline("A", "EAST", 1)]))
        #expect(try await f.fig("A", "EAST") == "5/1")
    }

    struct PrecedenceCase: Sendable, CustomTestStringConvertible {
        var name: String
        var lines: [ReserveLine]
        var expected: RefusalCode
        var testDescription: String { name }
    }

    @Test(
        "NOTFOUND is checked for all lines first, then INACTIVE for all lines, then stock",
        arguments: [
            PrecedenceCase(
                name: "inactive before unknown in the request: NOTFOUND wins",
                lines: [BlackBox.line("A", "SHUT", 1), BlackBox.line("A", "NOPE", 1)], expected: .notFound),
            PrecedenceCase(
                name: "short stock before unknown: NOTFOUND wins",
                lines: [BlackBox.line("A", "MAIN", 99), BlackBox.line("A", "NOPE", 1)], expected: .notFound),
            PrecedenceCase(
                name: "short stock before inactive: INACTIVE wins",
                lines: [BlackBox.line("A", "MAIN", 99), BlackBox.line("A", "SHUT", 1)], expected: .inactive),
            PrecedenceCase(
                name: "bad quantity after unknown warehouse: INVALID wins",
                lines: [BlackBox.line("A", "NOPE", 1), BlackBox.line("A", "MAIN", 0)], expected: .invalid),
            PrecedenceCase(
                name: "over the quantity limit after unknown warehouse: LIMIT wins",
                lines: [BlackBox.line("A", "NOPE", 1), BlackBox.line("A", "MAIN", 1_000_000_000_001)], expected: .limit),
        ])
    func precedence(_ c: PrecedenceCase) async throws {
        let f = Fixture()
        try await f.warehouse("SHUT", active: false)
        try await f.receive("A", "MAIN", 5)
        let seq = f.nextSeq
        #expect(await f.reserve("p", c.lines).refusal?.code == c.expected)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "5/0")
    }

    struct ReuseCase: Sendable, CustomTestStringConvertible {
        var name: String
        var lines: [ReserveLine]
        var expected: RefusalCode
        var testDescription: String { name }
    }

    @Test(
        "a reused id is checked in order: INVALID, LIMIT, then CONFLICT before NOTFOUND and stock",
        arguments: [
            ReuseCase(name: "zero quantity", lines: [BlackBox.line("A", "MAIN", 0)], expected: .invalid),
            ReuseCase(name: "257 lines", lines: Array(repeating: BlackBox.line("A", "MAIN", 1), count: 257), expected: .limit),
            ReuseCase(name: "unknown warehouse", lines: [BlackBox.line("A", "NOPE", 1)], expected: .conflict),
            ReuseCase(name: "inactive warehouse", lines: [BlackBox.line("A", "SHUT", 1)], expected: .conflict),
            ReuseCase(name: "more than available", lines: [BlackBox.line("A", "MAIN", 99)], expected: .conflict),
        ])
    func reusedIdPrecedence(_ c: ReuseCase) async throws {
        let f = Fixture()
        try await f.warehouse("SHUT", active: false)
        try await f.receive("A", "MAIN", 5)
        let first = try must(await f.reserve("used", [rline("A", "MAIN", 1)]))
        #expect(await f.reserve("used", c.lines).refusal?.code == c.expected)
        #expect(try await f.reservation("used") == first.reservation)
        #expect(try await f.fig("A") == "5/1")
    }

    // MARK: Placement

    struct PlacementCase: Sendable, CustomTestStringConvertible {
        var name: String
        /// code, priority, on_hand, active
        var warehouses: [Stocked]
        var strategy: PlacementStrategy?
        var defaultStrategy: PlacementStrategy = .priority
        var quantity: Int64
        /// warehouse → quantity of the resulting lines
        var placed: [String: Int64]
        var testDescription: String { name }
    }

    struct Stocked: Sendable {
        var code: String
        var priority: Int64?
        var onHand: Int64
        var active: Bool = true
        init(_ code: String, _ priority: Int64?, _ onHand: Int64, active: Bool = true) {
            self.code = code
            self.priority = priority
            self.onHand = onHand
            self.active = active
        }
    }

    @Test(
        "a `*` line is placed by the strategy, and the reply says where",
        arguments: [
            PlacementCase(
                name: "priority: MAIN (priority 0) first when it can take the whole line",
                warehouses: [Stocked("MAIN", nil, 5), Stocked("EAST", nil, 50)], strategy: .priority, quantity: 5, placed: ["MAIN": 5]),
            PlacementCase(
                name: "priority: the first that can take the whole line, by priority",
                warehouses: [Stocked("MAIN", nil, 2), Stocked("EAST", nil, 10), Stocked("WEST", 50, 10)], strategy: .priority, quantity: 5,
                placed: ["WEST": 5]),
            PlacementCase(
                name: "priority: equal priorities are ordered by code",
                warehouses: [Stocked("MAIN", nil, 0), Stocked("WEST", nil, 10), Stocked("EAST", nil, 10)], strategy: .priority, quantity: 3,
                placed: ["EAST": 3]),
            PlacementCase(
                name: "priority: an inactive warehouse is skipped",
                warehouses: [Stocked("MAIN", nil, 10, active: false), Stocked("EAST", nil, 10)], strategy: .priority, quantity: 3,
                placed: ["EAST": 3]),
            PlacementCase(
                name: "priority is the default strategy",
                warehouses: [Stocked("MAIN", nil, 4), Stocked("EAST", nil, 9)], strategy: nil, quantity: 4, placed: ["MAIN": 4]),
            PlacementCase(
                name: "most: the warehouse with the most available, whatever its priority",
                warehouses: [Stocked("MAIN", nil, 6), Stocked("EAST", nil, 9)], strategy: .most, quantity: 2, placed: ["EAST": 2]),
            PlacementCase(
                name: "most: a tie is broken by priority",
                warehouses: [Stocked("MAIN", nil, 3), Stocked("EAST", nil, 8), Stocked("WEST", 50, 8)], strategy: .most, quantity: 2,
                placed: ["WEST": 2]),
            PlacementCase(
                name: "most: a tie in priority too is broken by code",
                warehouses: [Stocked("MAIN", nil, 3), Stocked("WEST", nil, 8), Stocked("EAST", nil, 8)], strategy: .most, quantity: 2,
                placed: ["EAST": 2]),
            PlacementCase(
                name: "most: an inactive warehouse is skipped even when it has the most",
                warehouses: [Stocked("MAIN", nil, 3), Stocked("EAST", nil, 80, active: false), Stocked("WEST", nil, 8)], strategy: .most,
                quantity: 2, placed: ["WEST": 2]),
            PlacementCase(
                name: "most as the engine's default strategy",
                warehouses: [Stocked("MAIN", nil, 6), Stocked("EAST", nil, 9)], strategy: nil, defaultStrategy: .most, quantity: 2,
                placed: ["EAST": 2]),
            PlacementCase(
                name: "split: fills across warehouses in priority order",
                warehouses: [Stocked("MAIN", nil, 2), Stocked("EAST", nil, 10), Stocked("WEST", 50, 3)], strategy: .split, quantity: 7,
                placed: ["MAIN": 2, "WEST": 3, "EAST": 2]),
            PlacementCase(
                name: "split: one warehouse enough gives one line",
                warehouses: [Stocked("MAIN", nil, 9), Stocked("EAST", nil, 10)], strategy: .split, quantity: 7, placed: ["MAIN": 7]),
            PlacementCase(
                name: "split: skips inactive and empty warehouses",
                warehouses: [Stocked("MAIN", nil, 0), Stocked("EAST", nil, 10, active: false), Stocked("WEST", nil, 4), Stocked("ZED", nil, 4)],
                strategy: .split, quantity: 6, placed: ["WEST": 4, "ZED": 2]),
        ])
    func placement(_ c: PlacementCase) async throws {
        let f = Fixture(defaultStrategy: c.defaultStrategy)
        for w in c.warehouses {
            if w.code != "MAIN" || w.priority != nil { try await f.warehouse(w.code, priority: w.priority) }
            if w.onHand > 0 { try await f.receive("A", w.code, w.onHand) }
        }
        for w in c.warehouses where !w.active { try await f.warehouse(w.code, active: false) }
        let r = try must(await f.reserve("placed", [rline("A", "*", c.quantity)], strategy: c.strategy))
        var got: [String: Int64] = [:]
        for line in r.reservation.lines {
            #expect(line.variant == "A")
            #expect(line.warehouse != "*", "the reply says where the line went")
            #expect(got[line.warehouse] == nil, "one line per warehouse")
            got[line.warehouse] = line.quantity.units
        }
        #expect(got == c.placed)
        for w in c.warehouses {
            let reserved = c.placed[w.code] ?? 0
            #expect(try await f.fig("A", w.code) == "\(w.onHand)/\(reserved)")
        }
        // The stored reservation agrees with the reply.
        #expect(try await f.reservation("placed") == r.reservation)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("`*` lines of one variant are merged before placement")
    func placedLinesMergeBeforePlacement() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 3)
        try await f.receive("A", "EAST", 4)
        // Merged, 4 does not fit MAIN (3), so priority places it whole in EAST.
        let r = try must(await f.reserve("x", [rline("A", "*", 2), rline("A", "*", 2)]))
        #expect(figures(r.reservation) == ["A EAST q=4 f=0 r=0 b=0 rem=4"])
        #expect(try await f.fig("A") == "3/0")
        #expect(try await f.fig("A", "EAST") == "4/4")
    }

    @Test("a `*` line placed into a cell that also has an explicit line merges into that line")
    func placedLineMergesWithExplicitLine() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 5)
        try await f.receive("A", "EAST", 5)
        let r = try must(await f.reserve("x", [rline("A", "MAIN", 1), rline("A", "*", 2)]))
        #expect(figures(r.reservation) == ["A MAIN q=3 f=0 r=0 b=0 rem=3"])
        #expect(try await f.fig("A") == "5/3")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a split that cannot cover the whole quantity is refused whole")
    func splitRefusedWhole() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 2)
        try await f.receive("A", "EAST", 3)
        let seq = f.nextSeq
        let refusal = try #require(await f.reserve("x", [rline("A", "*", 6)], strategy: .split).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.warehouse == "*" && refusal.available == 5 && refusal.requested == 6)
        #expect(try await f.fig("A") == "2/0")
        #expect(try await f.fig("A", "EAST") == "3/0")
        #expect(f.nextSeq == seq)
    }

    // MARK: Backorders

    @Test("a backorder variant may reserve past available; the uncovered part is backordered and listed by BACKORDERS")
    func backorderVariant() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        try await f.receive("PRE", "MAIN", 3)
        let r1 = try must(await f.reserve("b1", [rline("PRE", "MAIN", 5)]))
        #expect(figures(r1.reservation) == ["PRE MAIN q=5 f=0 r=0 b=2 rem=5"])
        #expect(try await f.cell("PRE").available == -2)
        // Available before is already negative: the whole of the next line is backordered.
        let r2 = try must(await f.reserve("b2", [rline("PRE", "MAIN", 4)]))
        #expect(figures(r2.reservation) == ["PRE MAIN q=4 f=0 r=0 b=4 rem=4"])
        // A line covered by stock is not backordered.
        try await f.receive("PRE", "MAIN", 100)
        let r3 = try must(await f.reserve("b3", [rline("PRE", "MAIN", 1)]))
        #expect(figures(r3.reservation) == ["PRE MAIN q=1 f=0 r=0 b=0 rem=1"])
        #expect(try await f.fig("PRE") == "103/10")

        let list = try must(await f.engine.backorders())
        #expect(list.map(\.reservation) == ["b1", "b2"])
        #expect(list.first?.variant == "PRE" && list.first?.warehouse == "MAIN")
        #expect(list.first?.quantity == 5 && list.first?.remaining == 5 && list.first?.backordered == 2)
        #expect(list.last?.quantity == 4 && list.last?.backordered == 4)

        // A closed reservation is no longer listed.
        _ = try must(await f.engine.release("b1"))
        #expect(try must(await f.engine.backorders()).map(\.reservation) == ["b2"])
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a variant without backorder is refused where a backorder variant is not")
    func noBackorderByDefault() async throws {
        let f = Fixture()
        try await f.receive("STD", "MAIN", 3)
        #expect(await f.reserve("n", [rline("STD", "MAIN", 4)]).refusal?.code == .insufficient)
        #expect(try must(await f.engine.backorders()).isEmpty)
    }

    @Test("a `*` line of a backorder variant that no warehouse can cover goes whole to the first warehouse by priority")
    func backorderPlacedLine() async throws {
        for strategy in [PlacementStrategy.priority, .most] {
            let f = Fixture()
            try await f.policy("PRE", backorder: true)
            try await f.warehouse("EAST", priority: 10)
            try await f.warehouse("MAIN", priority: 20)
            try await f.receive("PRE", "MAIN", 3)
            try await f.receive("PRE", "EAST", 2)
            let r = try must(await f.reserve("x", [rline("PRE", "*", 6)], strategy: strategy))
            #expect(figures(r.reservation) == ["PRE EAST q=6 f=0 r=0 b=4 rem=6"], "strategy \(strategy)")
            #expect(try await f.fig("PRE", "EAST") == "2/6")
            #expect(try await f.fig("PRE") == "3/0")
            #expect(await f.engine.verify().isEmpty)
        }
    }

    @Test("split of a backorder variant fills what warehouses have and backorders the rest in the first warehouse by priority")
    func backorderSplit() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        try await f.warehouse("EAST")
        try await f.receive("PRE", "MAIN", 2)
        try await f.receive("PRE", "EAST", 3)
        let r = try must(await f.reserve("x", [rline("PRE", "*", 7)], strategy: .split))
        #expect(figures(r.reservation).sorted() == ["PRE EAST q=3 f=0 r=0 b=0 rem=3", "PRE MAIN q=4 f=0 r=0 b=2 rem=4"])
        #expect(try await f.fig("PRE") == "2/4")
        #expect(try await f.fig("PRE", "EAST") == "3/3")
        let list = try must(await f.engine.backorders())
        #expect(list.count == 1 && list.first?.warehouse == "MAIN" && list.first?.backordered == 2)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a line keeps the policy it was reserved under")
    func lineKeepsItsPolicy() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        try await f.receive("PRE", "MAIN", 1)
        _ = try must(await f.reserve("x", [rline("PRE", "MAIN", 3)]))
        try await f.policy("PRE", backorder: false)
        #expect(try await f.fig("PRE") == "1/3")
        #expect(await f.engine.verify().isEmpty)
        // New reservations follow the new policy.
        #expect(await f.reserve("y", [rline("PRE", "MAIN", 1)]).refusal?.code == .insufficient)
        // Releasing the old one gives back exactly what it held.
        _ = try must(await f.engine.release("x"))
        #expect(try await f.fig("PRE") == "1/0")
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: Unlimited variants

    @Test("an unlimited variant always reserves, records its lines, and leaves the counts unchanged")
    func unlimitedVariant() async throws {
        let f = Fixture()
        try await f.policy("EBOOK", unlimited: true)
        let seq = f.nextSeq
        let r = try must(await f.reserve("u", [rline("EBOOK", "MAIN", 1_000)]))
        #expect(figures(r.reservation) == ["EBOOK MAIN q=1000 f=0 r=0 b=0 rem=1000"])
        #expect(r.reservation.status == .active)
        #expect(try await f.fig("EBOOK") == "0/0")
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        #expect(entries.first?.type == .reserve && entries.first?.deltaReserved == 0 && entries.first?.deltaOnHand == 0)
        // Adjusted stock never gates it, and is not changed by it.
        try await f.receive("EBOOK", "MAIN", 2)
        _ = try must(await f.reserve("u2", [rline("EBOOK", "MAIN", 5)]))
        #expect(try await f.fig("EBOOK") == "2/0")
        // Shipment status works on its lines; the counts stay as they were.
        let shipped = try must(await f.engine.fulfill("u", line: LineSelector(variant: "EBOOK", warehouse: "MAIN", quantity: 400)))
        #expect(shipped.reservation.status == .partiallyFulfilled)
        let done = try must(await f.engine.fulfill("u"))
        #expect(done.reservation.status == .fulfilled)
        #expect(figures(done.reservation) == ["EBOOK MAIN q=1000 f=1000 r=0 b=0 rem=0"])
        let released = try must(await f.engine.release("u2"))
        #expect(released.reservation.status == .released)
        #expect(try await f.fig("EBOOK") == "2/0")
        #expect(try must(await f.engine.backorders()).isEmpty)
        #expect(await f.engine.stats().counters.unitsReserved == 0, "KPIs count tracked units only")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("an unlimited line keeps its policy: after the variant becomes tracked, releasing or shipping it leaves the counts alone")
    func unlimitedLineKeepsItsPolicy() async throws {
        let f = Fixture()
        try await f.policy("LICENSE", unlimited: true)
        try await f.receive("LICENSE", "MAIN", 3)
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("mixed", [rline("LICENSE", "MAIN", 5), rline("A", "MAIN", 2)]))
        _ = try must(await f.reserve("ship", [rline("LICENSE", "MAIN", 4)]))
        #expect(try await f.fig("LICENSE") == "3/0")
        #expect(try await f.fig("A") == "10/2")
        try await f.policy("LICENSE", unlimited: false)
        #expect(await f.engine.verify().isEmpty)
        let released = try must(await f.engine.release("mixed"))
        #expect(released.reservation.status == .released)
        #expect(try await f.fig("LICENSE") == "3/0")
        #expect(try await f.fig("A") == "10/0")
        let shipped = try must(await f.engine.fulfill("ship"))
        #expect(shipped.reservation.status == .fulfilled)
        #expect(try await f.fig("LICENSE") == "3/0")
        // New reservations of the now tracked variant are checked and counted.
        #expect(await f.reserve("tracked", [rline("LICENSE", "MAIN", 4)]).refusal?.code == .insufficient)
        _ = try must(await f.reserve("tracked", [rline("LICENSE", "MAIN", 3)]))
        #expect(try await f.fig("LICENSE") == "3/3")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a `*` line of an unlimited variant goes to the first active warehouse by priority")
    func unlimitedPlacedLine() async throws {
        let f = Fixture()
        try await f.policy("SVC", unlimited: true)
        try await f.warehouse("EAST", priority: 5)
        try await f.warehouse("WEST", priority: 1)
        try await f.warehouse("MAIN", active: false)
        try await f.receive("SVC", "EAST", 100)
        for strategy in PlacementStrategy.allCases {
            let r = try must(await f.reserve("s-\(strategy)", [rline("SVC", "*", 7)], strategy: strategy))
            #expect(figures(r.reservation) == ["SVC WEST q=7 f=0 r=0 b=0 rem=7"], "strategy \(strategy)")
        }
        #expect(try await f.fig("SVC", "WEST") == "0/0")
        #expect(try await f.fig("SVC", "EAST") == "100/0")
    }

    // MARK: Replays and conflicts

    @Test("the same id with the same request is a replay: replayed=true, the current record, and nothing changes")
    func replay() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 5)
        try await f.receive("B", "EAST", 5)
        let request = ReserveRequest(id: "cart-7", lines: [rline("A", "MAIN", 2), rline("B", "EAST", 3)], ttl: .seconds(600), customer: "c1")
        let first = try must(await f.engine.reserve(request))
        #expect(!first.replayed)
        let seq = f.nextSeq
        let stats = await f.engine.stats()
        // Stock is gone now; a replay still answers with the reservation, not INSUFFICIENT.
        try await f.setOnHand("A", "MAIN", 2)
        let seqAfterSet = f.nextSeq
        #expect(seqAfterSet == seq + 1)
        let second = try must(await f.engine.reserve(request))
        #expect(second.replayed)
        #expect(second.reservation == first.reservation)
        #expect(f.nextSeq == seqAfterSet, "a replay writes no event")
        #expect(try await f.fig("A") == "2/2")
        #expect(try await f.fig("B", "EAST") == "5/3")
        let statsAfter = await f.engine.stats()
        #expect(statsAfter.counters.unitsReserved == stats.counters.unitsReserved)
        #expect(statsAfter.activeReservations == 1)
        #expect(statsAfter.refused.values.reduce(0, +) == 0, "a replay is not a refusal")
        // The replay shows the reservation as it is now.
        _ = try must(await f.engine.fulfill("cart-7", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1)))
        let third = try must(await f.engine.reserve(request))
        #expect(third.replayed)
        #expect(third.reservation.status == .partiallyFulfilled)
        #expect(figures(third.reservation) == ["A MAIN q=2 f=1 r=0 b=0 rem=1", "B EAST q=3 f=0 r=0 b=0 rem=3"])
        #expect(await f.engine.verify().isEmpty)
    }

    struct ReplayCase: Sendable, CustomTestStringConvertible {
        var name: String
        var retry: ReserveRequest
        var isReplay: Bool
        var testDescription: String { name }
    }

    static let original = ReserveRequest(
        id: "R1", lines: [BlackBox.line("A", "MAIN", 2), BlackBox.line("B", "EAST", 1), BlackBox.line("A", "*", 1)], ttl: .seconds(300),
        customer: "alice", strategy: nil)

    static func variation(_ change: (inout ReserveRequest) -> Void) -> ReserveRequest {
        var r = original
        change(&r)
        return r
    }

    @Test(
        "a retry with the same id is a replay exactly when it is the same request (SPEC §7.3), otherwise CONFLICT",
        arguments: [
            ReplayCase(name: "identical", retry: ReserveTests.original, isReplay: true),
            ReplayCase(name: "lines in another order", retry: ReserveTests.variation { $0.lines.reverse() }, isReplay: true),
            ReplayCase(
                name: "warehouse in lower case",
                retry: ReserveTests.variation { $0.lines = [BlackBox.line("A", "main", 2), BlackBox.line("B", "East", 1), BlackBox.line("A", "*", 1)] },
                isReplay: true),
            ReplayCase(name: "explicit default strategy", retry: ReserveTests.variation { $0.strategy = .priority }, isReplay: true),
            ReplayCase(name: "another strategy", retry: ReserveTests.variation { $0.strategy = .most }, isReplay: false),
            ReplayCase(name: "another quantity", retry: ReserveTests.variation { $0.lines[0].quantity = 3 }, isReplay: false),
            ReplayCase(name: "another variant", retry: ReserveTests.variation { $0.lines[1].variant = "C" }, isReplay: false),
            ReplayCase(name: "another warehouse", retry: ReserveTests.variation { $0.lines[1].warehouse = "MAIN" }, isReplay: false),
            ReplayCase(name: "a line fewer", retry: ReserveTests.variation { $0.lines.removeLast() }, isReplay: false),
            ReplayCase(name: "a line more", retry: ReserveTests.variation { $0.lines.append(BlackBox.line("B", "MAIN", 1)) }, isReplay: false),
            ReplayCase(
                name: "the same cells split differently",
                retry: ReserveTests.variation { $0.lines = [BlackBox.line("A", "MAIN", 1), BlackBox.line("A", "MAIN", 1), BlackBox.line("B", "EAST", 1), BlackBox.line("A", "*", 1)] },
                isReplay: false),
            ReplayCase(name: "another TTL", retry: ReserveTests.variation { $0.ttl = .seconds(301) }, isReplay: false),
            ReplayCase(name: "no TTL", retry: ReserveTests.variation { $0.ttl = nil }, isReplay: false),
            ReplayCase(name: "another customer", retry: ReserveTests.variation { $0.customer = "bob" }, isReplay: false),
            ReplayCase(name: "no customer", retry: ReserveTests.variation { $0.customer = nil }, isReplay: false),
        ])
    func replayOrConflict(_ c: ReplayCase) async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        for v in ["A", "B", "C"] {
            try await f.receive(v, "MAIN", 10)
            try await f.receive(v, "EAST", 10)
        }
        let first = try must(await f.engine.reserve(Self.original))
        let seq = f.nextSeq
        let out = await f.engine.reserve(c.retry)
        if c.isReplay {
            let replayed = try must(out)
            #expect(replayed.replayed)
            #expect(replayed.reservation == first.reservation)
        } else {
            #expect(out.refusal?.code == .conflict)
            #expect(await f.engine.stats().refused[.conflict] == 1)
        }
        #expect(f.nextSeq == seq)
        #expect(try await f.reservation("R1") == first.reservation)
        #expect(try await f.fig("A") == "10/3")
        #expect(try await f.fig("B", "EAST") == "10/1")
        #expect(try await f.fig("B") == "10/0")
        #expect(try await f.fig("C", "EAST") == "10/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("`A MAIN 1, A MAIN 1` is not the same request as `A MAIN 2`")
    func mergedLinesAreNotTheSameRequest() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("m", [rline("A", "MAIN", 1), rline("A", "MAIN", 1)]))
        #expect(await f.reserve("m", [rline("A", "MAIN", 2)]).refusal?.code == .conflict)
        #expect(try must(await f.reserve("m", [rline("A", "MAIN", 1), rline("A", "main", 1)])).replayed)
        #expect(try await f.fig("A") == "10/2")
    }

    @Test("the id of a closed reservation is still remembered: replay answers its record, another request is CONFLICT")
    func closedIdIsRemembered() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("done", [rline("A", "MAIN", 4)]))
        _ = try must(await f.engine.release("done"))
        let replay = try must(await f.reserve("done", [rline("A", "MAIN", 4)]))
        #expect(replay.replayed)
        #expect(replay.reservation.status == .released)
        #expect(try await f.fig("A") == "10/0", "a replay of a released reservation does not reserve again")
        #expect(await f.reserve("done", [rline("A", "MAIN", 5)]).refusal?.code == .conflict)
    }

    @Test("a refused request leaves its id unused: a retry is evaluated afresh")
    func refusedLeavesIdUnused() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 3)
        #expect(await f.reserve("retry", [rline("A", "MAIN", 5)]).refusal?.code == .insufficient)
        #expect(await f.engine.reservation("retry").refusal?.code == .notFound)
        // The same request, once stock came back, succeeds as a new reservation.
        try await f.receive("A", "MAIN", 2)
        let r = try must(await f.reserve("retry", [rline("A", "MAIN", 5)]))
        #expect(!r.replayed)
        #expect(try await f.fig("A") == "5/5")
        // And an id refused for another reason may be used for a different request.
        #expect(await f.reserve("other", [rline("A", "NOPE", 1)]).refusal?.code == .notFound)
        try await f.receive("B", "MAIN", 1)
        let o = try must(await f.reserve("other", [rline("B", "MAIN", 1)]))
        #expect(!o.replayed)
        let stats = await f.engine.stats()
        #expect(stats.refused[.insufficient] == 1 && stats.refused[.notFound] == 1)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("concurrent reserves on one hot SKU never oversell")
    func concurrentReservesDoNotOversell() async throws {
        let f = Fixture()
        try await f.receive("HOT", "MAIN", 50)
        let engine = f.engine
        let results = await withTaskGroup(of: Outcome<ReservationRecord>.self) { group in
            for i in 0..<120 {
                group.addTask { await engine.reserve(ReserveRequest(id: "hot-\(i)", lines: [BlackBox.line("HOT", "MAIN", 1)])) }
            }
            var all: [Outcome<ReservationRecord>] = []
            for await o in group { all.append(o) }
            return all
        }
        #expect(results.filter { $0.value != nil }.count == 50)
        #expect(results.allSatisfy { $0.value != nil || $0.refusal?.code == .insufficient })
        #expect(try await f.fig("HOT") == "50/50")
        #expect(await f.engine.stats().refused[.insufficient] == 70)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("concurrent requests with one id: exactly one reserves, the others replay")
    func concurrentSameId() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 100)
        try await f.receive("B", "EAST", 100)
        let engine = f.engine
        let request = ReserveRequest(id: "same", lines: [BlackBox.line("A", "MAIN", 3), BlackBox.line("B", "EAST", 2)])
        let results = await withTaskGroup(of: Outcome<ReservationRecord>.self) { group in
            for _ in 0..<40 { group.addTask { await engine.reserve(request) } }
            var all: [Outcome<ReservationRecord>] = []
            for await o in group { all.append(o) }
            return all
        }
        #expect(results.allSatisfy { $0.value != nil })
        #expect(results.filter { $0.value?.replayed == false }.count == 1)
        #expect(try await f.fig("A") == "100/3")
        #expect(try await f.fig("B", "EAST") == "100/2")
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: Ids, quantities, limits

    struct IdCase: Sendable, CustomTestStringConvertible {
        var name: String
        var id: String
        var expected: RefusalCode?
        var testDescription: String { name }
    }

    @Test(
        "reservation ids are 1–128 printable ASCII bytes without spaces",
        arguments: [
            IdCase(name: "plain", id: "order-42", expected: nil),
            IdCase(name: "every printable punctuation", id: "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", expected: nil),
            IdCase(name: "one byte", id: "x", expected: nil),
            IdCase(name: "128 bytes", id: String(repeating: "k", count: 128), expected: nil),
            IdCase(name: "empty", id: "", expected: .invalid),
            IdCase(name: "129 bytes", id: String(repeating: "k", count: 129), expected: .invalid),
            IdCase(name: "a space", id: "order 42", expected: .invalid),
            IdCase(name: "a tab", id: "order\t42", expected: .invalid),
            IdCase(name: "a newline", id: "order\n", expected: .invalid),
            IdCase(name: "DEL", id: "order\u{7F}", expected: .invalid),
            IdCase(name: "non-ASCII", id: "café", expected: .invalid),
        ])
    func reservationIds(_ c: IdCase) async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        let out = await f.reserve(c.id, [rline("A", "MAIN", 1)])
        if let code = c.expected {
            #expect(out.refusal?.code == code)
            #expect(try await f.fig("A") == "5/0")
        } else {
            #expect(try must(out).reservation.id == c.id)
            #expect(try await f.fig("A") == "5/1")
            #expect(try await f.reservation(c.id).id == c.id)
        }
    }

    struct VariantCase: Sendable, CustomTestStringConvertible {
        var variant: String
        var valid: Bool
        var testDescription: String { "variant \(variant.debugDescription)" }
    }

    @Test(
        "variant ids are 1–64 bytes of [A-Za-z0-9._:/-]",
        arguments: [
            VariantCase(variant: "a.b:c/d-e_F9", valid: true),
            VariantCase(variant: String(repeating: "v", count: 64), valid: true),
            VariantCase(variant: String(repeating: "v", count: 65), valid: false),
            VariantCase(variant: "", valid: false),
            VariantCase(variant: "has space", valid: false),
            VariantCase(variant: "hash#", valid: false),
            VariantCase(variant: "star*", valid: false),
            VariantCase(variant: "*", valid: false),
            VariantCase(variant: "naïve", valid: false),
        ])
    func variantIds(_ c: VariantCase) async throws {
        let f = Fixture()
        let out = await f.reserve("v", [rline(c.variant, "MAIN", 1)])
        if c.valid {
            #expect(out.refusal?.code == .insufficient, "a valid id with no stock is refused for stock, not form")
            try await f.receive(c.variant, "MAIN", 1)
            _ = try must(await f.reserve("v2", [rline(c.variant, "MAIN", 1)]))
            #expect(try await f.fig(c.variant) == "1/1")
        } else {
            #expect(out.refusal?.code == .invalid)
        }
    }

    @Test("variant ids are case-sensitive: `sku` and `SKU` are different cells")
    func variantCaseSensitive() async throws {
        let f = Fixture()
        try await f.receive("SKU", "MAIN", 3)
        #expect(try await f.fig("sku") == "0/0")
        #expect(await f.reserve("lower", [rline("sku", "MAIN", 1)]).refusal?.code == .insufficient)
        _ = try must(await f.reserve("upper", [rline("SKU", "MAIN", 1)]))
        #expect(try await f.fig("SKU") == "3/1")
    }

    static let optionWords = [
        "TTL", "CUSTOMER", "STRATEGY", "KEY", "REASON", "NOTE", "REF", "IF", "LIMIT", "RESTOCK", "DAMAGED", "NAME", "ADDRESS",
        "PRIORITY", "ACTIVE", "BACKORDER", "UNLIMITED", "LOWSTOCK",
    ]

    @Test("option words are reserved in any case: not valid variant ids", arguments: ReserveTests.optionWords)
    func optionWordsAreNotVariants(_ word: String) async throws {
        let f = Fixture()
        for spelling in [word, word.lowercased(), word.prefix(1) + word.dropFirst().lowercased()] {
            let s = String(spelling)
            #expect(await f.reserve("o", [rline(s, "MAIN", 1)]).refusal?.code == .invalid, "\(s)")
            #expect(await f.engine.adjust(variant: s, warehouse: "MAIN", by: 1, reason: .received).refusal?.code == .invalid, "\(s)")
            #expect(f.engine.policy(of: s).refusal?.code == .invalid, "\(s)")
        }
        // A longer word that merely starts with one is fine.
        try await f.receive(word + "X", "MAIN", 1)
        _ = try must(await f.reserve("o", [rline(word + "X", "MAIN", 1)]))
        #expect(await f.engine.stats().cells == 1)
    }

    struct QuantityCase: Sendable, CustomTestStringConvertible {
        var quantity: Int64
        var expected: RefusalCode?
        var testDescription: String { "quantity \(quantity)" }
    }

    @Test(
        "line quantities are 1 to 10^12: 0 and negative are INVALID, one more than 10^12 is LIMIT",
        arguments: [
            QuantityCase(quantity: 1, expected: nil), QuantityCase(quantity: 1_000_000_000_000, expected: nil),
            QuantityCase(quantity: 1_000_000_000_001, expected: .limit), QuantityCase(quantity: Int64.max, expected: .limit),
            QuantityCase(quantity: 0, expected: .invalid), QuantityCase(quantity: -1, expected: .invalid),
            QuantityCase(quantity: Int64.min, expected: .invalid),
        ])
    func quantities(_ c: QuantityCase) async throws {
        let f = Fixture()
        try await f.receive("BIG", "MAIN", 1_000_000_000_000)
        let out = await f.reserve("q", [rline("BIG", "MAIN", c.quantity)])
        if let code = c.expected {
            #expect(out.refusal?.code == code)
            #expect(try await f.fig("BIG") == "1000000000000/0")
        } else {
            _ = try must(out)
            #expect(try await f.fig("BIG") == "1000000000000/\(c.quantity)")
        }
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("256 lines are accepted; 257 are LIMIT and change nothing; none is INVALID")
    func lineCountLimit() async throws {
        let f = Fixture()
        for i in 0..<257 { try await f.receive("L\(i)", "MAIN", 1) }
        let seq = f.nextSeq
        let tooMany = (0..<257).map { rline("L\($0)", "MAIN", 1) }
        #expect(await f.reserve("big", tooMany).refusal?.code == .limit)
        #expect(f.nextSeq == seq)
        #expect(await f.engine.reservation("big").refusal?.code == .notFound)
        let r = try must(await f.reserve("big", Array(tooMany.prefix(256))))
        #expect(r.reservation.lines.count == 256)
        #expect(f.nextSeq == seq + 256)
        #expect(try await f.fig("L0") == "1/1")
        #expect(try await f.fig("L255") == "1/1")
        #expect(try await f.fig("L256") == "1/0")
        #expect(await f.reserve("none", []).refusal?.code == .invalid)
        let stats = await f.engine.stats()
        #expect(stats.refused[.limit] == 1 && stats.refused[.invalid] == 1)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("256 lines of one cell are accepted and merged into one line")
    func manyLinesOneCell() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 256)
        let r = try must(await f.reserve("same-cell", Array(repeating: rline("A", "MAIN", 1), count: 256)))
        #expect(figures(r.reservation) == ["A MAIN q=256 f=0 r=0 b=0 rem=256"])
        #expect(try await f.fig("A") == "256/256")
    }

    struct TTLCase: Sendable, CustomTestStringConvertible {
        var name: String
        var ttl: Duration
        var valid: Bool
        var testDescription: String { name }
    }

    @Test(
        "a TTL runs from 1 s to 30 days; outside that it is INVALID; expires_at = now + TTL",
        arguments: [
            TTLCase(name: "1 s", ttl: .seconds(1), valid: true),
            TTLCase(name: "15 minutes", ttl: .seconds(900), valid: true),
            TTLCase(name: "30 days", ttl: .seconds(30 * 24 * 3600), valid: true),
            TTLCase(name: "0", ttl: .zero, valid: false),
            TTLCase(name: "999 ms", ttl: .milliseconds(999), valid: false),
            TTLCase(name: "negative", ttl: .seconds(-5), valid: false),
            TTLCase(name: "30 days and 1 s", ttl: .seconds(30 * 24 * 3600 + 1), valid: false),
        ])
    func ttlBounds(_ c: TTLCase) async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        let out = await f.reserve("t", [rline("A", "MAIN", 1)], ttl: c.ttl)
        if c.valid {
            let r = try must(out)
            #expect(r.reservation.expiresAt == f.now.advanced(by: c.ttl))
            #expect(try await f.fig("A") == "5/1")
        } else {
            #expect(out.refusal?.code == .invalid)
            #expect(try await f.fig("A") == "5/0")
            #expect(await f.engine.reservation("t").refusal?.code == .notFound)
        }
    }
}

// MARK: - The fixture shared by ReserveTests, HoldTests and StockChangeTests

/// Small helpers for black-box tests: an engine on a manual clock and shortcuts that fail the test
/// when a setup step is refused.
enum BlackBox {
    struct SetupFailed: Error, CustomStringConvertible {
        var description: String
    }

    static func line(_ variant: String, _ warehouse: String, _ quantity: Int64) -> ReserveLine {
        ReserveLine(variant: variant, warehouse: warehouse, quantity: Quantity(quantity))
    }

    /// The value of a successful outcome; records an issue and throws when it was refused.
    static func must<T>(_ outcome: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        switch outcome {
        case .ok(let value): return value
        case .refused(let r):
            Issue.record("expected success, was refused: \(r)", sourceLocation: sourceLocation)
            throw SetupFailed(description: "refused: \(r)")
        }
    }

    /// A reservation's lines as readable strings: `variant warehouse q=… f=… r=… b=… rem=…`.
    static func figures(_ r: Reservation) -> [String] {
        r.lines.map {
            "\($0.variant) \($0.warehouse) q=\($0.quantity) f=\($0.fulfilled) r=\($0.released) b=\($0.backordered) rem=\($0.remaining)"
        }
    }

    final class Fixture: Sendable {
        let clock: ManualClock
        let engine: Engine

        init(shardCount: Int = 4, retention: Duration = .seconds(3600), defaultStrategy: PlacementStrategy = .priority) {
            clock = ManualClock()
            engine = Engine(
                configuration: EngineConfiguration(shardCount: shardCount, retention: retention, defaultStrategy: defaultStrategy),
                clock: clock)
        }

        var now: Timestamp { clock.now() }
        var nextSeq: UInt64 { engine.nextSeq }

        func advance(_ duration: Duration) { clock.advance(by: duration) }

        @discardableResult
        func receive(_ variant: String, _ warehouse: String = "MAIN", _ quantity: Int64, sourceLocation: SourceLocation = #_sourceLocation)
            async throws -> CellReceipt
        {
            try BlackBox.must(
                await engine.adjust(variant: variant, warehouse: warehouse, by: Quantity(quantity), reason: .received), sourceLocation: sourceLocation)
        }

        @discardableResult
        func setOnHand(_ variant: String, _ warehouse: String, _ quantity: Int64, sourceLocation: SourceLocation = #_sourceLocation)
            async throws -> CellReceipt
        {
            try BlackBox.must(
                await engine.setQuantity(variant: variant, warehouse: warehouse, to: Quantity(quantity), reason: .correction),
                sourceLocation: sourceLocation)
        }

        @discardableResult
        func warehouse(
            _ code: String, priority: Int64? = nil, active: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> Warehouse {
            try BlackBox.must(await engine.setWarehouse(WarehouseChange(code: code, priority: priority, active: active)), sourceLocation: sourceLocation)
        }

        @discardableResult
        func policy(
            _ variant: String, backorder: Bool? = nil, unlimited: Bool? = nil, lowStock: Int64? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> VariantPolicy {
            try BlackBox.must(
                await engine.setPolicy(
                    PolicyChange(variant: variant, backorder: backorder, unlimited: unlimited, lowStock: lowStock.map { Quantity($0) })),
                sourceLocation: sourceLocation)
        }

        func cell(_ variant: String, _ warehouse: String = "MAIN", sourceLocation: SourceLocation = #_sourceLocation) async throws -> CellRecord {
            try BlackBox.must(await engine.cell(variant: variant, warehouse: warehouse), sourceLocation: sourceLocation)
        }

        /// A cell as `on_hand/reserved`.
        func fig(_ variant: String, _ warehouse: String = "MAIN", sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
            let c = try await cell(variant, warehouse, sourceLocation: sourceLocation)
            return "\(c.onHand)/\(c.reserved)"
        }

        func reserve(
            _ id: String, _ lines: [ReserveLine], ttl: Duration? = nil, customer: String? = nil, strategy: PlacementStrategy? = nil,
            actor: String = ""
        ) async -> Outcome<ReservationRecord> {
            await engine.reserve(ReserveRequest(id: id, lines: lines, ttl: ttl, customer: customer, strategy: strategy), actor: actor)
        }

        func reservation(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Reservation {
            try BlackBox.must(await engine.reservation(id), sourceLocation: sourceLocation).reservation
        }

        /// Every ledger entry with seq ≥ `from`, oldest first.
        func events(from: UInt64 = 0) async -> [LedgerEntry] {
            await engine.events(from: from, limit: 10_000)
        }
    }

    /// Reads `stream` until `stop` says so (the event that satisfies it included) or `timeout` passes.
    static func collect(
        _ stream: AsyncStream<EngineEvent>, timeout: Duration = .seconds(10), until stop: @escaping @Sendable (EngineEvent) -> Bool
    ) async -> (events: [EngineEvent], complete: Bool) {
        await withTaskGroup(of: ([EngineEvent], Bool)?.self) { group in
            group.addTask {
                var out: [EngineEvent] = []
                for await e in stream {
                    out.append(e)
                    if stop(e) { return (out, true) }
                }
                return (out, false)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? ([], false)
        }
    }
}
