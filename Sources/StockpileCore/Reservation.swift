// A reservation: a hold on stock, keyed by a caller-chosen id that is also its idempotency key.
// Each line keeps quantity = fulfilled + released + remaining; the status is derived from the lines
// by the one rule of SPEC §7.5, so it can never disagree with them. Whether it ended by expiry is kept
// beside the status, since a hold that shipped in part before it expired reads `fulfilled`.

public enum ReservationStatus: String, Sendable, Hashable, CaseIterable {
    case active
    case partiallyFulfilled = "partially_fulfilled"
    case fulfilled, released, expired

    /// Active and partially fulfilled reservations still hold stock.
    public var isOpen: Bool { self == .active || self == .partiallyFulfilled }
}

/// One line of a reservation: one cell, at most one line per cell.
public struct ReservationLine: Hashable, Sendable {
    public var variant: String
    public var warehouse: String
    public var quantity: Quantity
    public var fulfilled: Quantity
    public var released: Quantity
    /// The part that available stock did not cover when the line was reserved (backorder variants).
    public var backordered: Quantity
    /// False for lines of unlimited variants: they are recorded but never counted in the cell.
    public var tracked: Bool

    public init(
        variant: String, warehouse: String, quantity: Quantity, fulfilled: Quantity = .zero,
        released: Quantity = .zero, backordered: Quantity = .zero, tracked: Bool = true
    ) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
        self.fulfilled = fulfilled
        self.released = released
        self.backordered = backordered
        self.tracked = tracked
    }

    @inlinable public var remaining: Quantity { quantity - fulfilled - released }
    public var cell: CellKey { CellKey(variant: variant, warehouse: warehouse) }
}

/// What identifies a RESERVE request for replays (SPEC §7.3): its lines as a multiset (warehouses
/// upper-cased, order ignored), TTL, customer and the strategy in force.
public struct ReserveFingerprint: Hashable, Sendable {
    public var lines: [ReserveLine]
    public var ttl: Duration?
    public var customer: String?
    public var strategy: PlacementStrategy

    public init(_ request: ReserveRequest, strategy: PlacementStrategy) {
        self.lines = Self.canonical(request.lines)
        self.ttl = request.ttl
        self.customer = request.customer
        self.strategy = strategy
    }

    /// `lines` in the order a fingerprint lists them: by variant, warehouse, then quantity. Lines are a
    /// multiset, and this is the one order they are written in.
    public static func canonical(_ lines: [ReserveLine]) -> [ReserveLine] {
        lines.count < 2 ? lines : lines.sorted {
            if $0.variant != $1.variant { return $0.variant < $1.variant }
            if $0.warehouse != $1.warehouse { return $0.warehouse < $1.warehouse }
            return $0.quantity < $1.quantity
        }
    }

    public init(lines: [ReserveLine], ttl: Duration?, customer: String?, strategy: PlacementStrategy) {
        self.lines = lines
        self.ttl = ttl
        self.customer = customer
        self.strategy = strategy
    }
}

public struct Reservation: Hashable, Sendable {
    public var id: String
    public var lines: [ReservationLine]
    public var status: ReservationStatus
    /// Nil when nothing expires: reserved without a TTL, or confirmed.
    public var expiresAt: Timestamp?
    public var customer: String?
    public var createdAt: Timestamp
    /// When the reservation stopped holding stock; its id is remembered until closedAt + retention.
    public var closedAt: Timestamp?
    /// True when the engine's expiry closed it: always for status `expired`, and for `fulfilled` when
    /// something shipped before the hold expired. SPEC §7.6 answers `EXPIRED` rather than `CLOSED` to
    /// such a reservation, which its status alone cannot tell.
    public private(set) var endedByExpiry: Bool
    /// The request's lines as its fingerprint has them, only when they are not the reservation's own
    /// lines (variant, warehouse, quantity, as a multiset: in any order); nil when they are, as for
    /// every request whose lines each name their warehouse and a different cell. A line's variant,
    /// warehouse and quantity never change after the reservation is made (only what was fulfilled and
    /// released does), so its own lines stand for the request's for good, and a reservation carries
    /// no second array of lines.
    @usableFromInline private(set) var requestLines: [ReserveLine]?
    public private(set) var requestTTL: Duration?
    public private(set) var requestCustomer: String?
    /// The placement strategy in force when it was made.
    public private(set) var strategy: PlacementStrategy

