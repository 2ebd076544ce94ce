// The order lifecycle for an embedding order service: each status change of an order becomes the
// engine's own commands (processing → RESERVE, shipped → FULFILL, partial shipment → FULFILL of
// lines, cancelled → RELEASE, returned → RETURN). What it keeps true: a status change is idempotent
// per (order, change), because every command it issues carries a name derived only from the order id
// and the change (the reservation id, or a KEY), so a retry is recognised by the engine itself, across
// restarts, and does nothing twice. Lines of untracked products never reach the engine and are
// reported as skipped. The choices are written down in docs/DECISIONS.md, "Order lifecycle".

import StockpileCore

/// One line of an order, as the order service knows it.
public struct OrderLine: Hashable, Sendable {
    public var variant: String
    /// A warehouse code, or `*` to let the placement strategy choose when the order is processed.
    public var warehouse: String
    public var quantity: Quantity
    /// False for a placeholder product whose stock is not kept (a gift note, a service fee): the line
    /// is skipped by every status change and reported in `OrderInventoryResult.skipped`.
    public var isTracked: Bool

    public init(variant: String, warehouse: String = Identifiers.anyWarehouse, quantity: Quantity, isTracked: Bool = true) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
        self.isTracked = isTracked
    }
}

/// Units of one variant in a partial shipment, or a line or item left out as untracked.
public struct OrderItem: Hashable, Sendable {
    public var variant: String
    /// Nil: the warehouse the order's reservation holds the variant in (it must be just one).
    public var warehouse: String?
    public var quantity: Quantity

    public init(variant: String, warehouse: String? = nil, quantity: Quantity) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
    }
}

/// Units of one variant coming back from the customer.
public struct ReturnedItem: Hashable, Sendable {
    public var variant: String
    /// Nil: the warehouse the variant was reserved in (it must be just one, or the order must name one).
    public var warehouse: String?
    public var quantity: Quantity
    /// Back on the shelf (on_hand grows), or recorded as damaged (a ledger entry only).
    public var disposition: ReturnDisposition

    public init(variant: String, warehouse: String? = nil, quantity: Quantity, disposition: ReturnDisposition) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
        self.disposition = disposition
    }
}

/// A change of an order's status that moves stock. `processing`, `shipped` and `cancelled` happen once
/// per order; a partial shipment and a return name themselves (`shipmentID`, `returnID`: 1–64 bytes of
/// `[A-Za-z0-9._:-]`), since an order may have several.
public enum OrderStatusChange: Hashable, Sendable {
    /// Reserve every tracked line (all or none). The reservation does not expire.
    case processing
    /// Ship some units of some lines.
    case partiallyShipped(shipmentID: String, items: [OrderItem])
    /// Ship everything that remains reserved.
    case shipped
    /// Release everything that remains reserved (what has shipped stays shipped).
    case cancelled
    /// Take units back, each restocked or recorded as damaged.
    case returned(returnID: String, items: [ReturnedItem])
}

/// What a status change did. A retry of the same change answers the same result with `replayed` set.
public struct OrderInventoryResult: Hashable, Sendable {
    public var orderID: String
    /// The id of the order's reservation in the engine (`RESERVATION <id>` on the wire).
    public var reservationID: String
    /// The reservation after the change. Nil when the change did not touch it: the order has no tracked
    /// line, a cancel found nothing reserved, or the change was a return (returns change cells only).
    /// After `processing` a retry shows the reservation as it is now (the engine's replay of a
    /// reservation id); after the other changes, as that change left it.
    public var reservation: Reservation?
    /// RETURN only: each cell as the return left it, by variant, warehouse, then disposition.
    public var returns: [CellReceipt]
    /// Lines (or items of a partial shipment or return) of untracked products, left out.
    public var skipped: [OrderItem]
    /// True when the engine had already applied this change: nothing was done this time.
    public var replayed: Bool

    public init(
        orderID: String, reservationID: String, reservation: Reservation? = nil, returns: [CellReceipt] = [],
        skipped: [OrderItem] = [], replayed: Bool = false
    ) {
        self.orderID = orderID
        self.reservationID = reservationID
        self.reservation = reservation
        self.returns = returns
        self.skipped = skipped
        self.replayed = replayed
    }
}

