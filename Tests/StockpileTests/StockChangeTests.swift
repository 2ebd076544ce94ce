// Black-box tests of the physical stock changes and everything around them, derived from SPEC §2, §7
// and docs/DECISIONS.md: ADJUST, SETQTY, COUNT, TRANSFER, RETURN, WAREHOUSE SET, POLICY SET, KEY
// idempotency, the ledger and its subscribers, and the queries and STATS figures.

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

@Suite("Stock changes, keys, ledger and queries")
struct StockChangeTests {

    // MARK: ADJUST

    struct AdjustCase: Sendable, CustomTestStringConvertible {
        var reason: ReasonCode
        var delta: Int64
        var accepted: Bool
        var testDescription: String { "\(reason.rawValue) \(delta > 0 ? "+" : "")\(delta)" }
    }

    static let adjustCases: [AdjustCase] = ReasonCode.allCases.flatMap { reason -> [AdjustCase] in
        let adds: Set<ReasonCode> = [.received, .returned, .found]
        let removes: Set<ReasonCode> = [.damaged, .lost]
        let either: Set<ReasonCode> = [.correction, .other]
        return [
            AdjustCase(reason: reason, delta: 3, accepted: adds.contains(reason) || either.contains(reason)),
            AdjustCase(reason: reason, delta: -3, accepted: removes.contains(reason) || either.contains(reason)),
            AdjustCase(reason: reason, delta: 0, accepted: false),
        ]
    }