    public init(
        id: String, lines: [ReservationLine], status: ReservationStatus = .active, expiresAt: Timestamp?,
        customer: String?, createdAt: Timestamp, closedAt: Timestamp? = nil, endedByExpiry: Bool = false,
        fingerprint: ReserveFingerprint
    ) {
        self.init(
            id: id, lines: lines, status: status, expiresAt: expiresAt, customer: customer, createdAt: createdAt, closedAt: closedAt,
            endedByExpiry: endedByExpiry, requestLines: Self.ownLines(lines, are: fingerprint.lines) ? nil : fingerprint.lines,
            requestTTL: fingerprint.ttl, requestCustomer: fingerprint.customer, strategy: fingerprint.strategy)
    }

    /// A reservation whose request named exactly its own lines (variant, warehouse, quantity, in any
    /// order), with that request's TTL, customer and strategy: what a store that keeps no copy of the
    /// request's lines builds back.
    public init(
        id: String, lines: [ReservationLine], status: ReservationStatus, expiresAt: Timestamp?, customer: String?,
        createdAt: Timestamp, closedAt: Timestamp?, endedByExpiry: Bool, requestTTL: Duration?, requestCustomer: String?,
        strategy: PlacementStrategy
    ) {
        self.init(
            id: id, lines: lines, status: status, expiresAt: expiresAt, customer: customer, createdAt: createdAt, closedAt: closedAt,
            endedByExpiry: endedByExpiry, requestLines: nil, requestTTL: requestTTL, requestCustomer: requestCustomer, strategy: strategy)
    }

    private init(
        id: String, lines: [ReservationLine], status: ReservationStatus, expiresAt: Timestamp?, customer: String?,
        createdAt: Timestamp, closedAt: Timestamp?, endedByExpiry: Bool, requestLines: [ReserveLine]?, requestTTL: Duration?,
        requestCustomer: String?, strategy: PlacementStrategy
    ) {
        self.id = id
        self.lines = lines
        self.status = status
        self.expiresAt = expiresAt
        self.customer = customer
        self.createdAt = createdAt
        self.closedAt = closedAt
        // Only an expired or a fulfilled reservation can have ended by expiry, and an expired one always did.
        self.endedByExpiry = status == .expired || (status == .fulfilled && endedByExpiry)
        self.requestLines = requestLines
        self.requestTTL = requestTTL
        self.requestCustomer = requestCustomer
        self.strategy = strategy
    }

    /// The new reservation `request` makes at `now` with `lines`: active, expiring after its TTL, for
    /// its customer (the rules' one way to make one).
    @inlinable public init(new request: ReserveRequest, lines: [ReservationLine], fingerprint: ReserveFingerprint, at now: Timestamp) {
        self.init(
            id: request.id, lines: lines, expiresAt: Self.firstDeadline(createdAt: now, ttl: request.ttl), customer: request.customer,
            createdAt: now, fingerprint: fingerprint)
    }

    /// A reservation's first deadline: when its request's TTL runs out, counted from its making,
    /// however a confirmation or an EXTEND moved its expiry since (nil for a request without a TTL).
    /// A new reservation expires then.
    @inlinable public static func firstDeadline(createdAt: Timestamp, ttl: Duration?) -> Timestamp? {
        ttl.map { createdAt.advanced(by: $0) }
    }

    /// The request that created it, for telling a replay from a conflicting reuse of the id. Built on
    /// each read; `isRequested(by:)` compares without building it.
    public var fingerprint: ReserveFingerprint {
        get {
            ReserveFingerprint(
                lines: requestLines ?? ReserveFingerprint.canonical(lines.map { ReserveLine(variant: $0.variant, warehouse: $0.warehouse, quantity: $0.quantity) }),
                ttl: requestTTL, customer: requestCustomer, strategy: strategy)
        }
        set {
            requestTTL = newValue.ttl
            requestCustomer = newValue.customer
            strategy = newValue.strategy
            requestLines = Self.ownLines(lines, are: newValue.lines) ? nil : newValue.lines
        }
    }

    /// Whether the fingerprint's lines are the reservation's own lines (so it keeps no copy of them).
    public var fingerprintLinesAreOwnLines: Bool { requestLines == nil }

