// Black-box tests of the life of a reservation after RESERVE, derived from SPEC §2, §7.5, §7.6 and
// docs/DECISIONS.md: TTL holds that expire exactly at expires_at, EXTEND, CONFIRM, RELEASE and
// FULFILL (all or part), the statuses, closed reservations, and the retention of ids.

import Stockpile
import StockpileCore
import Testing

private typealias Fixture = BlackBox.Fixture

private func rline(_ variant: String, _ warehouse: String, _ quantity: Int64) -> ReserveLine {
    BlackBox.line(variant, warehouse, quantity)
}

private func part(_ variant: String, _ warehouse: String, _ quantity: Int64) -> LineSelector {
    LineSelector(variant: variant, warehouse: warehouse, quantity: Quantity(quantity))
}

private func must<T>(_ outcome: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try BlackBox.must(outcome, sourceLocation: sourceLocation)
}

private func figures(_ r: Reservation) -> [String] { BlackBox.figures(r) }

@Suite("Holds and the reservation lifecycle")
struct HoldTests {

    // MARK: Expiry

    @Test("a hold is active one millisecond before expires_at and expired exactly at it, with its stock back")
    func expiresExactly() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        let start = f.now
        let r = try must(await f.reserve("hold", [rline("A", "MAIN", 4)], ttl: .seconds(60), actor: "web"))
        #expect(r.reservation.expiresAt == start.advanced(by: .seconds(60)))
        let seq = f.nextSeq

        f.advance(.milliseconds(59_999))
        #expect(try await f.reservation("hold").status == .active)
        #expect(try await f.fig("A") == "10/4")
        #expect(await f.reserve("probe", [rline("A", "MAIN", 7)]).refusal?.code == .insufficient)
        #expect(f.nextSeq == seq)