    @Test("ADJUST: received/returned/found add, damaged/lost remove, correction/other either way, engine reasons and Δ=0 are INVALID",
        arguments: StockChangeTests.adjustCases)
    func adjustReasonsAndSigns(_ c: AdjustCase) async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        let seq = f.nextSeq
        let out = await f.engine.adjust(variant: "A", warehouse: "MAIN", by: Quantity(c.delta), reason: c.reason, actor: "wms")
        if c.accepted {
            let receipt = try must(out)
            #expect(receipt.cell.onHand == Quantity(10 + c.delta))
            #expect(receipt.seq == seq)
            #expect(receipt.shortfall == 0)
            #expect(!receipt.replayed)
            let entries = await f.events(from: seq)
            #expect(entries.count == 1)
            #expect(entries.first?.type == .adjust)
            #expect(entries.first?.reason == c.reason)
            #expect(entries.first?.deltaOnHand == Quantity(c.delta))
            #expect(entries.first?.actor == "wms")
            #expect(try await f.fig("A") == "\(10 + c.delta)/0")
        } else {
            #expect(out.refusal?.code == .invalid)
            #expect(f.nextSeq == seq)
            #expect(try await f.fig("A") == "10/0")
        }
    }

    @Test("ADJUST that would take on_hand below 0 is NEGATIVE and changes nothing")
    func adjustNegative() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 3)
        let seq = f.nextSeq
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -4, reason: .lost).refusal?.code == .negative)
        #expect(await f.engine.adjust(variant: "NEW", warehouse: "MAIN", by: -1, reason: .correction).refusal?.code == .negative)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "3/0")
        // Exactly to zero is fine.
        let r = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -3, reason: .damaged))
        #expect(r.cell.onHand == 0)
        #expect(await f.engine.stats().refused[.negative] == 2)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("ADJUST may take on_hand below reserved: allowed, and the reply carries the shortfall")
    func adjustShortfall() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 8)]))
        let seq = f.nextSeq
        let r = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -5, reason: .damaged))
        #expect(r.shortfall == 3)
        #expect(r.cell.onHand == 5 && r.cell.reserved == 8 && r.cell.available == -3)
        let e = try #require(await f.events(from: seq).first)
        #expect(e.onHand == 5 && e.reserved == 8 && e.available == -3)
        #expect(try await f.cell("A").available == -3)
        #expect(await f.engine.verify().isEmpty, "a physical loss below reserved is reported, not an invariant failure")
        // The reservation still holds its stock; it cannot ship more than is on hand.
        #expect(await f.engine.fulfill("o").refusal?.code == .insufficient)
        #expect(await f.reserve("more", [rline("A", "MAIN", 1)]).refusal?.code == .insufficient)
    }

    @Test("ADJUST records NOTE, REF and actor in its event, with the cell's figures after the change")
    func adjustNoteAndRef() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 1)]))
        let seq = f.nextSeq
        let r = try must(
            await f.engine.adjust(
                variant: "A", warehouse: "main", by: -2, reason: .damaged, note: "dropped by a forklift", reference: "PO-7", actor: "wms"))
        #expect(r.cell.warehouse == "MAIN")
        let e = try #require(await f.events(from: seq).first)
        #expect(e.seq == r.seq)
        #expect(e.type == .adjust && e.reason == .damaged)
        #expect(e.variant == "A" && e.warehouse == "MAIN")
        #expect(e.deltaOnHand == -2 && e.deltaReserved == 0)
        #expect(e.onHand == 8 && e.reserved == 1 && e.available == 7)
        #expect(e.note == "dropped by a forklift")
        #expect(e.reference == "PO-7")
        #expect(e.actor == "wms")
        #expect(e.time == f.now)
    }

    @Test("ADJUST: unknown warehouse NOTFOUND, malformed ids INVALID, an inactive warehouse still adjusts")
    func adjustWarehouses() async throws {
        let f = Fixture()
        #expect(await f.engine.adjust(variant: "A", warehouse: "NOPE", by: 1, reason: .received).refusal?.code == .notFound)
        #expect(await f.engine.adjust(variant: "A", warehouse: "BAD CODE", by: 1, reason: .received).refusal?.code == .invalid)
        #expect(await f.engine.adjust(variant: "bad id", warehouse: "MAIN", by: 1, reason: .received).refusal?.code == .invalid)
        #expect(await f.engine.adjust(variant: "A", warehouse: "*", by: 1, reason: .received).refusal?.code == .invalid)
        #expect(await f.engine.stats().cells == 0)
        try await f.warehouse("EAST", active: false)
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "east", by: 4, reason: .received))
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "EAST", by: -1, reason: .lost))
        #expect(try await f.fig("A", "EAST") == "3/0")
    }

    @Test("ADJUST quantities: 10^12 accepted, one more is LIMIT either way; a cell may not exceed 10^15")
    func adjustLimits() async throws {
        let f = Fixture()
        let max: Int64 = 1_000_000_000_000
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: Quantity(max + 1), reason: .received).refusal?.code == .limit)
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: Quantity(-(max + 1)), reason: .lost).refusal?.code == .limit)
        for _ in 0..<1000 { try await f.receive("A", "MAIN", max) }
        #expect(try await f.cell("A").onHand == Quantity(1000 * max))
        let seq = f.nextSeq
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .found).refusal?.code == .limit)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "MAIN", quantity: 1).refusal?.code == .invalid)
        #expect(f.nextSeq == seq)
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: Quantity(-max), reason: .lost))
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: SETQTY

    @Test("SETQTY sets on_hand and logs the delta, type set, with the reason given")
    func setQuantity() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        let seq = f.nextSeq
        let r = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 8, reason: .correction, actor: "ops"))
        #expect(r.cell.onHand == 8)
        #expect(r.seq == seq)
        let e = try #require(await f.events(from: seq).first)
        #expect(e.type == .set && e.reason == .correction && e.deltaOnHand == 3 && e.onHand == 8 && e.actor == "ops")
        let down = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 2, reason: .lost))
        #expect(down.cell.onHand == 2)
        #expect(await f.events(from: down.seq).first?.deltaOnHand == -6)
        // Any reason code is accepted.
        for reason in ReasonCode.allCases {
            _ = try must(await f.engine.setQuantity(variant: "B", warehouse: "MAIN", to: 1, reason: reason))
        }
        #expect(try await f.fig("A") == "2/0")
    }

    @Test("SETQTY with no change succeeds and logs a zero delta")
    func setQuantityNoChange() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        let seq = f.nextSeq
        let r = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 5, reason: .correction))
        #expect(r.cell.onHand == 5)
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        #expect(entries.first?.type == .set && entries.first?.deltaOnHand == 0 && entries.first?.onHand == 5)
    }

    @Test("SETQTY … IF is compare-and-set: CONFLICT carries the current on_hand")
    func setQuantityCompareAndSet() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        let ok = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 9, reason: .correction, ifOnHand: 5))
        #expect(ok.cell.onHand == 9)
        let seq = f.nextSeq
        let refusal = try #require(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 1, reason: .correction, ifOnHand: 5).refusal)
        #expect(refusal.code == .conflict)
        #expect(refusal.current == 9)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "9/0")
        // A cell never used has on_hand 0.
        _ = try must(await f.engine.setQuantity(variant: "NEW", warehouse: "MAIN", to: 4, reason: .received, ifOnHand: 0))
        #expect(try await f.fig("NEW") == "4/0")
        // IF needs the warehouse: an unknown one is NOTFOUND, not CONFLICT.
        #expect(await f.engine.setQuantity(variant: "A", warehouse: "NOPE", to: 1, reason: .correction, ifOnHand: 123).refusal?.code == .notFound)
        #expect(await f.engine.stats().refused[.conflict] == 1)
    }

    @Test("SETQTY quantities: negative INVALID, above 10^12 LIMIT")
    func setQuantityRange() async throws {
        let f = Fixture()
        #expect(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: -1, reason: .correction).refusal?.code == .invalid)
        #expect(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 1_000_000_000_001, reason: .correction).refusal?.code == .limit)
        _ = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 1_000_000_000_000, reason: .correction))
        _ = try must(await f.engine.setQuantity(variant: "A", warehouse: "MAIN", to: 0, reason: .correction))
        #expect(try await f.fig("A") == "0/0")
    }

    // MARK: COUNT

    struct CountCase: Sendable, CustomTestStringConvertible {
        var onHand: Int64
        var counted: Int64
        var testDescription: String { "on_hand \(onHand), counted \(counted)" }
    }

    @Test("COUNT sets on_hand to what was counted and logs the variance as type count, reason count",
        arguments: [CountCase(onHand: 10, counted: 7), CountCase(onHand: 10, counted: 10), CountCase(onHand: 0, counted: 5), CountCase(onHand: 4, counted: 0)])
    func count(_ c: CountCase) async throws {
        let f = Fixture()
        if c.onHand > 0 { try await f.receive("A", "MAIN", c.onHand) }
        let seq = f.nextSeq
        let r = try must(await f.engine.count(variant: "A", warehouse: "MAIN", counted: Quantity(c.counted), note: "aisle 4", actor: "counter"))
        #expect(r.variance == Quantity(c.counted - c.onHand))
        #expect(r.cell.onHand == Quantity(c.counted))
        #expect(r.seq == seq)
        let entries = await f.events(from: seq)
        #expect(entries.count == 1, "one entry, a zero delta when nothing changed")
        let e = try #require(entries.first)
        #expect(e.type == .count && e.reason == .count)
        #expect(e.deltaOnHand == Quantity(c.counted - c.onHand))
        #expect(e.onHand == Quantity(c.counted))
        #expect(e.note == "aisle 4" && e.actor == "counter")
        #expect(try await f.fig("A") == "\(c.counted)/0")
        let stats = await f.engine.stats()
        #expect(stats.counters.cycleCounts == 1)
        #expect(stats.accuracyBasisPoints == (c.counted == c.onHand ? 10_000 : 0))
    }

    @Test("COUNT below what is reserved is allowed and reported as a shortfall")
    func countBelowReserved() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 8)]))
        let r = try must(await f.engine.count(variant: "A", warehouse: "MAIN", counted: 5))
        #expect(r.variance == -5)
        #expect(r.shortfall == 3)
        #expect(try await f.fig("A") == "5/8")
        #expect(await f.engine.verify().isEmpty)
        #expect(await f.engine.count(variant: "A", warehouse: "MAIN", counted: -1).refusal?.code == .invalid)
        #expect(await f.engine.count(variant: "A", warehouse: "NOPE", counted: 1).refusal?.code == .notFound)
    }

    // MARK: TRANSFER

    @Test("TRANSFER moves stock atomically: two consecutive transfer entries, source first in the reply")
    func transfer() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 1)
        let seq = f.nextSeq
        let t = try must(await f.engine.transfer(variant: "A", from: "main", to: "east", quantity: 4, note: "rebalance", actor: "ops"))
        #expect(t.from.warehouse == "MAIN" && t.from.onHand == 6)
        #expect(t.to.warehouse == "EAST" && t.to.onHand == 5)
        #expect(t.seq == seq)
        #expect(!t.replayed)
        let entries = await f.events(from: seq)
        #expect(entries.map(\.seq) == [seq, seq + 1])
        #expect(entries.allSatisfy { $0.type == .transfer && $0.reason == .transfer && $0.note == "rebalance" && $0.actor == "ops" })
        #expect(Set(entries.map { "\($0.warehouse) \($0.deltaOnHand) \($0.onHand)" }) == ["MAIN -4 6", "EAST 4 5"])
        #expect(try await f.fig("A") == "6/0")
        #expect(try await f.fig("A", "EAST") == "5/0")
        let stock = try must(await f.engine.stock(variant: "A"))
        #expect(stock.totals.onHand == 11, "a transfer keeps the total")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("TRANSFER from a source in shortfall is INSUFFICIENT with the negative available STOCK shows")
    func transferFromShortfallReportsNegativeAvailable() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("s", "MAIN", 8)
        _ = try must(await f.reserve("held", [rline("s", "MAIN", 8)]))
        _ = try must(await f.engine.adjust(variant: "s", warehouse: "MAIN", by: -3, reason: .damaged))
        let seq = f.nextSeq
        let shown = try await f.cell("s").available
        let refusal = try #require(await f.engine.transfer(variant: "s", from: "MAIN", to: "EAST", quantity: 1).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.available == shown)
        #expect(refusal.description == "INSUFFICIENT s MAIN available -3 requested 1")
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("s") == "5/8")
    }

    @Test("TRANSFER of more than the source has available is INSUFFICIENT and moves nothing")
    func transferInsufficient() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 8)]))
        let seq = f.nextSeq
        let refusal = try #require(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 3).refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "A" && refusal.warehouse == "MAIN")
        #expect(refusal.available == 2 && refusal.requested == 3)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "10/8")
        #expect(try await f.fig("A", "EAST") == "0/0")
        _ = try must(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 2))
        #expect(try await f.fig("A") == "8/8")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("TRANSFER: same warehouse INVALID, unknown NOTFOUND, bad quantity INVALID/LIMIT; inactive warehouses are ignored")
    func transferRules() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "MAIN", quantity: 1).refusal?.code == .invalid)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "main", quantity: 1).refusal?.code == .invalid)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "NOPE", quantity: 1).refusal?.code == .notFound)
        #expect(await f.engine.transfer(variant: "A", from: "NOPE", to: "MAIN", quantity: 1).refusal?.code == .notFound)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 0).refusal?.code == .invalid)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: -1).refusal?.code == .invalid)
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 1_000_000_000_001).refusal?.code == .limit)
        #expect(try await f.fig("A") == "10/0")
        try await f.warehouse("MAIN", active: false)
        try await f.warehouse("EAST", active: false)
        _ = try must(await f.engine.transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 7))
        _ = try must(await f.engine.transfer(variant: "A", from: "EAST", to: "MAIN", quantity: 2))
        #expect(try await f.fig("A") == "5/0")
        #expect(try await f.fig("A", "EAST") == "5/0")
    }

    // MARK: RETURN

    @Test("RETURN RESTOCK adds to on_hand, logged as type return, reason returned, with its REF")
    func returnRestock() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 2)
        let seq = f.nextSeq
        let r = try must(await f.engine.returnStock(variant: "A", warehouse: "MAIN", quantity: 3, disposition: .restock, reference: "RMA-1", actor: "returns"))
        #expect(r.cell.onHand == 5)
        #expect(r.seq == seq)
        let e = try #require(await f.events(from: seq).first)
        #expect(e.type == .return && e.reason == .returned)
        #expect(e.deltaOnHand == 3 && e.deltaReserved == 0 && e.onHand == 5)
        #expect(e.reference == "RMA-1" && e.actor == "returns")
        #expect(try await f.fig("A") == "5/0")
    }

    @Test("RETURN DAMAGED writes a ledger entry only: type return, reason damaged, zero deltas, a note of the units")
    func returnDamaged() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 2)
        let seq = f.nextSeq
        let r = try must(await f.engine.returnStock(variant: "A", warehouse: "MAIN", quantity: 4, disposition: .damaged, reference: "RMA-2"))
        #expect(r.cell.onHand == 2)
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        let e = try #require(entries.first)
        #expect(e.type == .return && e.reason == .damaged)
        #expect(e.deltaOnHand == 0 && e.deltaReserved == 0 && e.onHand == 2)
        #expect(e.note == "4 units returned damaged")
        #expect(e.reference == "RMA-2")
        #expect(try await f.fig("A") == "2/0")
        #expect(await f.engine.stats().counters.shrinkage == 0, "shrinkage counts ADJUST damaged|lost only")
        #expect(await f.engine.returnStock(variant: "A", warehouse: "MAIN", quantity: 0, disposition: .restock).refusal?.code == .invalid)
        #expect(await f.engine.returnStock(variant: "A", warehouse: "NOPE", quantity: 1, disposition: .restock).refusal?.code == .notFound)
    }

    // MARK: WAREHOUSE SET, POLICY SET

    @Test("MAIN exists from the start with priority 0; a new warehouse gets priority 100, active, its code upper-cased")
    func warehouseSet() async throws {
        let f = Fixture()
        let initial = f.engine.warehouses()
        #expect(initial.map(\.code) == ["MAIN"])
        #expect(initial.first?.priority == 0 && initial.first?.active == true)
        let seq = f.nextSeq
        let east = try must(await f.engine.setWarehouse(WarehouseChange(code: "east-1_b", name: "East DC", address: "1 Dock Rd"), actor: "admin"))
        #expect(east.code == "EAST-1_B")
        #expect(east.priority == 100 && east.active)
        #expect(east.name == "East DC" && east.address == "1 Dock Rd")
        let e = try #require(await f.events(from: seq).first)
        #expect(e.type == .warehouse && !e.touchesCell && e.actor == "admin")
        // A later change keeps what it does not name.
        let changed = try must(await f.engine.setWarehouse(WarehouseChange(code: "East-1_B", priority: 7)))
        #expect(changed.code == "EAST-1_B" && changed.priority == 7 && changed.name == "East DC" && changed.address == "1 Dock Rd" && changed.active)
        let off = try must(await f.engine.setWarehouse(WarehouseChange(code: "EAST-1_B", active: false)))
        #expect(!off.active && off.priority == 7)
        #expect(f.engine.warehouses().map(\.code) == ["EAST-1_B", "MAIN"])
        #expect(f.engine.warehouses().first == off)
        #expect(await f.engine.stats().warehouses == 2)
        // MAIN may be changed like any other.
        let main = try must(await f.engine.setWarehouse(WarehouseChange(code: "main", priority: 500)))
        #expect(main.code == "MAIN" && main.priority == 500)
    }

    @Test("WAREHOUSE SET with a malformed code is INVALID",
        arguments: ["", String(repeating: "W", count: 33), "BAD!", "*", "has space", "ÉTÉ"])
    func warehouseSetInvalid(_ code: String) async throws {
        let f = Fixture()
        let seq = f.nextSeq
        #expect(await f.engine.setWarehouse(WarehouseChange(code: code)).refusal?.code == .invalid)
        #expect(f.nextSeq == seq)
        #expect(f.engine.warehouses().map(\.code) == ["MAIN"])
        _ = try must(await f.engine.setWarehouse(WarehouseChange(code: String(repeating: "w", count: 32))))
        #expect(f.engine.warehouses().map(\.code) == ["MAIN", String(repeating: "W", count: 32)])
    }

    @Test("POLICY SET changes what it names and keeps the rest; an unknown variant has the defaults")
    func policySet() async throws {
        let f = Fixture()
        let defaults = try must(f.engine.policy(of: "GIFT"))
        #expect(defaults == VariantPolicy(variant: "GIFT", backorder: false, unlimited: false, lowStock: 0))
        let seq = f.nextSeq
        let p = try must(await f.engine.setPolicy(PolicyChange(variant: "GIFT", backorder: true, lowStock: 5), actor: "admin"))
        #expect(p.backorder && !p.unlimited && p.lowStock == 5)
        let e = try #require(await f.events(from: seq).first)
        #expect(e.type == .policy && !e.touchesCell && e.actor == "admin")
        let q = try must(await f.engine.setPolicy(PolicyChange(variant: "GIFT", unlimited: true)))
        #expect(q.backorder && q.unlimited && q.lowStock == 5)
        #expect(try must(f.engine.policy(of: "GIFT")) == q)
        #expect(try must(f.engine.policy(of: "gift")).backorder == false, "variant ids are case-sensitive")
        #expect(await f.engine.setPolicy(PolicyChange(variant: "GIFT", lowStock: -1)).refusal?.code == .invalid)
        #expect(await f.engine.setPolicy(PolicyChange(variant: "bad id", backorder: true)).refusal?.code == .invalid)
        #expect(await f.engine.setPolicy(PolicyChange(variant: "LOWSTOCK", backorder: true)).refusal?.code == .invalid)
        #expect(try must(f.engine.policy(of: "GIFT")) == q)
        #expect(await f.engine.stats().cells == 0, "a policy creates no cell")
    }

    // MARK: KEY idempotency

    struct KeyCase: Sendable, CustomTestStringConvertible {
        var name: String
        var command: Command
        var otherArguments: Command
        var otherCommand: Command
        var testDescription: String { name }
    }

    static let keyCases: [KeyCase] = [
        KeyCase(
            name: "RELEASE", command: .release(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "K"),
            otherArguments: .release(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 2), key: "K"),
            otherCommand: .fulfill(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "K")),
        KeyCase(
            name: "FULFILL", command: .fulfill(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "K"),
            otherArguments: .fulfill(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 2), key: "K"),
            otherCommand: .release(id: "res", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "K")),
        KeyCase(
            name: "ADJUST", command: .adjust(variant: "A", warehouse: "MAIN", delta: 2, reason: .received, note: "n", key: "K"),
            otherArguments: .adjust(variant: "A", warehouse: "MAIN", delta: 3, reason: .received, note: "n", key: "K"),
            otherCommand: .count(variant: "A", warehouse: "MAIN", counted: 22, key: "K")),
        KeyCase(
            name: "SETQTY", command: .setQuantity(variant: "A", warehouse: "MAIN", quantity: 30, reason: .correction, key: "K"),
            otherArguments: .setQuantity(variant: "A", warehouse: "MAIN", quantity: 31, reason: .correction, key: "K"),
            otherCommand: .adjust(variant: "A", warehouse: "MAIN", delta: 10, reason: .correction, key: "K")),
        KeyCase(
            name: "COUNT", command: .count(variant: "A", warehouse: "MAIN", counted: 25, key: "K"),
            otherArguments: .count(variant: "A", warehouse: "MAIN", counted: 26, key: "K"),
            otherCommand: .setQuantity(variant: "A", warehouse: "MAIN", quantity: 25, reason: .count, key: "K")),
        KeyCase(
            name: "TRANSFER", command: .transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 2, key: "K"),
            otherArguments: .transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 3, key: "K"),
            otherCommand: .adjust(variant: "A", warehouse: "MAIN", delta: -2, reason: .other, key: "K")),
        KeyCase(
            name: "RETURN", command: .returnStock(variant: "A", warehouse: "MAIN", quantity: 1, disposition: .restock, key: "K"),
            otherArguments: .returnStock(variant: "A", warehouse: "MAIN", quantity: 1, disposition: .damaged, key: "K"),
            otherCommand: .adjust(variant: "A", warehouse: "MAIN", delta: 1, reason: .returned, key: "K")),
    ]

    @Test("a KEY retry returns the original reply marked replayed and changes nothing; the key with another request is CONFLICT",
        arguments: StockChangeTests.keyCases)
    func keyIdempotency(_ c: KeyCase) async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 20)
        _ = try must(await f.reserve("res", [rline("A", "MAIN", 5)]))
        let first = await f.engine.execute(c.command, actor: "svc-1")
        let reply = try must(first)
        let seq = f.nextSeq
        let cells = [try await f.fig("A"), try await f.fig("A", "EAST")]
        let reservation = try await f.reservation("res")

        let retry = await f.engine.execute(c.command, actor: "svc-2")
        #expect(retry == .ok(reply.markedReplayed), "keys are global: another actor's retry is a replay")
        #expect(retry != first, "the retry is marked as a replay")
        #expect(await f.engine.execute(c.otherArguments).refusal?.code == .conflict)
        #expect(await f.engine.execute(c.otherCommand).refusal?.code == .conflict)
        #expect(f.nextSeq == seq)
        #expect([try await f.fig("A"), try await f.fig("A", "EAST")] == cells)
        #expect(try await f.reservation("res") == reservation)
        let stats = await f.engine.stats()
        #expect(stats.refused[.conflict] == 2)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a KEY retry returns the original reply, not the current state")
    func keyRetryReturnsOriginalReply() async throws {
        let f = Fixture()
        let first = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received, key: "po-1"))
        try await f.receive("A", "MAIN", 1)
        let retry = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received, key: "po-1"))
        #expect(retry.replayed)
        #expect(retry.cell.onHand == 5 && retry.seq == first.seq)
        #expect(try await f.fig("A") == "6/0")
        // The warehouse code is case-insensitive, so this is the same request.
        let lower = try must(await f.engine.adjust(variant: "A", warehouse: "main", by: 5, reason: .received, key: "po-1"))
        #expect(lower.replayed && lower.cell.onHand == 5)
        #expect(try await f.fig("A") == "6/0")
        // For a reservation too, the retry answers what the first request answered.
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 4)]))
        let released = try must(await f.engine.release("o", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "rel-1"))
        _ = try must(await f.engine.fulfill("o", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 2)))
        let again = try must(await f.engine.release("o", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1), key: "rel-1"))
        #expect(again.replayed)
        #expect(again.reservation == released.reservation)
        #expect(BlackBox.figures(try await f.reservation("o")) == ["A MAIN q=4 f=2 r=1 b=0 rem=1"])
        _ = try must(await f.engine.release("o"))
        try await f.receive("A", "MAIN", 2)
        // Without a key, a retry is a new operation.
        try await f.receive("A", "MAIN", 1)
        try await f.receive("A", "MAIN", 1)
        #expect(try await f.fig("A") == "8/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a KEY used by a request that succeeded without a change is used: a retry replays, another request is CONFLICT")
    func keyOfUnchangedReply() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("done", [rline("A", "MAIN", 2)]))
        _ = try must(await f.engine.release("done"))
        let first = try must(await f.engine.release("done", key: "cancel-1"))
        #expect(first.reservation.status == .released)
        #expect(!first.replayed)
        let retry = try must(await f.engine.release("done", key: "cancel-1"))
        #expect(retry.replayed, "a KEY retry returns the original reply with replayed (SPEC §7.2)")
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .found, key: "cancel-1").refusal?.code == .conflict)
        #expect(try await f.fig("A") == "10/0")
    }

    @Test("a refused request leaves its KEY unused")
    func refusedLeavesKeyUnused() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 3)
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -5, reason: .lost, key: "k1").refusal?.code == .negative)
        // The same request, evaluated afresh once it can succeed.
        try await f.receive("A", "MAIN", 2)
        let again = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -5, reason: .lost, key: "k1"))
        #expect(!again.replayed)
        #expect(try await f.fig("A") == "0/0")
        // A key refused for one request is free for another.
        #expect(await f.engine.transfer(variant: "A", from: "MAIN", to: "NOPE", quantity: 1, key: "k2").refusal?.code == .notFound)
        let other = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 4, reason: .found, key: "k2"))
        #expect(!other.replayed)
        #expect(try await f.fig("A") == "4/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a KEY is remembered for the retention window from its first use, then forgotten")
    func keyRetention() async throws {
        let f = Fixture()  // retention 3600 s
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received, key: "batch-9"))
        f.advance(.milliseconds(3_599_999))
        let replay = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received, key: "batch-9"))
        #expect(replay.replayed)
        #expect(await f.engine.count(variant: "A", warehouse: "MAIN", counted: 9, key: "batch-9").refusal?.code == .conflict)
        #expect(try await f.fig("A") == "1/0")
        f.advance(.milliseconds(2))
        let fresh = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received, key: "batch-9"))
        #expect(!fresh.replayed)
        #expect(try await f.fig("A") == "2/0")
        // Its new use is remembered afresh; a different command after that window is free as well.
        f.advance(.seconds(3601))
        let count = try must(await f.engine.count(variant: "A", warehouse: "MAIN", counted: 9, key: "batch-9"))
        #expect(!count.replayed && count.variance == 7)
    }

    // MARK: Ledger

    /// One step of the ledger walk: what to do, and the (type, reason) of the entries it must write.
    struct LedgerStep: Sendable {
        var name: String
        var actor: String
        var command: Command?
        var advance: Duration?
        var expected: [(EntryType, ReasonCode?)]
    }

    @Test("the ledger: gapless seq, one operation's entries consecutive, the types and reasons of SPEC §7.11, the actor recorded")
    func ledgerTypesAndReasons() async throws {
        let f = Fixture()
        let start = f.nextSeq
        let steps: [LedgerStep] = [
            LedgerStep(name: "warehouse", actor: "a1", command: .setWarehouse(WarehouseChange(code: "EAST")), expected: [(.warehouse, nil)]),
            LedgerStep(name: "policy", actor: "a2", command: .setPolicy(PolicyChange(variant: "B", lowStock: 1)), expected: [(.policy, nil)]),
            LedgerStep(
                name: "adjust", actor: "a3", command: .adjust(variant: "A", warehouse: "MAIN", delta: 20, reason: .received),
                expected: [(.adjust, .received)]),
            LedgerStep(
                name: "set", actor: "a4", command: .setQuantity(variant: "B", warehouse: "EAST", quantity: 9, reason: .import),
                expected: [(.set, .import)]),
            LedgerStep(
                name: "reserve", actor: "a5",
                command: .reserve(ReserveRequest(id: "r1", lines: [rline("A", "MAIN", 2), rline("B", "EAST", 3)], ttl: .seconds(60))),
                expected: [(.reserve, nil), (.reserve, nil)]),
            LedgerStep(name: "extend", actor: "a6", command: .extend(id: "r1", ttl: .seconds(120)), expected: [(.extend, nil)]),
            LedgerStep(
                name: "reserve hold", actor: "a7", command: .reserve(ReserveRequest(id: "r2", lines: [rline("A", "MAIN", 1)], ttl: .seconds(10))),
                expected: [(.reserve, nil)]),
            LedgerStep(name: "expiry", actor: "engine-run", advance: .seconds(10), expected: [(.expire, .expired)]),
            LedgerStep(name: "confirm", actor: "a8", command: .confirm(id: "r1"), expected: [(.confirm, nil)]),
            LedgerStep(
                name: "partial fulfil", actor: "a9",
                command: .fulfill(id: "r1", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 1)), expected: [(.fulfill, nil)]),
            LedgerStep(name: "release", actor: "a10", command: .release(id: "r1"), expected: [(.release, .cancelled), (.release, .cancelled)]),
            LedgerStep(
                name: "count", actor: "a11", command: .count(variant: "A", warehouse: "MAIN", counted: 19), expected: [(.count, .count)]),
            LedgerStep(
                name: "transfer", actor: "a12", command: .transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 4),
                expected: [(.transfer, .transfer), (.transfer, .transfer)]),
            LedgerStep(
                name: "return restock", actor: "a13", command: .returnStock(variant: "A", warehouse: "EAST", quantity: 1, disposition: .restock),
                expected: [(.return, .returned)]),
            LedgerStep(
                name: "return damaged", actor: "a14", command: .returnStock(variant: "A", warehouse: "EAST", quantity: 1, disposition: .damaged),
                expected: [(.return, .damaged)]),
        ]
        var next = start
        for step in steps {
            if let d = step.advance {
                f.advance(d)
                // The expiry is applied (and logged) before this unrelated marker, which is not counted.
                _ = try must(await f.engine.reservation("r2"))
            }
            if let command = step.command {
                _ = try must(await f.engine.execute(command, actor: step.actor))
            }
            let entries = await f.events(from: next)
            #expect(entries.count == step.expected.count, "\(step.name)")
            #expect(entries.map(\.seq) == Array(next..<(next + UInt64(entries.count))), "\(step.name): gapless and consecutive")
            for (entry, (type, reason)) in zip(entries, step.expected) {
                #expect(entry.type == type, "\(step.name)")
                #expect(entry.reason == reason || reason == nil, "\(step.name)")
                if step.command != nil { #expect(entry.actor == step.actor, "\(step.name)") }
                #expect(entry.touchesCell == ![.extend, .confirm, .warehouse, .policy].contains(type), "\(step.name)")
                #expect(entry.time == f.now || type == .expire, "\(step.name)")
            }
            next += UInt64(entries.count)
        }
        let all = await f.events(from: start)
        #expect(all.map(\.seq) == Array(start..<next))
        // EVENTS n returns entries with seq ≥ n, limited.
        let slice = await f.engine.events(from: start + 3, limit: 4)
        #expect(slice.map(\.seq) == Array((start + 3)..<(start + 7)))
        #expect(await f.engine.events(from: next).isEmpty)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("under concurrent operations the ledger stays gapless and each operation's entries stay consecutive")
    func ledgerUnderConcurrency() async throws {
        let f = Fixture(shardCount: 8)
        try await f.warehouse("EAST")
        let variants = (0..<16).map { "C\($0)" }
        for v in variants {
            try await f.receive(v, "MAIN", 1000)
            try await f.receive(v, "EAST", 1000)
        }
        let start = f.nextSeq
        let engine = f.engine
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<60 {
                group.addTask {
                    let lines = (0..<4).map { k in BlackBox.line(variants[(i + k * 5) % 16], k.isMultiple(of: 2) ? "MAIN" : "EAST", 1) }
                    _ = await engine.reserve(ReserveRequest(id: "c\(i)", lines: lines), actor: "t\(i)")
                    _ = await engine.transfer(variant: variants[i % 16], from: "MAIN", to: "EAST", quantity: 1, actor: "t\(i)")
                    _ = await engine.fulfill("c\(i)", actor: "t\(i)")
                }
            }
        }
        let entries = await f.events(from: start)
        #expect(entries.map(\.seq) == Array(start..<(start + UInt64(entries.count))))
        #expect(entries.count == 60 * (4 + 2 + 4))
        var i = 0
        while i < entries.count {
            // Group the run of entries one operation wrote: same type, actor and reservation.
            let head = entries[i]
            var j = i + 1
            while j < entries.count, entries[j].type == head.type, entries[j].actor == head.actor, entries[j].reservation == head.reservation { j += 1 }
            let size = j - i
            switch head.type {
            case .reserve, .fulfill: #expect(size == 4, "\(head.type) of \(head.reservation) is split")
            case .transfer: #expect(size == 2, "transfer by \(head.actor) is split")
            default: Issue.record("unexpected entry \(head.type)")
            }
            i = j
        }
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: Subscribers

    @Test("subscribe() delivers every later entry in order, with one low-stock alert on the way down and one on recovery")
    func subscribeAndLowStockAlerts() async throws {
        let f = Fixture()
        try await f.receive("LOW", "MAIN", 10)
        try await f.policy("LOW", lowStock: 5)
        let stream = f.engine.subscribe()
        let start = f.nextSeq
        _ = try must(await f.reserve("r1", [rline("LOW", "MAIN", 3)]))  // available 7
        _ = try must(await f.reserve("r2", [rline("LOW", "MAIN", 2)]))  // 5: low
        _ = try must(await f.reserve("r3", [rline("LOW", "MAIN", 1)]))  // 4: still low, no alert
        #expect(await f.engine.stats().lowStock == 1)
        #expect(try must(await f.engine.lowStock()).map(\.variant) == ["LOW"])
        _ = try must(await f.engine.release("r2"))  // 6: recovered
        _ = try must(await f.engine.release("r3"))  // 7: no alert
        #expect(await f.engine.stats().lowStock == 0)
        try await f.receive("MARKER", "MAIN", 1)
        let (events, complete) = await BlackBox.collect(stream) { event in
            if case .entry(let e) = event { return e.variant == "MARKER" }
            return false
        }
        #expect(complete, "the stream delivered up to the marker")
        let ledger = await f.events(from: start)
        let delivered = events.compactMap { event -> LedgerEntry? in
            if case .entry(let e) = event { return e }
            return nil
        }
        #expect(delivered == ledger, "the stream carries the ledger entries, in order")
        let shape = events.map { event -> String in
            switch event {
            case .entry(let e): return "\(e.type.rawValue) \(e.reservation)"
            case .lowStock(let a): return "\(a.isLow ? "low" : "recovered") \(a.variant) \(a.warehouse) \(a.available)/\(a.threshold) @\(a.seq - start)"
            case .ended(let end): return "ended \(end)"
            }
        }
        #expect(
            shape == [
                "reserve r1", "reserve r2", "low LOW MAIN 5/5 @1", "reserve r3", "release r2", "recovered LOW MAIN 6/5 @3", "release r3",
                "adjust ",
            ])
    }

    @Test("an expiry raises and clears low-stock alerts like any other change, right after its entry")
    func lowStockAlertsOnExpiry() async throws {
        let f = Fixture()
        try await f.receive("LOW", "MAIN", 10)
        try await f.policy("LOW", lowStock: 5)
        let stream = f.engine.subscribe()
        let start = f.nextSeq
        _ = try must(await f.reserve("hold", [rline("LOW", "MAIN", 6)], ttl: .seconds(30)))  // 4: low
        f.advance(.seconds(30))
        try await f.receive("MARKER", "MAIN", 1)  // the expiry (10: recovered) comes first
        let (events, complete) = await BlackBox.collect(stream) { event in
            if case .entry(let e) = event { return e.variant == "MARKER" }
            return false
        }
        #expect(complete)
        let shape = events.map { event -> String in
            switch event {
            case .entry(let e): return "\(e.type.rawValue) \(e.reservation)"
            case .lowStock(let a): return "\(a.isLow ? "low" : "recovered") \(a.available) @\(a.seq - start)"
            case .ended(let end): return "ended \(end)"
            }
        }
        #expect(shape == ["reserve hold", "low 4 @0", "expire hold", "recovered 10 @1", "adjust "])
    }

    // MARK: Queries

    @Test("HISTORY lists a cell's entries newest first, limited, default 100")
    func history() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 3), rline("A", "EAST", 1)]))
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -1, reason: .damaged))
        try await f.receive("B", "MAIN", 1)
        _ = try must(await f.engine.release("o"))
        let h = try must(await f.engine.history(variant: "A", warehouse: "main"))
        #expect(h.map(\.type) == [.release, .adjust, .reserve, .adjust])
        #expect(h.allSatisfy { $0.variant == "A" && $0.warehouse == "MAIN" })
        #expect(zip(h, h.dropFirst()).allSatisfy { $0.seq > $1.seq })
        let two = try must(await f.engine.history(variant: "A", warehouse: "MAIN", limit: 2))
        #expect(two == Array(h.prefix(2)))
        for _ in 0..<150 { try await f.receive("C", "MAIN", 1) }
        let c = try must(await f.engine.history(variant: "C", warehouse: "MAIN"))
        #expect(c.count == 100)
        #expect(c.first?.onHand == 150)
        #expect(try must(await f.engine.history(variant: "C", warehouse: "MAIN", limit: 10_000)).count == 150)
        #expect(await f.engine.history(variant: "A", warehouse: "NOPE").refusal?.code == .notFound)
        #expect(try must(await f.engine.history(variant: "NEVER", warehouse: "MAIN")).isEmpty)
    }

    @Test("queries create nothing: a cell never used reads as zeros and stays unused")
    func queriesCreateNothing() async throws {
        let f = Fixture()
        let seq = f.nextSeq
        let cell = try must(await f.engine.cell(variant: "GHOST", warehouse: "main"))
        #expect(cell == CellRecord(variant: "GHOST", warehouse: "MAIN", onHand: 0, reserved: 0))
        let stock = try must(await f.engine.stock(variant: "GHOST"))
        #expect(stock.cells.isEmpty)
        #expect(stock.totals == CellRecord(variant: "GHOST", warehouse: "*", onHand: 0, reserved: 0))
        #expect(try must(await f.engine.history(variant: "GHOST", warehouse: "MAIN")).isEmpty)
        #expect(try must(await f.engine.lowStock(threshold: 100)).isEmpty)
        #expect(try must(await f.engine.backorders()).isEmpty)
        #expect(try must(f.engine.policy(of: "GHOST")).isDefault)
        #expect(await f.engine.reservation("ghost-order").refusal?.code == .notFound)
        #expect(await f.engine.cell(variant: "GHOST", warehouse: "NOPE").refusal?.code == .notFound)
        let stats = await f.engine.stats()
        #expect(stats.cells == 0 && stats.variants == 0 && stats.onHand == 0 && stats.activeReservations == 0)
        #expect(stats.refused.values.reduce(0, +) == 0, "refused queries are not counted")
        #expect(f.nextSeq == seq)
        // The id asked about is free.
        try await f.receive("GHOST", "MAIN", 1)
        #expect(try must(await f.reserve("ghost-order", [rline("GHOST", "MAIN", 1)])).replayed == false)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("STOCK lists the variant's cells by warehouse code and a totals record with warehouse `*`")
    func stockOfVariant() async throws {
        let f = Fixture()
        try await f.warehouse("ZED")
        try await f.warehouse("EAST")
        try await f.warehouse("BARE")
        try await f.receive("A", "ZED", 4)
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 2)
        try await f.receive("B", "BARE", 1)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 3), rline("A", "ZED", 4)]))
        let s = try must(await f.engine.stock(variant: "A"))
        #expect(s.cells.map(\.warehouse) == ["EAST", "MAIN", "ZED"])
        #expect(s.cells.map { "\($0.onHand)/\($0.reserved)" } == ["2/0", "10/3", "4/4"])
        #expect(s.totals.warehouse == "*" && s.totals.variant == "A")
        #expect(s.totals.onHand == 16 && s.totals.reserved == 7 && s.totals.available == 9)
        #expect(s.totals.available == s.cells.reduce(Quantity.zero) { $0 + $1.available })
        #expect(await f.engine.stock(variant: "bad id").refusal?.code == .invalid)
    }

    @Test("LOWSTOCK: a threshold applies to every cell; without one each variant's own, others left out; by available, variant, warehouse")
    func lowStock() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 3)
        try await f.receive("A", "EAST", 1)
        try await f.receive("B", "MAIN", 1)
        try await f.receive("C", "MAIN", 2)
        try await f.receive("D", "MAIN", 50)
        _ = try must(await f.reserve("o", [rline("C", "MAIN", 1)]))
        let all = try must(await f.engine.lowStock(threshold: 3))
        #expect(all.map { "\($0.variant) \($0.warehouse) \($0.available)" } == ["A EAST 1", "B MAIN 1", "C MAIN 1", "A MAIN 3"])
        let limited = try must(await f.engine.lowStock(threshold: 3, limit: 2))
        #expect(limited == Array(all.prefix(2)))
        #expect(try must(await f.engine.lowStock(threshold: 0)).isEmpty)
        #expect(try must(await f.engine.lowStock()).isEmpty, "no variant has a threshold of its own")
        try await f.policy("A", lowStock: 2)
        try await f.policy("D", lowStock: 50)
        let own = try must(await f.engine.lowStock())
        #expect(own.map { "\($0.variant) \($0.warehouse) \($0.available)" } == ["A EAST 1", "D MAIN 50"])
        #expect(await f.engine.stats().lowStock == 2)
    }

    // MARK: STATS

    @Test("STATS before anything happened: MAIN only, zeros, accuracy 100 %")
    func statsFresh() async throws {
        let f = Fixture()
        let s = await f.engine.stats()
        #expect(s.cells == 0 && s.warehouses == 1 && s.variants == 0)
        #expect(s.onHand == 0 && s.reserved == 0 && s.available == 0)
        #expect(s.lowStock == 0 && s.activeReservations == 0)
        #expect(s.accuracyBasisPoints == 10_000)
        #expect(s.counters.stockouts == 0 && s.counters.shrinkage == 0)
    }

    @Test("STATS figures: cells, totals, active reservations, units, stockouts, shrinkage, accuracy, refusals by code")
    func statsFigures() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 5)
        try await f.receive("B", "MAIN", 4)
        // B 4 → 0 available: a stockout.
        _ = try must(await f.reserve("r1", [rline("A", "MAIN", 6), rline("B", "MAIN", 4)]))
        _ = try must(await f.engine.fulfill("r1", line: LineSelector(variant: "A", warehouse: "MAIN", quantity: 2)))
        _ = try must(await f.engine.release("r1", line: LineSelector(variant: "B", warehouse: "MAIN", quantity: 1)))
        // A EAST 5 → 0: a stockout; then it expires.
        _ = try must(await f.reserve("r2", [rline("A", "EAST", 5)], ttl: .seconds(10)))
        f.advance(.seconds(10))
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -1, reason: .damaged))
        // B 1 → 0 available: a stockout.
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -1, reason: .lost))
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "EAST", by: -1, reason: .correction))
        _ = try must(await f.engine.returnStock(variant: "A", warehouse: "MAIN", quantity: 1, disposition: .damaged))
        // Cycle counts: three without variance, one with (B 3 → 2: 0 → -1 available is no new stockout).
        _ = try must(await f.engine.count(variant: "A", warehouse: "EAST", counted: 4))
        _ = try must(await f.engine.count(variant: "A", warehouse: "MAIN", counted: 7))
        _ = try must(await f.engine.count(variant: "B", warehouse: "MAIN", counted: 2))
        _ = try must(await f.engine.count(variant: "A", warehouse: "EAST", counted: 4))
        try await f.policy("A", lowStock: 3)
        // Refusals, one of each.
        #expect(await f.reserve("r3", [rline("A", "MAIN", 99)]).refusal?.code == .insufficient)
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: -99, reason: .lost).refusal?.code == .negative)
        #expect(await f.engine.adjust(variant: "A", warehouse: "MAIN", by: 0, reason: .other).refusal?.code == .invalid)
        #expect(await f.engine.release("nobody").refusal?.code == .notFound)
        #expect(await f.reserve("r1", [rline("A", "MAIN", 1)]).refusal?.code == .conflict)
        #expect(await f.engine.extend("r2", ttl: .seconds(5)).refusal?.code == .expired)
        // Neither refused queries nor replays are counted.
        #expect(await f.engine.cell(variant: "A", warehouse: "NOPE").refusal?.code == .notFound)
        #expect(try must(await f.reserve("r2", [rline("A", "EAST", 5)], ttl: .seconds(10))).replayed)

        let s = await f.engine.stats()
        // A MAIN 7/4, A EAST 4/0, B MAIN 2/3.
        #expect(try await f.fig("A") == "7/4")
        #expect(try await f.fig("A", "EAST") == "4/0")
        #expect(try await f.fig("B") == "2/3")
        #expect(s.cells == 3)
        #expect(s.warehouses == 2)
        #expect(s.variants == 2)
        #expect(s.onHand == 13 && s.reserved == 7 && s.available == 6)
        #expect(s.lowStock == 1, "A MAIN has 3 available, at its threshold")
        #expect(s.activeReservations == 1)
        #expect(s.counters.unitsReserved == 15)
        #expect(s.counters.unitsFulfilled == 2)
        #expect(s.counters.unitsReleased == 1)
        #expect(s.counters.unitsExpired == 5)
        #expect(s.counters.stockouts == 3)
        #expect(s.counters.shrinkage == 2)
        #expect(s.counters.cycleCounts == 4 && s.counters.cycleCountsWithoutVariance == 3)
        #expect(s.accuracyBasisPoints == 7_500)
        #expect(s.refused[.insufficient] == 1)
        #expect(s.refused[.negative] == 1)
        #expect(s.refused[.invalid] == 1)
        #expect(s.refused[.notFound] == 1)
        #expect(s.refused[.conflict] == 1)
        #expect(s.refused[.expired] == 1)
        #expect(s.refused[.closed, default: 0] == 0 && s.refused[.limit, default: 0] == 0 && s.refused[.inactive, default: 0] == 0)
        #expect(await f.engine.verify().isEmpty)
    }
}