    /// Whether `fingerprint` is the one of the request that made this reservation: a replay.
    @inlinable public func isRequested(by fingerprint: ReserveFingerprint) -> Bool {
        guard fingerprint.ttl == requestTTL, fingerprint.customer == requestCustomer, fingerprint.strategy == strategy else { return false }
        if let requestLines {
            let asked = fingerprint.lines
            return Self.sameMultiset(requestLines.count, asked.count) { requestLines[$0] == asked[$1] }
        }
        return Self.ownLines(lines, are: fingerprint.lines)
    }

    /// Whether `requested` are the reservation's own lines (variant, warehouse, quantity) as a
    /// multiset: the same lines in any order.
    @inlinable static func ownLines(_ lines: [ReservationLine], are requested: [ReserveLine]) -> Bool {
        sameMultiset(lines.count, requested.count) { own, asked in
            lines[own].variant == requested[asked].variant && lines[own].warehouse == requested[asked].warehouse
                && lines[own].quantity == requested[asked].quantity
        }
    }

    /// Whether `count` lines and `askedCount` asked lines are the same multiset, `same(i, j)` saying
    /// whether line i is asked line j. In the same order it is one pass; otherwise each asked line is
    /// matched to a line not matched yet (a request has at most `Limits.linesPerReservationMax`
    /// lines, and most a handful: up to 64 are marked in a word, without an allocation).
    @inlinable static func sameMultiset(_ count: Int, _ askedCount: Int, _ same: (Int, Int) -> Bool) -> Bool {
        guard count == askedCount else { return false }
        var first = 0
        while first < count, same(first, first) { first += 1 }
        if first == count { return true }
        // Matched from the first difference on: own line `first + k` is marked at bit or place k.
        let rest = count - first
        var word: UInt64 = 0
        var marks = rest > 64 ? [Bool](repeating: false, count: rest) : []
        func isMarked(_ k: Int) -> Bool { rest > 64 ? marks[k] : word & (1 << UInt64(k)) != 0 }
        for asked in first..<count {
            var k = 0
            while k < rest && (isMarked(k) || !same(first + k, asked)) { k += 1 }
            if k == rest { return false }
            if rest > 64 { marks[k] = true } else { word |= 1 << UInt64(k) }
        }
        return true
    }

    public var isOpen: Bool { status.isOpen }
    public var remaining: Quantity { lines.reduce(.zero) { $0 + $1.remaining } }
    public var fulfilled: Quantity { lines.reduce(.zero) { $0 + $1.fulfilled } }
    /// Everything that was to ship has shipped: nothing remains and something was fulfilled.
    public var isFullyShipped: Bool { status == .fulfilled }

    /// The index of the line on `cell`, if the reservation has one.
    public func lineIndex(of cell: CellKey) -> Int? {
        lines.firstIndex { $0.variant == cell.variant && $0.warehouse == cell.warehouse }
    }

    /// Re-derives the status from the lines (SPEC §7.5) after they changed at `time`; `byExpiry`
    /// says whether the change was the engine's expiry.
    public mutating func settleStatus(at time: Timestamp, byExpiry: Bool = false) {
        let shipped = fulfilled.isPositive
        if remaining.isPositive {
            status = shipped ? .partiallyFulfilled : .active
            return
        }
        status = shipped ? .fulfilled : (byExpiry ? .expired : .released)
        endedByExpiry = byExpiry
        closedAt = time
        expiresAt = nil
    }
}

/// A reservation of one line that its request named (variant, warehouse, quantity, in its warehouse),
/// kept without an array for that line: what a new one-line reservation is made as, and what replies
/// carry it as, so that making one allocates nothing. `reservation` builds the general value, equal to
/// the one the general path makes.
public struct OneLineReservation: Hashable, Sendable {
    public var id: String
    public var line: ReservationLine
    public var status: ReservationStatus
    public var expiresAt: Timestamp?
    public var customer: String?
    public var createdAt: Timestamp
    public var closedAt: Timestamp?
    /// As `Reservation.endedByExpiry`.
    public var endedByExpiry: Bool
    /// The request's TTL; its customer is `customer`, its line `line`'s variant, warehouse and quantity.
    public var requestTTL: Duration?
    public var strategy: PlacementStrategy

    /// The new reservation `request` (of one line naming its warehouse) makes at `now`, its line as the
    /// hold left it (`held`), under `strategy`.
    @inlinable public init(new request: ReserveRequest, held: ReservationLine, strategy: PlacementStrategy, at now: Timestamp) {
        self.init(new: request.id, line: held, ttl: request.ttl, customer: request.customer, strategy: strategy, at: now)
    }