        f.advance(.milliseconds(1))
        let expired = try await f.reservation("hold")
        #expect(expired.status == .expired)
        #expect(expired.expiresAt == nil)
        #expect(figures(expired) == ["A MAIN q=4 f=0 r=4 b=0 rem=0"])
        #expect(try await f.fig("A") == "10/0")
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        let e = try #require(entries.first)
        #expect(e.type == .expire)
        #expect(e.reason == .expired)
        #expect(e.variant == "A" && e.warehouse == "MAIN")
        #expect(e.deltaReserved == -4 && e.deltaOnHand == 0)
        #expect(e.onHand == 10 && e.reserved == 0)
        #expect(e.reservation == "hold")
        #expect(e.time == start.advanced(by: .seconds(60)))
        #expect(e.actor != "web", "the engine expires the hold, not the actor that reserved it")
        #expect(await f.engine.stats().counters.unitsExpired == 4)
        #expect(await f.engine.stats().activeReservations == 0)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("at expires_at the released stock is available to the very next reserve")
    func expiredStockIsAvailableToNextReserve() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        _ = try must(await f.reserve("hold", [rline("A", "MAIN", 5)], ttl: .seconds(30)))
        f.advance(.seconds(30))
        let r = try must(await f.reserve("next", [rline("A", "MAIN", 5)]))
        #expect(r.reservation.status == .active)
        #expect(try await f.fig("A") == "5/5")
        #expect(try await f.reservation("hold").status == .expired)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a cell read at expires_at already shows the expired hold's stock back")
    func cellReadAtDeadlineShowsStockBack() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 5)
        _ = try must(await f.reserve("hold", [rline("A", "MAIN", 3)], ttl: .seconds(10)))
        f.advance(.seconds(10))
        // The first thing asked after the deadline is the cell itself.
        #expect(try await f.fig("A") == "5/0")
        let stock = try must(await f.engine.stock(variant: "A"))
        #expect(stock.totals.reserved == 0)
        #expect(await f.engine.stats().reserved == 0)
        #expect(await f.engine.stats().activeReservations == 0)
    }

    @Test("BACKORDERS asked at expires_at no longer lists the expired hold")
    func backordersAtDeadline() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        _ = try must(await f.reserve("pre", [rline("PRE", "MAIN", 2)], ttl: .seconds(10)))
        #expect(try must(await f.engine.backorders()).map(\.reservation) == ["pre"])
        f.advance(.seconds(10))
        #expect(try must(await f.engine.backorders()).isEmpty)
        #expect(try await f.reservation("pre").status == .expired)
    }

    @Test("an expiry noticed late carries the deadline as its time; simultaneous deadlines expire in order of id")
    func lateExpiriesInOrder() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        for v in ["A", "B", "C"] { try await f.receive(v, "EAST", 10) }
        let start = f.now
        _ = try must(await f.reserve("zeta", [rline("A", "EAST", 1), rline("B", "EAST", 1)], ttl: .seconds(20)))
        _ = try must(await f.reserve("alpha", [rline("C", "EAST", 2), rline("A", "EAST", 2)], ttl: .seconds(20)))
        _ = try must(await f.reserve("early", [rline("B", "EAST", 3)], ttl: .seconds(5)))
        let seq = f.nextSeq
        f.advance(.seconds(3600))
        try await f.receive("Z", "MAIN", 1)
        let entries = await f.events(from: seq)
        let expiries = entries.filter { $0.type == .expire }
        #expect(expiries.map(\.reservation) == ["early", "alpha", "alpha", "zeta", "zeta"])
        #expect(expiries.map(\.time) == [start.advanced(by: .seconds(5))] + Array(repeating: start.advanced(by: .seconds(20)), count: 4))
        #expect(entries.last?.type == .adjust, "expiries are applied before the operation that noticed them")
        #expect(entries.map(\.seq) == Array(seq..<(seq + UInt64(entries.count))))
        for v in ["A", "B", "C"] { #expect(try await f.fig(v, "EAST") == "10/0") }
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("expiry releases what remains of a partially fulfilled hold; its status is then fulfilled")
    func expiryOfPartiallyFulfilledHold() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("h", [rline("A", "MAIN", 5)], ttl: .seconds(60)))
        let shipped = try must(await f.engine.fulfill("h", line: part("A", "MAIN", 2)))
        #expect(shipped.reservation.status == .partiallyFulfilled)
        #expect(shipped.reservation.expiresAt != nil, "a partial shipment does not stop the hold from expiring")
        f.advance(.seconds(60))
        let r = try await f.reservation("h")
        #expect(r.status == .fulfilled)
        #expect(figures(r) == ["A MAIN q=5 f=2 r=3 b=0 rem=0"])
        #expect(try await f.fig("A") == "8/0")
        let stats = await f.engine.stats()
        #expect(stats.counters.unitsExpired == 3)
        #expect(stats.counters.unitsFulfilled == 2)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a hold that shipped in part and then expired reads fulfilled, yet EXTEND, CONFIRM and partial changes are EXPIRED")
    func shippedThenExpiredAnswersExpired() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("h", [rline("A", "MAIN", 5)], ttl: .seconds(60)))
        _ = try must(await f.engine.fulfill("h", line: part("A", "MAIN", 2)))
        f.advance(.seconds(60))
        #expect(try await f.reservation("h").status == .fulfilled)
        let seq = f.nextSeq
        let extend = try #require(await f.engine.extend("h", ttl: .seconds(60)).refusal)
        #expect(extend.code == .expired && extend.description == "EXPIRED reservation h expired")
        #expect(await f.engine.confirm("h").refusal?.code == .expired)
        #expect(await f.engine.fulfill("h", line: part("A", "MAIN", 1)).refusal?.code == .expired)
        #expect(await f.engine.release("h", line: part("A", "MAIN", 1)).refusal?.code == .expired)
        // Everything at once is not a change: the record comes back as it is.
        #expect(try must(await f.engine.fulfill("h")).reservation.status == .fulfilled)
        #expect(try must(await f.engine.release("h")).reservation.status == .fulfilled)
        #expect(f.nextSeq == seq)
        // A hold that shipped in part and was then released by hand is CLOSED, as before.
        _ = try must(await f.reserve("k", [rline("A", "MAIN", 2)], ttl: .seconds(60)))
        _ = try must(await f.engine.fulfill("k", line: part("A", "MAIN", 1)))
        _ = try must(await f.engine.release("k"))
        #expect(await f.engine.extend("k", ttl: .seconds(60)).refusal?.code == .closed)
        #expect(await f.engine.confirm("k").refusal?.code == .closed)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a reservation without TTL never expires")
    func noTTLNeverExpires() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("order", [rline("A", "MAIN", 5)]))
        f.advance(.seconds(365 * 24 * 3600))
        #expect(try await f.reservation("order").status == .active)
        #expect(try await f.fig("A") == "10/5")
    }

    // MARK: EXTEND

    @Test("EXTEND sets the expiry to now + TTL, and the hold expires then and not before")
    func extend() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        let start = f.now
        _ = try must(await f.reserve("h", [rline("A", "MAIN", 4)], ttl: .seconds(60)))
        f.advance(.seconds(30))
        let seq = f.nextSeq
        let r = try must(await f.engine.extend("h", ttl: .seconds(60), actor: "web"))
        #expect(r.reservation.expiresAt == start.advanced(by: .seconds(90)))
        #expect(r.reservation.status == .active)
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        #expect(entries.first?.type == .extend)
        #expect(entries.first?.reservation == "h")
        #expect(entries.first?.touchesCell == false, "an extend entry leaves variant or warehouse empty")
        #expect(entries.first?.actor == "web")
        // The old deadline passes without effect.
        f.advance(.seconds(30))
        #expect(try await f.reservation("h").status == .active)
        #expect(try await f.fig("A") == "10/4")
        // A shorter TTL shortens the hold too: the new expiry is now + TTL.
        let shorter = try must(await f.engine.extend("h", ttl: .seconds(5)))
        #expect(shorter.reservation.expiresAt == start.advanced(by: .seconds(65)))
        f.advance(.milliseconds(4_999))
        #expect(try await f.reservation("h").status == .active)
        f.advance(.milliseconds(1))
        #expect(try await f.reservation("h").status == .expired)
        #expect(try await f.fig("A") == "10/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("EXTEND takes a TTL of 1 s to 30 days; outside that it is INVALID and the hold keeps its expiry")
    func extendTTLBounds() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        let r = try must(await f.reserve("h", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        for bad in [Duration.zero, .milliseconds(999), .seconds(-1), .seconds(30 * 24 * 3600 + 1)] {
            #expect(await f.engine.extend("h", ttl: bad).refusal?.code == .invalid, "\(bad)")
        }
        #expect(try await f.reservation("h").expiresAt == r.reservation.expiresAt)
        #expect(try must(await f.engine.extend("h", ttl: .seconds(30 * 24 * 3600))).reservation.expiresAt == f.now.advanced(by: .seconds(30 * 24 * 3600)))
        #expect(try must(await f.engine.extend("h", ttl: .seconds(1))).reservation.expiresAt == f.now.advanced(by: .seconds(1)))
    }

    @Test("EXTEND of a reservation that does not expire is INVALID")
    func extendNonExpiring() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("order", [rline("A", "MAIN", 1)]))
        let seq = f.nextSeq
        #expect(await f.engine.extend("order", ttl: .seconds(60)).refusal?.code == .invalid)
        _ = try must(await f.reserve("hold", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        _ = try must(await f.engine.confirm("hold"))
        #expect(await f.engine.extend("hold", ttl: .seconds(60)).refusal?.code == .invalid)
        #expect(try await f.reservation("order").expiresAt == nil)
        #expect(try await f.reservation("hold").expiresAt == nil)
        #expect(await f.events(from: seq).filter { $0.type == .extend }.isEmpty)
    }

    @Test("at expires_at it is too late: EXTEND and CONFIRM are EXPIRED, RELEASE returns the expired record")
    func tooLateAtTheDeadline() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("h1", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        _ = try must(await f.reserve("h2", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        _ = try must(await f.reserve("h3", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        _ = try must(await f.reserve("h4", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        f.advance(.seconds(60))
        #expect(await f.engine.extend("h1", ttl: .seconds(60)).refusal?.code == .expired)
        #expect(await f.engine.confirm("h2").refusal?.code == .expired)
        #expect(try must(await f.engine.release("h3")).reservation.status == .expired)
        #expect(await f.engine.fulfill("h4").refusal?.code == .expired)
        #expect(try await f.fig("A") == "10/0")
        // One millisecond earlier, both work.
        let g = Fixture()
        try await g.receive("A", "MAIN", 10)
        _ = try must(await g.reserve("h1", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        _ = try must(await g.reserve("h2", [rline("A", "MAIN", 1)], ttl: .seconds(60)))
        g.advance(.milliseconds(59_999))
        #expect(try must(await g.engine.extend("h1", ttl: .seconds(1))).reservation.expiresAt == g.now.advanced(by: .seconds(1)))
        #expect(try must(await g.engine.confirm("h2")).reservation.expiresAt == nil)
        g.advance(.seconds(1))
        #expect(try await g.reservation("h1").status == .expired)
        #expect(try await g.reservation("h2").status == .active)
        #expect(try await g.fig("A") == "10/1")
    }

    // MARK: CONFIRM

    @Test("CONFIRM drops the expiry: the hold becomes an order reservation that never expires")
    func confirm() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("h", [rline("A", "MAIN", 4)], ttl: .seconds(60)))
        f.advance(.seconds(59))
        let seq = f.nextSeq
        let r = try must(await f.engine.confirm("h", actor: "orders"))
        #expect(r.reservation.expiresAt == nil)
        #expect(r.reservation.status == .active)
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        #expect(entries.first?.type == .confirm)
        #expect(entries.first?.reservation == "h")
        #expect(entries.first?.touchesCell == false)
        #expect(entries.first?.actor == "orders")
        f.advance(.seconds(31 * 24 * 3600))
        #expect(try await f.reservation("h").status == .active)
        #expect(try await f.fig("A") == "10/4")
        // Confirming again returns it unchanged, with no ledger entry.
        let seq2 = f.nextSeq
        let again = try must(await f.engine.confirm("h"))
        #expect(again.reservation == r.reservation)
        #expect(f.nextSeq == seq2)
        // A reservation made without TTL confirms unchanged too.
        _ = try must(await f.reserve("order", [rline("A", "MAIN", 1)]))
        let seq3 = f.nextSeq
        #expect(try must(await f.engine.confirm("order")).reservation.expiresAt == nil)
        #expect(f.nextSeq == seq3)
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: RELEASE

    @Test("RELEASE of everything gives the stock back, status released, one entry per line with reason cancelled")
    func releaseAll() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "EAST", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 3), rline("B", "EAST", 2)], ttl: .seconds(60)))
        let seq = f.nextSeq
        let r = try must(await f.engine.release("r", actor: "support"))
        #expect(r.reservation.status == .released)
        #expect(r.reservation.expiresAt == nil)
        #expect(figures(r.reservation) == ["A MAIN q=3 f=0 r=3 b=0 rem=0", "B EAST q=2 f=0 r=2 b=0 rem=0"])
        #expect(try await f.fig("A") == "10/0")
        #expect(try await f.fig("B", "EAST") == "10/0")
        let entries = await f.events(from: seq)
        #expect(entries.map(\.seq) == [seq, seq + 1])
        #expect(entries.allSatisfy { $0.type == .release && $0.reason == .cancelled && $0.reservation == "r" && $0.actor == "support" })
        #expect(Set(entries.map { "\($0.variant) \($0.warehouse) \($0.deltaReserved)" }) == ["A MAIN -3", "B EAST -2"])
        // Released, it no longer expires.
        f.advance(.seconds(120))
        #expect(try await f.reservation("r").status == .released)
        #expect(f.nextSeq == seq + 2)
        #expect(await f.engine.stats().counters.unitsReleased == 5)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("RELEASE records the REASON it is given")
    func releaseWithReason() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 3)]))
        let seq = f.nextSeq
        _ = try must(await f.engine.release("r", line: part("A", "MAIN", 1), reason: .other))
        _ = try must(await f.engine.release("r", reason: .damaged))
        let entries = await f.events(from: seq)
        #expect(entries.map(\.reason) == [.other, .damaged])
        #expect(entries.map(\.deltaReserved) == [-1, -2])
    }

    @Test("partial RELEASE of one line: that much less is held; the rest stays active")
    func releasePart() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "EAST", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 5), rline("B", "EAST", 2)]))
        let seq = f.nextSeq
        let r = try must(await f.engine.release("r", line: part("A", "main", 2)))
        #expect(r.reservation.status == .active)
        #expect(figures(r.reservation) == ["A MAIN q=5 f=0 r=2 b=0 rem=3", "B EAST q=2 f=0 r=0 b=0 rem=2"])
        #expect(try await f.fig("A") == "10/3")
        let entries = await f.events(from: seq)
        #expect(entries.count == 1)
        #expect(entries.first?.type == .release && entries.first?.deltaReserved == -2 && entries.first?.reason == .cancelled)
        // Releasing the rest line by line closes it as released.
        _ = try must(await f.engine.release("r", line: part("A", "MAIN", 3)))
        let last = try must(await f.engine.release("r", line: part("B", "EAST", 2)))
        #expect(last.reservation.status == .released)
        #expect(try await f.fig("A") == "10/0")
        #expect(try await f.fig("B", "EAST") == "10/0")
        #expect(await f.engine.verify().isEmpty)
    }

    struct PartRefusalCase: Sendable, CustomTestStringConvertible {
        var name: String
        var selector: LineSelector
        var expected: RefusalCode
        var testDescription: String { name }
    }

    static let partRefusals = [
        PartRefusalCase(name: "more than remains", selector: LineSelector(variant: "A", warehouse: "MAIN", quantity: 6), expected: .invalid),
        PartRefusalCase(name: "zero", selector: LineSelector(variant: "A", warehouse: "MAIN", quantity: 0), expected: .invalid),
        PartRefusalCase(name: "negative", selector: LineSelector(variant: "A", warehouse: "MAIN", quantity: -1), expected: .invalid),
        PartRefusalCase(name: "a variant it has no line for", selector: LineSelector(variant: "B", warehouse: "MAIN", quantity: 1), expected: .notFound),
        PartRefusalCase(name: "a warehouse it has no line in", selector: LineSelector(variant: "A", warehouse: "EAST", quantity: 1), expected: .notFound),
        PartRefusalCase(name: "a warehouse that does not exist", selector: LineSelector(variant: "A", warehouse: "NOPE", quantity: 1), expected: .notFound),
    ]

    @Test("a partial RELEASE that does not fit the reservation is refused and changes nothing", arguments: HoldTests.partRefusals)
    func releasePartRefused(_ c: PartRefusalCase) async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 5)]))
        _ = try must(await f.engine.release("r", line: part("A", "MAIN", 1)))
        // Now 4 remain of 5 on A MAIN; "more than remains" (6) is more than the quantity too.
        let seq = f.nextSeq
        #expect(await f.engine.release("r", line: c.selector).refusal?.code == c.expected)
        #expect(f.nextSeq == seq)
        #expect(figures(try await f.reservation("r")) == ["A MAIN q=5 f=0 r=1 b=0 rem=4"])
        #expect(try await f.fig("A") == "10/4")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("partial RELEASE or FULFILL of exactly what remains is fine; one more than remains (but within the quantity) is INVALID")
    func moreThanRemains() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 5)]))
        _ = try must(await f.engine.fulfill("r", line: part("A", "MAIN", 2)))
        _ = try must(await f.engine.release("r", line: part("A", "MAIN", 1)))
        // 2 remain of 5.
        #expect(await f.engine.release("r", line: part("A", "MAIN", 3)).refusal?.code == .invalid)
        #expect(await f.engine.fulfill("r", line: part("A", "MAIN", 3)).refusal?.code == .invalid)
        #expect(figures(try await f.reservation("r")) == ["A MAIN q=5 f=2 r=1 b=0 rem=2"])
        let done = try must(await f.engine.fulfill("r", line: part("A", "MAIN", 2)))
        #expect(done.reservation.status == .fulfilled)
        #expect(try await f.fig("A") == "6/0")
        #expect(await f.engine.stats().refused[.invalid] == 2)
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: FULFILL

    @Test("FULFILL of everything ships it: on_hand and reserved drop, status fulfilled, fully shipped")
    func fulfillAll() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "EAST", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 3), rline("B", "EAST", 2)], ttl: .seconds(60)))
        let seq = f.nextSeq
        let r = try must(await f.engine.fulfill("o", actor: "dock"))
        #expect(r.reservation.status == .fulfilled)
        #expect(r.reservation.isFullyShipped)
        #expect(r.reservation.expiresAt == nil)
        #expect(figures(r.reservation) == ["A MAIN q=3 f=3 r=0 b=0 rem=0", "B EAST q=2 f=2 r=0 b=0 rem=0"])
        #expect(try await f.fig("A") == "7/0")
        #expect(try await f.fig("B", "EAST") == "8/0")
        let entries = await f.events(from: seq)
        #expect(entries.map(\.seq) == [seq, seq + 1])
        #expect(entries.allSatisfy { $0.type == .fulfill && $0.reservation == "o" && $0.actor == "dock" })
        #expect(Set(entries.map { "\($0.variant) \($0.deltaOnHand) \($0.deltaReserved)" }) == ["A -3 -3", "B -2 -2"])
        // Fulfilled, it no longer expires.
        f.advance(.seconds(120))
        #expect(try await f.reservation("o").status == .fulfilled)
        #expect(f.nextSeq == seq + 2)
        #expect(await f.engine.stats().counters.unitsFulfilled == 5)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("partial shipments move the status active → partially_fulfilled → fulfilled")
    func partialShipments() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "EAST", 10)
        let r0 = try must(await f.reserve("o", [rline("A", "MAIN", 4), rline("B", "EAST", 2)]))
        #expect(r0.reservation.status == .active)
        let r1 = try must(await f.engine.fulfill("o", line: part("A", "MAIN", 1)))
        #expect(r1.reservation.status == .partiallyFulfilled)
        #expect(!r1.reservation.isFullyShipped)
        #expect(figures(r1.reservation) == ["A MAIN q=4 f=1 r=0 b=0 rem=3", "B EAST q=2 f=0 r=0 b=0 rem=2"])
        #expect(try await f.fig("A") == "9/3")
        let r2 = try must(await f.engine.fulfill("o", line: part("B", "east", 2)))
        #expect(r2.reservation.status == .partiallyFulfilled)
        #expect(try await f.fig("B", "EAST") == "8/0")
        let r3 = try must(await f.engine.fulfill("o", line: part("A", "MAIN", 3)))
        #expect(r3.reservation.status == .fulfilled)
        #expect(r3.reservation.isFullyShipped)
        #expect(figures(r3.reservation) == ["A MAIN q=4 f=4 r=0 b=0 rem=0", "B EAST q=2 f=2 r=0 b=0 rem=0"])
        #expect(try await f.fig("A") == "6/0")
        #expect(try await f.reservation("o") == r3.reservation)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a reservation something shipped from is fulfilled when the rest is released, and the lines show the release")
    func releaseRestAfterShipment() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 5)]))
        _ = try must(await f.engine.fulfill("o", line: part("A", "MAIN", 2)))
        let r = try must(await f.engine.release("o"))
        #expect(r.reservation.status == .fulfilled)
        #expect(figures(r.reservation) == ["A MAIN q=5 f=2 r=3 b=0 rem=0"])
        #expect(try await f.fig("A") == "8/0")
        // Partial release after a shipment, then fulfil the rest: also fulfilled.
        _ = try must(await f.reserve("p", [rline("A", "MAIN", 4)]))
        _ = try must(await f.engine.release("p", line: part("A", "MAIN", 3)))
        #expect(try await f.reservation("p").status == .active, "nothing shipped yet, something remains")
        let p = try must(await f.engine.fulfill("p"))
        #expect(p.reservation.status == .fulfilled)
        #expect(figures(p.reservation) == ["A MAIN q=4 f=1 r=3 b=0 rem=0"])
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a partial FULFILL that does not fit the reservation is refused and changes nothing", arguments: HoldTests.partRefusals)
    func fulfillPartRefused(_ c: PartRefusalCase) async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "MAIN", 10)
        try await f.receive("A", "EAST", 10)
        _ = try must(await f.reserve("r", [rline("A", "MAIN", 5)]))
        _ = try must(await f.engine.fulfill("r", line: part("A", "MAIN", 1)))
        let seq = f.nextSeq
        #expect(await f.engine.fulfill("r", line: c.selector).refusal?.code == c.expected)
        #expect(f.nextSeq == seq)
        #expect(figures(try await f.reservation("r")) == ["A MAIN q=5 f=1 r=0 b=0 rem=4"])
        #expect(try await f.fig("A") == "9/4")
    }

    @Test("a backordered line cannot ship before stock arrives: INSUFFICIENT reports on_hand as available")
    func fulfillBackorderedLine() async throws {
        let f = Fixture()
        try await f.policy("PRE", backorder: true)
        try await f.receive("PRE", "MAIN", 2)
        _ = try must(await f.reserve("pre", [rline("PRE", "MAIN", 5)]))
        let seq = f.nextSeq
        let refusal = try #require(await f.engine.fulfill("pre").refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "PRE" && refusal.warehouse == "MAIN")
        #expect(refusal.available == 2 && refusal.requested == 5)
        #expect(await f.engine.fulfill("pre", line: part("PRE", "MAIN", 3)).refusal?.code == .insufficient)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("PRE") == "2/5")
        // What is on hand can ship.
        let partial = try must(await f.engine.fulfill("pre", line: part("PRE", "MAIN", 2)))
        #expect(partial.reservation.status == .partiallyFulfilled)
        #expect(try await f.fig("PRE") == "0/3")
        // Once stock arrives, the rest ships.
        try await f.receive("PRE", "MAIN", 3)
        let done = try must(await f.engine.fulfill("pre"))
        #expect(done.reservation.status == .fulfilled)
        #expect(try await f.fig("PRE") == "0/0")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("FULFILL of several lines is all or nothing: one line short of on_hand ships none")
    func fulfillAllOrNothing() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        try await f.receive("B", "MAIN", 10)
        _ = try must(await f.reserve("o", [rline("A", "MAIN", 3), rline("B", "MAIN", 8)]))
        // A physical loss leaves B with on_hand 5 < 8 reserved.
        _ = try must(await f.engine.adjust(variant: "B", warehouse: "MAIN", by: -5, reason: .lost))
        let seq = f.nextSeq
        let refusal = try #require(await f.engine.fulfill("o").refusal)
        #expect(refusal.code == .insufficient)
        #expect(refusal.variant == "B" && refusal.available == 5 && refusal.requested == 8)
        #expect(f.nextSeq == seq)
        #expect(try await f.fig("A") == "10/3")
        #expect(try await f.fig("B") == "5/8")
        #expect(try await f.reservation("o").status == .active)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("fulfilment and release still work in a warehouse that became inactive")
    func inactiveWarehouseStillShipsAndReleases() async throws {
        let f = Fixture()
        try await f.warehouse("EAST")
        try await f.receive("A", "EAST", 10)
        _ = try must(await f.reserve("o", [rline("A", "EAST", 4)]))
        _ = try must(await f.reserve("p", [rline("A", "EAST", 3)]))
        try await f.warehouse("EAST", active: false)
        _ = try must(await f.engine.fulfill("o", line: part("A", "EAST", 1)))
        _ = try must(await f.engine.fulfill("o"))
        _ = try must(await f.engine.release("p", line: part("A", "EAST", 1)))
        _ = try must(await f.engine.release("p"))
        _ = try must(await f.engine.adjust(variant: "A", warehouse: "EAST", by: 2, reason: .found))
        #expect(try await f.fig("A", "EAST") == "8/0")
        #expect(await f.engine.verify().isEmpty)
    }

    // MARK: Closed reservations

    enum ClosedBy: String, Sendable, CaseIterable {
        case released, expired, fulfilled
        /// Something shipped, then the rest was released: status fulfilled.
        case shippedThenReleased
        /// Something shipped, then the rest expired: status fulfilled.
        case shippedThenExpired

        var status: ReservationStatus {
            switch self {
            case .released: .released
            case .expired: .expired
            case .fulfilled, .shippedThenReleased, .shippedThenExpired: .fulfilled
            }
        }

        /// SPEC §7.6: whether it ended by expiry, whatever its status says (a hold that shipped in part
        /// and then expired reads `fulfilled`, yet it ended by expiry).
        var endedByExpiry: Bool { self == .expired || self == .shippedThenExpired }
    }

    enum ClosedOp: String, Sendable, CaseIterable {
        case releaseAll, releasePart, fulfillAll, fulfillPart, extend, confirm
    }

    /// SPEC §7.6 and DECISIONS "Holds": nil means the record comes back unchanged.
    static func expected(_ by: ClosedBy, _ op: ClosedOp) -> RefusalCode? {
        let closedCode: RefusalCode = by.endedByExpiry ? .expired : .closed
        switch op {
        case .releaseAll: return nil
        case .fulfillAll: return by.status == .fulfilled ? nil : closedCode
        case .releasePart, .fulfillPart, .extend, .confirm: return closedCode
        }
    }

    @Test("an operation on a closed reservation: unchanged, CLOSED or EXPIRED (SPEC §7.6)", arguments: ClosedBy.allCases, ClosedOp.allCases)
    func closedReservation(_ by: ClosedBy, _ op: ClosedOp) async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("c", [rline("A", "MAIN", 4)], ttl: .seconds(60)))
        switch by {
        case .released: _ = try must(await f.engine.release("c"))
        case .fulfilled: _ = try must(await f.engine.fulfill("c"))
        case .expired: f.advance(.seconds(60))
        case .shippedThenReleased:
            _ = try must(await f.engine.fulfill("c", line: part("A", "MAIN", 1)))
            _ = try must(await f.engine.release("c"))
        case .shippedThenExpired:
            _ = try must(await f.engine.fulfill("c", line: part("A", "MAIN", 1)))
            f.advance(.seconds(60))
        }
        let closed = try await f.reservation("c")
        #expect(closed.status == by.status)
        #expect(closed.expiresAt == nil)
        let cellBefore = try await f.fig("A")
        let seq = f.nextSeq
        let out: Outcome<ReservationRecord>
        switch op {
        case .releaseAll: out = await f.engine.release("c")
        case .releasePart: out = await f.engine.release("c", line: part("A", "MAIN", 1))
        case .fulfillAll: out = await f.engine.fulfill("c")
        case .fulfillPart: out = await f.engine.fulfill("c", line: part("A", "MAIN", 1))
        case .extend: out = await f.engine.extend("c", ttl: .seconds(60))
        case .confirm: out = await f.engine.confirm("c")
        }
        if let code = Self.expected(by, op) {
            #expect(out.refusal?.code == code)
        } else {
            let r = try must(out)
            #expect(r.reservation == closed, "the record comes back unchanged")
        }
        #expect(f.nextSeq == seq, "nothing is logged")
        #expect(try await f.reservation("c") == closed)
        #expect(try await f.fig("A") == cellBefore)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("EXTEND, CONFIRM, RELEASE and FULFILL of an id never reserved are NOTFOUND")
    func unknownReservation() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        #expect(await f.engine.extend("ghost", ttl: .seconds(60)).refusal?.code == .notFound)
        #expect(await f.engine.confirm("ghost").refusal?.code == .notFound)
        #expect(await f.engine.release("ghost").refusal?.code == .notFound)
        #expect(await f.engine.release("ghost", line: part("A", "MAIN", 1)).refusal?.code == .notFound)
        #expect(await f.engine.fulfill("ghost").refusal?.code == .notFound)
        #expect(await f.engine.fulfill("ghost", line: part("A", "MAIN", 1)).refusal?.code == .notFound)
        #expect(await f.engine.reservation("ghost").refusal?.code == .notFound)
        #expect(await f.engine.stats().refused[.notFound] == 6, "queries are not counted as refused mutations")
        #expect(try await f.fig("A") == "10/0")
        // An id refused by RESERVE is not found afterwards either.
        #expect(await f.reserve("ghost", [rline("A", "MAIN", 11)]).refusal?.code == .insufficient)
        #expect(await f.engine.release("ghost").refusal?.code == .notFound)
        // A malformed id is INVALID, not NOTFOUND.
        #expect(await f.engine.release("has space").refusal?.code == .invalid)
        #expect(await f.engine.confirm("").refusal?.code == .invalid)
    }

    // MARK: Retention

    @Test("a closed reservation's id is remembered for the retention window, then forgotten and reusable")
    func retentionOfClosedIds() async throws {
        let f = Fixture()  // retention 3600 s
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("cart", [rline("A", "MAIN", 2)]))
        f.advance(.seconds(7200))
        _ = try must(await f.engine.release("cart"))
        // The window runs from when it closed, not from when it was made.
        f.advance(.milliseconds(3_599_999))
        #expect(try await f.reservation("cart").status == .released)
        #expect(await f.reserve("cart", [rline("A", "MAIN", 5)]).refusal?.code == .conflict)
        #expect(try must(await f.reserve("cart", [rline("A", "MAIN", 2)])).replayed)
        f.advance(.milliseconds(2))
        #expect(await f.engine.reservation("cart").refusal?.code == .notFound)
        let reused = try must(await f.reserve("cart", [rline("A", "MAIN", 5)]))
        #expect(!reused.replayed)
        #expect(figures(reused.reservation) == ["A MAIN q=5 f=0 r=0 b=0 rem=5"])
        #expect(try await f.fig("A") == "10/5")
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("an expired hold's id is forgotten one retention window after its deadline")
    func retentionOfExpiredIds() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("h", [rline("A", "MAIN", 2)], ttl: .seconds(60)))
        f.advance(.seconds(60 + 3599))
        #expect(try await f.reservation("h").status == .expired)
        #expect(await f.engine.extend("h", ttl: .seconds(60)).refusal?.code == .expired)
        f.advance(.seconds(2))
        #expect(await f.engine.reservation("h").refusal?.code == .notFound)
        #expect(await f.engine.extend("h", ttl: .seconds(60)).refusal?.code == .notFound)
        let reused = try must(await f.reserve("h", [rline("A", "MAIN", 3)], ttl: .seconds(60)))
        #expect(!reused.replayed)
        #expect(try await f.fig("A") == "10/3")
    }

    @Test("the id of a reservation that is still open is never forgotten")
    func openIdsAreKept() async throws {
        let f = Fixture()
        try await f.receive("A", "MAIN", 10)
        _ = try must(await f.reserve("order", [rline("A", "MAIN", 2)]))
        _ = try must(await f.reserve("part", [rline("A", "MAIN", 3)]))
        _ = try must(await f.engine.fulfill("part", line: part("A", "MAIN", 1)))
        f.advance(.seconds(10 * 3600))
        #expect(try await f.reservation("order").status == .active)
        #expect(try await f.reservation("part").status == .partiallyFulfilled)
        #expect(await f.reserve("order", [rline("A", "MAIN", 1)]).refusal?.code == .conflict)
        #expect(await f.reserve("part", [rline("A", "MAIN", 1)]).refusal?.code == .conflict)
        #expect(try await f.fig("A") == "9/4")
    }
}