/// Maps order status changes to inventory commands on an engine. A value type holding no state of its
/// own: everything it needs to recognise a retry lives in the engine (and its log).
///
/// ```swift
/// let orders = OrderLifecycle(engine: engine)
/// let lines = [OrderLine(variant: "SKU-1", quantity: 2), OrderLine(variant: "GIFT-NOTE", quantity: 1, isTracked: false)]
/// _ = await orders.apply(.processing, toOrder: "1001", lines: lines)
/// _ = await orders.apply(.partiallyShipped(shipmentID: "box-1", items: [OrderItem(variant: "SKU-1", quantity: 1)]), toOrder: "1001", lines: lines)
/// _ = await orders.apply(.shipped, toOrder: "1001", lines: lines)
/// ```
public struct OrderLifecycle: Sendable {
    public let engine: Engine
    /// Put before the order id to make its reservation id, so orders never collide with other holds
    /// (a cart id that happens to equal an order id).
    public let reservationPrefix: String
    /// How `*` lines are placed; nil uses the engine's default.
    public let strategy: PlacementStrategy?

    /// Longest change id (a shipment or return id): leaves room for the order id within a KEY's 128 bytes.
    public static let changeIDByteCountMax = 64

    public init(engine: Engine, reservationPrefix: String = "order:", strategy: PlacementStrategy? = nil) {
        self.engine = engine
        self.reservationPrefix = reservationPrefix
        self.strategy = strategy
    }

    /// The engine's reservation id for an order.
    public func reservationID(forOrder orderID: String) -> String { reservationPrefix + orderID }

    /// The KEY of one command of a change: `<reservation id>/<change>/<step>`. A change id cannot hold
    /// `/` and a step is `all` or digits, so reading from the right splits any key one way only: two
    /// (order, change, step) triples never share a key.
    func key(orderID: String, change: String, step: String) -> String {
        "\(reservationID(forOrder: orderID))/\(change)/\(step)"
    }

    /// Applies `change` to the order `orderID` whose lines are `lines` (all of them, tracked or not: the
    /// tracked ones are reserved, the others reported as skipped).
    ///
    /// Refusals are the engine's (`INSUFFICIENT` naming the line, `CLOSED` for a shipment after a
    /// cancel, `CONFLICT` when the order id was processed with other lines, …), and `INVALID` for a
    /// shipment or return of more than remains or was shipped, checked before anything is done. A change
    /// of several cells runs as one command per cell; should one be refused midway (a concurrent change,
    /// a physical loss), the refusal says how many were applied, and a retry of the same change
    /// completes it. Cost: one engine command per cell touched, plus one reservation read for a partial
    /// shipment or a return.
    public func apply(
        _ change: OrderStatusChange, toOrder orderID: String, lines: [OrderLine], customer: String? = nil, actor: String = ""
    ) async -> Outcome<OrderInventoryResult> {
        let reservationID = reservationID(forOrder: orderID)
        guard Identifiers.isValidReservationID(reservationID) else {
            return .refused(.invalid("order id must be 1-\(Limits.reservationIDByteCountMax - reservationPrefix.utf8.count) bytes of ASCII 0x21-0x7E"))
        }
        switch change {
        case .partiallyShipped(let id, let items):
            let quantities = items.map { ($0.variant, $0.quantity) }
            if let refusal = checkChangeID(id, "shipment id") ?? checkItems(quantities, "shipped") { return .refused(refusal) }
        case .returned(let id, let items):
            let quantities = items.map { ($0.variant, $0.quantity) }
            if let refusal = checkChangeID(id, "return id") ?? checkItems(quantities, "returned") { return .refused(refusal) }
        case .processing, .shipped, .cancelled: break
        }
        if let refusal = checkKeyLength(orderID: orderID, change: change) { return .refused(refusal) }
        var result = OrderInventoryResult(orderID: orderID, reservationID: reservationID)
        let tracked = lines.filter(\.isTracked)
        switch change {
        case .processing, .shipped, .cancelled:
            result.skipped = lines.filter { !$0.isTracked }.map { OrderItem(variant: $0.variant, warehouse: $0.warehouse, quantity: $0.quantity) }
            // An order of untracked products only holds nothing: there is nothing to ask the engine.
            guard !tracked.isEmpty else { return .ok(result) }
            return await applyToWholeOrder(change, orderID: orderID, tracked: tracked, customer: customer, actor: actor, result: result)
        case .partiallyShipped(let shipmentID, let items):
            let (kept, skipped) = split(items, by: \.variant, lines: lines)
            result.skipped = skipped
            guard !kept.isEmpty else { return .ok(result) }
            return await ship(kept, shipmentID: shipmentID, orderID: orderID, actor: actor, result: result)
        case .returned(let returnID, let items):
            let (kept, skipped) = split(items, by: \.variant, lines: lines)
            result.skipped = skipped.map { OrderItem(variant: $0.variant, warehouse: $0.warehouse, quantity: $0.quantity) }
            guard !kept.isEmpty else { return .ok(result) }
            return await takeBack(kept, returnID: returnID, orderID: orderID, lines: tracked, actor: actor, result: result)
        }
    }