    /// The new reservation `id` of `line` made at `now` with `ttl`, for `customer`, under `strategy`
    /// (what a reservation record of the log carries).
    @inlinable public init(new id: String, line: ReservationLine, ttl: Duration?, customer: String?, strategy: PlacementStrategy, at now: Timestamp) {
        self.id = id
        self.line = line
        status = .active
        expiresAt = Reservation.firstDeadline(createdAt: now, ttl: ttl)
        self.customer = customer
        createdAt = now
        closedAt = nil
        endedByExpiry = false
        requestTTL = ttl
        self.strategy = strategy
    }

    /// The general value: `lines` is `[line]`, and the request's lines are its own.
    public var reservation: Reservation {
        Reservation(
            id: id, lines: [line], status: status, expiresAt: expiresAt, customer: customer, createdAt: createdAt, closedAt: closedAt,
            endedByExpiry: endedByExpiry, requestTTL: requestTTL, requestCustomer: customer, strategy: strategy)
    }

    public var cell: CellKey { line.cell }
}

/// What a new one-line reservation made as its request asked adds to the request: when it was made,
/// how its line was held (the part backordered, whether its cell counts it) and its strategy. With the
/// request it is the whole reservation (`reservation(of:)`), so an answer in a batch carries these
/// 24 bytes instead of the reservation's record (about 160 bytes, with every name of the request).
public struct NewOneLineFacts: Hashable, Sendable {
    public var createdAt: Timestamp
    public var backordered: Quantity
    public var tracked: Bool
    public var strategy: PlacementStrategy

    /// The facts of `r`, a new one-line reservation.
    @inlinable public init(_ r: borrowing OneLineReservation) {
        createdAt = r.createdAt
        backordered = r.line.backordered
        tracked = r.line.tracked
        strategy = r.strategy
    }

    /// The reservation `request` (of one line naming its warehouse, as it was made) made:
    /// `OneLineReservation(new:held:strategy:at:)` with its line as it was held.
    @inlinable public func reservation(of request: ReserveRequest) -> OneLineReservation {
        OneLineReservation(new: request, held: line(of: request), strategy: strategy, at: createdAt)
    }

    /// The line of the reservation `request` made, as it was held.
    @inlinable public func line(of request: ReserveRequest) -> ReservationLine {
        let line = request.lines[0]
        return ReservationLine(variant: line.variant, warehouse: line.warehouse, quantity: line.quantity, backordered: backordered, tracked: tracked)
    }

    /// The record of the reservation `command`, a RESERVE of one line naming its warehouse, made.
    @inlinable public func record(of command: Command) -> ReservationRecord {
        guard case .reserve(let request) = command else { preconditionFailure("a reservation's facts with another command") }
        return ReservationRecord(reservation(of: request))
    }
}

/// A reservation as replies report it, with `replayed` set on an idempotent replay. A new one-line
/// reservation is carried as it was made (`OneLineReservation`), so that its reply allocates nothing;
/// `reservation` builds the general value from it when asked.
public struct ReservationRecord: Hashable, Sendable {
    @usableFromInline enum Storage: Sendable {
        case whole(Reservation)
        case oneLine(OneLineReservation)
    }

    @usableFromInline var storage: Storage
    public var replayed: Bool

    public var reservation: Reservation {
        get {
            switch storage {
            case .whole(let r): r
            case .oneLine(let r): r.reservation
            }
        }
        set { storage = .whole(newValue) }
    }

    /// The reservation when it is carried without a line array; nil otherwise (read `reservation`).
    public var oneLine: OneLineReservation? {
        guard case .oneLine(let r) = storage else { return nil }
        return r
    }

    public init(_ reservation: Reservation, replayed: Bool = false) {
        self.storage = .whole(reservation)
        self.replayed = replayed
    }

    public init(_ reservation: OneLineReservation, replayed: Bool = false) {
        self.storage = .oneLine(reservation)
        self.replayed = replayed
    }

    /// Equal when they report the same reservation, however each carries it.
    public static func == (a: ReservationRecord, b: ReservationRecord) -> Bool {
        a.replayed == b.replayed && a.reservation == b.reservation
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(reservation)
        hasher.combine(replayed)
    }
}
