// Where a flash sale's operations go: the engine in this process, or a server over TCP. The scenario
// speaks only these two protocols, so one buyer script drives both and their reports compare.
// Business results are `Outcome`s, as the engine gives them (a refusal parsed from `-CODE message`
// over the wire); only a failure to talk to the target throws, and then what happened to the
// request is unknown.

import Stockpile

/// The warehouse every hot item lives in.
let saleWarehouse = "MAIN"

public protocol SaleTarget: Sendable {
    /// For the report's header: what was driven.
    var description: String { get }
    /// True when a channel's calls block their thread (a socket): the scenario then gives every
    /// channel a thread of its own, since a blocked thread of the cooperative pool stalls every task.
    var channelsBlock: Bool { get }
    /// A channel for one worker (over TCP, a connection of its own).
    func openChannel() throws(SaleTargetError) -> any SaleChannel
}

/// One worker's way to the target: one request at a time, in order.
public protocol SaleChannel: Sendable {
    func reserve(id: String, lines: [SaleLine], ttl: Duration) async throws(SaleTargetError) -> Outcome<HoldFigures>
    func confirm(id: String) async throws(SaleTargetError) -> Outcome<HoldFigures>
    /// Ships everything that remains, or `line.quantity` of one line.
    func fulfill(id: String, line: SaleLine?) async throws(SaleTargetError) -> Outcome<HoldFigures>
    /// Releases everything that remains (a cancelled cart).
    func release(id: String) async throws(SaleTargetError) -> Outcome<HoldFigures>
    /// A delivery: `ADJUST item MAIN units REASON received`.
    func restock(item: String, units: Quantity) async throws(SaleTargetError) -> Outcome<ItemFigures>
    /// The reservations, in order (`RESERVATION id` each): for the audit at the end.
    func holds(_ ids: [String]) async throws(SaleTargetError) -> [Outcome<HoldFigures>]
    /// The items' cells in MAIN, in order (`STOCK item MAIN` each).
    func items(_ names: [String]) async throws(SaleTargetError) -> [ItemFigures]
    /// The engine's unit counters (STATS): engine-wide, so they match the sale only when nothing
    /// else ran meanwhile.
    func counters() async throws(SaleTargetError) -> UnitCounters
}

/// A line of a cart: an item of warehouse MAIN and a quantity.
public struct SaleLine: Sendable, Hashable {
    public var item: String
    public var quantity: Quantity
    public init(item: String, quantity: Quantity) {
        self.item = item
        self.quantity = quantity
    }
}

/// A reservation as a reply reports it.
public struct HoldFigures: Sendable, Hashable {
    public struct Line: Sendable, Hashable {
        public var item: String
        public var quantity: Quantity
        public var fulfilled: Quantity
        public var released: Quantity
        public var remaining: Quantity { quantity - fulfilled - released }
        public init(item: String, quantity: Quantity, fulfilled: Quantity, released: Quantity) {
            self.item = item
            self.quantity = quantity
            self.fulfilled = fulfilled
            self.released = released
        }
    }

    public var status: ReservationStatus
    public var lines: [Line]
    public init(status: ReservationStatus, lines: [Line]) {
        self.status = status
        self.lines = lines
    }
}

/// A cell's figures, as STOCK or an ADJUST reply reports them.
public struct ItemFigures: Sendable, Hashable {
    public var onHand: Quantity
    public var reserved: Quantity
    public var available: Quantity { onHand - reserved }
    public init(onHand: Quantity, reserved: Quantity) {
        self.onHand = onHand
        self.reserved = reserved
    }
}

/// The engine's unit counters of SPEC §6 (STATS `units_*`).
public struct UnitCounters: Sendable, Hashable {
    public var reserved = Quantity.zero
    public var fulfilled = Quantity.zero
    public var released = Quantity.zero
    public var expired = Quantity.zero
    public init() {}

    static func - (a: UnitCounters, b: UnitCounters) -> UnitCounters {
        var d = UnitCounters()
        d.reserved = a.reserved - b.reserved
        d.fulfilled = a.fulfilled - b.fulfilled
        d.released = a.released - b.released
        d.expired = a.expired - b.expired
        return d
    }
}

/// The target could not be reached or answered something that is not a reply to the request; the
/// text says what, and what to check.
public struct SaleTargetError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