    // MARK: Processing, shipped, cancelled: one command each

    private func applyToWholeOrder(
        _ change: OrderStatusChange, orderID: String, tracked: [OrderLine], customer: String?, actor: String, result: OrderInventoryResult
    ) async -> Outcome<OrderInventoryResult> {
        var result = result
        let id = result.reservationID
        let outcome: Outcome<ReservationRecord>
        switch change {
        case .processing:
            let request = ReserveRequest(
                id: id, lines: tracked.map { ReserveLine(variant: $0.variant, warehouse: $0.warehouse, quantity: $0.quantity) },
                ttl: nil, customer: customer, strategy: strategy)
            outcome = await engine.reserve(request, actor: actor)
        case .shipped:
            outcome = await engine.fulfill(id, key: key(orderID: orderID, change: "shipped", step: "all"), actor: actor)
            if case .refused(let r) = outcome, r.code == .notFound {
                return .refused(Refusal(.notFound, "order \(orderID) has nothing reserved: apply processing before shipping"))
            }
        case .cancelled:
            outcome = await engine.release(id, reason: .cancelled, key: key(orderID: orderID, change: "cancelled", step: "all"), actor: actor)
            // Cancelling an order that holds nothing leaves nothing held: that is what was asked.
            if case .refused(let r) = outcome, r.code == .notFound { return .ok(result) }
        case .partiallyShipped, .returned:
            preconditionFailure("\(change) is not a whole-order change")
        }
        switch outcome {
        case .refused(let r): return .refused(r)
        case .ok(let record):
            result.reservation = record.reservation
            result.replayed = record.replayed
            return .ok(result)
        }
    }

    // MARK: Partial shipments

    private func ship(
        _ items: [OrderItem], shipmentID: String, orderID: String, actor: String, result: OrderInventoryResult
    ) async -> Outcome<OrderInventoryResult> {
        var result = result
        let id = result.reservationID
        guard case .ok(let record) = await engine.reservation(id) else {
            return .refused(Refusal(.notFound, "order \(orderID) has nothing reserved: apply processing before shipping"))
        }
        let reservation = record.reservation
        // Units per cell, merged, in cell order: the plan depends only on the request and on where the
        // reservation's lines are (which never changes), so a retry plans the very same commands.
        var perCell: [CellKey: Quantity] = [:]
        for item in items {
            switch resolveWarehouse(item.variant, item.warehouse, in: reservation) {
            case .refused(let r): return .refused(r)
            case .ok(let code): perCell[CellKey(variant: item.variant, warehouse: code), default: .zero] += item.quantity
            }
        }
        let cells = perCell.keys.sorted()
        let steps = cells.enumerated().map { i, cell in
            Command.fulfill(
                id: id, line: LineSelector(variant: cell.variant, warehouse: cell.warehouse, quantity: perCell[cell]!),
                key: key(orderID: orderID, change: shipmentID, step: String(i)))
        }
        // A fresh change is checked whole before its first command, so a shipment of more than remains
        // does nothing at all. A retry (some step already used its key) skips the check: the figures
        // now include what the first attempt shipped, and the engine replays those steps anyway.
        if await !anyStepApplied(steps) {
            for cell in cells {
                let line = reservation.lines[reservation.lineIndex(of: cell)!]
                if reservation.isOpen && perCell[cell]! > line.remaining {
                    return .refused(.invalid("shipment \(shipmentID) of \(cell.variant) \(cell.warehouse): \(perCell[cell]!) is more than the \(line.remaining) that remain"))
                }
            }
        }
        var replayed = true
        for (i, step) in steps.enumerated() {
            switch await engine.execute(step, actor: actor) {
            case .refused(let r): return .refused(midway(r, applied: i, of: steps.count, change: shipmentID))
            case .ok(let reply):
                guard case .reservation(let record) = reply else { preconditionFailure("FULFILL answered \(reply)") }
                result.reservation = record.reservation
                replayed = replayed && record.replayed
            }
        }
        result.replayed = replayed
        return .ok(result)
    }

    // MARK: Returns

    private func takeBack(
        _ items: [ReturnedItem], returnID: String, orderID: String, lines: [OrderLine], actor: String, result: OrderInventoryResult
    ) async -> Outcome<OrderInventoryResult> {
        var result = result
        // The reservation says where each variant was held and how much shipped. After the retention
        // window the engine forgets it; a return then needs its warehouse from the request or the order.
        let reservation = await engine.reservation(result.reservationID).value?.reservation
        struct Part: Hashable, Comparable {
            var cell: CellKey
            var disposition: ReturnDisposition
            static func < (a: Part, b: Part) -> Bool {
                a.cell != b.cell ? a.cell < b.cell : a.disposition.rawValue < b.disposition.rawValue
            }
        }
        var perPart: [Part: Quantity] = [:]
        for item in items {
            let code: String
            switch resolveReturnWarehouse(item.variant, item.warehouse, reservation: reservation, orderLines: lines) {
            case .refused(let r): return .refused(r)
            case .ok(let c): code = c
            }
            perPart[Part(cell: CellKey(variant: item.variant, warehouse: code), disposition: item.disposition), default: .zero] += item.quantity
        }
        let parts = perPart.keys.sorted()
        // A warehouse that does not exist would be refused by its own step, perhaps after others ran.
        let known = Set(engine.warehouses().map(\.code))
        if let unknown = parts.first(where: { !known.contains($0.cell.warehouse) }) {
            return .refused(.warehouseNotFound(unknown.cell.warehouse))
        }
        let reference = "order \(orderID) return \(returnID)"
        let steps = parts.enumerated().map { i, part in
            Command.returnStock(
                variant: part.cell.variant, warehouse: part.cell.warehouse, quantity: perPart[part]!, disposition: part.disposition,
                reference: reference, key: key(orderID: orderID, change: returnID, step: String(i)))
        }
        // More back than went out is refused whole, judged on this return alone (the engine keeps no
        // tally of earlier returns; see DECISIONS). Skipped on a retry, as for shipments.
        // Judged per variant, not per cell: goods may come back to another warehouse than they left.
        if let reservation, await !anyStepApplied(steps) {
            var perVariant: [String: Quantity] = [:]
            for part in parts { perVariant[part.cell.variant, default: .zero] += perPart[part]! }
            for (variant, quantity) in perVariant.sorted(by: { $0.key < $1.key }) {
                let shipped = reservation.lines.filter { $0.variant == variant }.reduce(Quantity.zero) { $0 + $1.fulfilled }
                if quantity > shipped {
                    return .refused(.invalid("return \(returnID) of \(variant): \(quantity) is more than the \(shipped) shipped"))
                }
            }
        }
        var replayed = true
        for (i, step) in steps.enumerated() {
            switch await engine.execute(step, actor: actor) {
            case .refused(let r): return .refused(midway(r, applied: i, of: steps.count, change: returnID))
            case .ok(let reply):
                guard case .cell(var receipt) = reply else { preconditionFailure("RETURN answered \(reply)") }
                replayed = replayed && receipt.replayed
                // The result says once, at the top, whether it was a replay; the receipts stay equal.
                receipt.replayed = false
                result.returns.append(receipt)
            }
        }
        result.replayed = replayed
        return .ok(result)
    }

    // MARK: Helpers

    private func checkChangeID(_ id: String, _ what: String) -> Refusal? {
        let utf8 = id.utf8
        let valid = !utf8.isEmpty && utf8.count <= Self.changeIDByteCountMax && utf8.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
        guard valid else { return .invalid("\(what) must be 1-\(Self.changeIDByteCountMax) bytes of [A-Za-z0-9._:-]") }
        return nil
    }

    /// At least one item, each of a positive quantity; at most as many as a reservation has lines.
    private func checkItems(_ items: [(variant: String, quantity: Quantity)], _ what: String) -> Refusal? {
        guard !items.isEmpty else { return .invalid("a change needs at least one item") }
        guard items.count <= Limits.linesPerReservationMax else { return .limit("a change may have at most \(Limits.linesPerReservationMax) items") }
        if let bad = items.first(where: { !$0.quantity.isPositive }) { return .invalid("\(what) quantity of \(bad.variant) must be positive") }
        // Bounded like any quantity, which also keeps the sums of merged items far from overflow.
        if items.contains(where: { $0.quantity > Limits.quantityMax }) { return .limit("quantity may not exceed \(Limits.quantityMax)") }
        return nil
    }

    /// Whether every KEY the change may use fits the 128 bytes of a KEY. A change of several cells has
    /// at most `Limits.linesPerReservationMax` steps (three digits), as a reservation has lines.
    private func checkKeyLength(orderID: String, change: OrderStatusChange) -> Refusal? {
        let longest: String
        switch change {
        case .processing: return nil
        case .shipped: longest = key(orderID: orderID, change: "shipped", step: "all")
        case .cancelled: longest = key(orderID: orderID, change: "cancelled", step: "all")
        case .partiallyShipped(let id, _), .returned(let id, _): longest = key(orderID: orderID, change: id, step: "999")
        }
        guard Identifiers.isValidReservationID(longest) else {
            return .invalid("order id and change id are too long: their KEY \(longest) exceeds \(Limits.reservationIDByteCountMax) bytes")
        }
        return nil
    }

    /// Splits items into those of tracked variants and those of untracked ones. A variant is untracked
    /// when the order has lines of it and none of them is tracked; a variant not on the order at all is
    /// kept, so the engine can say it is not reserved.
    private func split<Item>(_ items: [Item], by variant: (Item) -> String, lines: [OrderLine]) -> (kept: [Item], skipped: [Item]) {
        var kept: [Item] = []
        var skipped: [Item] = []
        for item in items {
            let v = variant(item)
            let onOrder = lines.filter { $0.variant == v }
            if !onOrder.isEmpty && onOrder.allSatisfy({ !$0.isTracked }) { skipped.append(item) } else { kept.append(item) }
        }
        return (kept, skipped)
    }

    /// The warehouse of `variant`'s units: the one named (normalised), or the only warehouse the
    /// reservation holds the variant in.
    private func resolveWarehouse(_ variant: String, _ named: String?, in reservation: Reservation) -> Outcome<String> {
        let held = reservation.lines.filter { $0.variant == variant }.map(\.warehouse)
        if let named {
            guard let code = Identifiers.normalizedWarehouse(named) else { return .refused(.invalid("invalid warehouse code \(named)")) }
            guard held.contains(code) else {
                return .refused(Refusal(.notFound, "order reservation \(reservation.id) holds no \(variant) in \(code)"))
            }
            return .ok(code)
        }
        switch held.count {
        case 0: return .refused(Refusal(.notFound, "order reservation \(reservation.id) holds no \(variant)"))
        case 1: return .ok(held[0])
        default: return .refused(.invalid("\(variant) is held in \(held.joined(separator: " and ")): name the warehouse"))
        }
    }

    /// The warehouse a returned variant goes back to: the one named (any warehouse: a returns centre
    /// will do, and the engine checks that it exists), else the only warehouse the reservation holds the
    /// variant in, else, once the reservation is forgotten, the only one the order's lines name for it.
    private func resolveReturnWarehouse(_ variant: String, _ named: String?, reservation: Reservation?, orderLines: [OrderLine]) -> Outcome<String> {
        if let named {
            guard let code = Identifiers.normalizedWarehouse(named) else { return .refused(.invalid("invalid warehouse code \(named)")) }
            return .ok(code)
        }
        if let reservation { return resolveWarehouse(variant, nil, in: reservation) }
        let codes = Set(orderLines.filter { $0.variant == variant && $0.warehouse != Identifiers.anyWarehouse }
            .compactMap { Identifiers.normalizedWarehouse($0.warehouse) })
        guard codes.count == 1, let code = codes.first else {
            return .refused(.invalid("the reservation is no longer kept and the order does not say where \(variant) came from: name the warehouse"))
        }
        return .ok(code)
    }

    /// True when some step of the change has already used its KEY: this call is a retry.
    private func anyStepApplied(_ steps: [Command]) async -> Bool {
        for step in steps {
            if let key = step.key, await engine.keys.lookup(key) != nil { return true }
        }
        return false
    }

    /// A refusal of step `applied` (0-based) of a change, saying what already happened when it was not
    /// the first step.
    private func midway(_ refusal: Refusal, applied: Int, of count: Int, change: String) -> Refusal {
        guard applied > 0 else { return refusal }
        var r = refusal
        r.message = "\(refusal.message) (after \(applied) of \(count) cells of \(change) were applied; retry the same change to complete it)"
        return r
    }
}
