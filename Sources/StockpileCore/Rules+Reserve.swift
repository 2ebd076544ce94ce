// The rules of RESERVE (SPEC §2, §7.3, §7.4, §7.7, §7.8): lines naming one cell are merged (demand
// summed), warehouses must exist and be active, explicit lines are checked against available stock,
// then `*` lines are placed by the strategy on what the explicit lines left. Nothing is produced until
// every line is met, so a refusal leaves no trace.

extension Rules {
    @inlinable public static func reserve(_ request: ReserveRequest, in view: some StockView, now: Timestamp, actor: String, settings: RuleSettings) -> Decision {
        let strategy = request.strategy ?? settings.defaultStrategy
        let fingerprint = ReserveFingerprint(request, strategy: strategy)
        if let existing = view.reservation(request.id) {
            guard existing.isRequested(by: fingerprint) else {
                return .refused(Refusal(.conflict, "reservation \(request.id) exists with a different request"))
            }
            return .unchanged(.reservation(ReservationRecord(existing, replayed: true)))
        }
        if request.lines.count == 1 && request.lines[0].warehouse != Identifiers.anyWarehouse {
            return reserveOneLine(request, fingerprint: fingerprint, in: view, now: now, actor: actor)
        }

        // Merge: explicit lines per cell, `*` lines per variant, each in order of first appearance.
        var demand = OrderedQuantities<CellKey>(capacity: request.lines.count)
        var unplaced = OrderedQuantities<String>(capacity: 0)
        for line in request.lines {
            if line.warehouse == Identifiers.anyWarehouse {
                unplaced.add(line.quantity, to: line.variant)
            } else {
                demand.add(line.quantity, to: CellKey(variant: line.variant, warehouse: line.warehouse))
            }
        }

        // Warehouses: every line's must exist (NOTFOUND first), then be active.
        var inactive: String?
        for (cell, _) in demand.items {
            guard let w = view.warehouse(cell.warehouse) else { return .refused(.warehouseNotFound(cell.warehouse)) }
            if !w.active && inactive == nil { inactive = w.code }
        }
        if let inactive { return .refused(Refusal(.inactive, "warehouse \(inactive) is inactive")) }

        // Explicit lines: available must cover the summed demand, unless the variant may go below zero.
        // A refusal reports available as STOCK shows it, negative for a cell in shortfall (SPEC §7.8):
        // the caller sees the same figure from both, and how deep the shortfall is.
        // One collection of both figures per cell, the first kept inline: a one-line request allocates
        // nothing for them.
        var read = InlineFirstArray<(policy: VariantPolicy, state: CellState)>()
        read.reserveCapacity(demand.items.count)
        for (cell, quantity) in demand.items {
            let policy = view.policy(of: cell.variant)
            let state = view.cellState(cell)
            if !policy.unlimited && !policy.backorder && state.available < quantity {
                return .refused(.insufficient(variant: cell.variant, warehouse: cell.warehouse, available: state.available, requested: quantity))
            }
            read.append((policy, state))
        }

        if !unplaced.items.isEmpty {
            let candidates = view.warehousesInPlacementOrder.filter(\.active)
            for (variant, quantity) in unplaced.items {
                if let refusal = place(variant, quantity, strategy: strategy, among: candidates, demand: &demand, in: view) {
                    return .refused(refusal)
                }
            }
            // Placement may have added cells; read the figures of those.
            for (cell, _) in demand.items.dropFirst(read.count) {
                read.append((view.policy(of: cell.variant), view.cellState(cell)))
            }
        }

        var lines: [ReservationLine] = []
        var entries: [LedgerEntry] = []
        lines.reserveCapacity(demand.items.count)
        entries.reserveCapacity(demand.items.count)
        for (i, (cell, quantity)) in demand.items.enumerated() {
            let (policy, before) = read[i]
            guard let (line, entry) = held(quantity, of: cell, before: before, policy: policy, now: now, actor: actor, reservation: request.id) else {
                return .refused(.limit("reserved may not exceed \(Limits.cellQuantityMax)"))
            }
            lines.append(line)
            entries.append(entry)
        }
        let reservation = Reservation(new: request, lines: lines, fingerprint: fingerprint, at: now)
        return .commit(Commit(time: now, entries: entries, reservation: reservation, replyShape: .reservation))
    }

    /// A new reservation of one line naming its warehouse, the most common request: what the general
    /// path decides for it (nothing to merge, nothing to place), in the same order of checks and with
    /// the same refusals, without its collections.
    @inlinable static func reserveOneLine(
        _ request: ReserveRequest, fingerprint: ReserveFingerprint, in view: some StockView, now: Timestamp, actor: String
    ) -> Decision {
        let line = request.lines[0]
        let cell = CellKey(variant: line.variant, warehouse: line.warehouse)
        let before = view.cellState(cell)
        switch holdOneLine(line, before: before, in: view) {
        case .refused(let refusal):
            return .refused(refusal)
        case .held(let held, let after, _):
            let entry = cellEntry(.reserve, cell, before: before, after: after, now: now, actor: actor, reservation: request.id)
            let reservation = Reservation(new: request, lines: [held], fingerprint: fingerprint, at: now)
            return .commit(Commit(time: now, entries: [entry], reservation: reservation, replyShape: .reservation))
        }
    }

    /// A new reservation whose lines name distinct cells, each with its warehouse: what `reserve`
    /// decides for it (nothing to merge, nothing to place), in the same order of checks and with the
    /// same refusals, its line and entry lists built in `lines` and `entries` (empty, with room for
    /// every line) and its `fingerprint` taken by the caller, its lines in any order (they are a
    /// multiset: the request's own order needs no sorted copy). A caller that holds shards to decide
    /// makes those before it holds them: their allocations do not lengthen the hold. The view has no
    /// reservation under the request's id.
    @inlinable public static func reserveDistinctCells(
        _ request: ReserveRequest, fingerprint: ReserveFingerprint, in view: some StockView, now: Timestamp, actor: String,
        lines: consuming [ReservationLine], entries: consuming [LedgerEntry]
    ) -> Decision {
        assert(view.reservation(request.id) == nil, "a new reservation")
        assert(lines.isEmpty && entries.isEmpty, "empty lists to fill")
        let refusal = holdDistinctCells(request, in: view) { _, cell, line, before, after in
            lines.append(line)
            entries.append(cellEntry(.reserve, cell, before: before, after: after, now: now, actor: actor, reservation: request.id))
        }
        if let refusal { return .refused(refusal) }
        let reservation = Reservation(new: request, lines: lines, fingerprint: fingerprint, at: now)
        return .commit(Commit(time: now, entries: entries, reservation: reservation, replyShape: .reservation))
    }

    /// The checks and holds of a new reservation whose lines name distinct cells, each with its
    /// warehouse, in the order `reserve` makes them: every line's warehouse exists (NOTFOUND first),
    /// then every one is active; then, in one pass that reads each line's policy and figures once,
    /// available covers each line unless its variant may go below zero, and each line is held. A line
    /// over the limit of reserved is refused only once no line is short, as the general rules check
    /// every line's stock first. Hands `held` each line held, in the lines' order: its index, cell,
    /// reservation line and the cell's figures before and after the hold. Returns the refusal, or nil
    /// when every line is held (lines handed over before a refusal are the caller's to drop). For
    /// `reserveDistinctCells`, which makes the lines' entries and the commit, and for an engine that
    /// keeps the hold from its figures without either.
    @inlinable public static func holdDistinctCells(
        _ request: ReserveRequest, in view: some StockView, held: (Int, CellKey, ReservationLine, CellState, CellState) -> Void
    ) -> Refusal? {
        var inactive: String?
        for line in request.lines {
            assert(line.warehouse != Identifiers.anyWarehouse, "every line names its warehouse")
            guard let w = view.warehouse(line.warehouse) else { return .warehouseNotFound(line.warehouse) }
            if !w.active && inactive == nil { inactive = w.code }
        }
        if let inactive { return Refusal(.inactive, "warehouse \(inactive) is inactive") }
        var overLimit = false
        for (i, line) in request.lines.enumerated() {
            let cell = CellKey(variant: line.variant, warehouse: line.warehouse)
            let policy = view.policy(of: line.variant)
            let before = view.cellState(cell)
            if !policy.unlimited && !policy.backorder && before.available < line.quantity {
                return .insufficient(variant: line.variant, warehouse: line.warehouse, available: before.available, requested: line.quantity)
            }
            guard !overLimit, let (reservationLine, after) = heldLine(line.quantity, variant: line.variant, warehouse: line.warehouse, before: before, policy: policy)
            else {
                overLimit = true
                continue
            }
            held(i, cell, reservationLine, before, after)
        }
        return overLimit ? .limit("reserved may not exceed \(Limits.cellQuantityMax)") : nil
    }

    /// What holding a new reservation's one line naming its warehouse comes to, its cell's figures being
    /// `before`: the reservation's line and the cell's figures after it (its ledger entry goes from
    /// `before` to them: `cellEntry(.reserve, …)`), with the variant's policy; or the refusal.
    public enum OneLineHold {
        case held(ReservationLine, after: CellState, VariantPolicy)
        case refused(Refusal)
    }

    /// The checks and the hold of a new reservation of one line naming its warehouse (`line`), in the
    /// order the general path makes them: the warehouse
    /// exists, it is active, available covers the quantity unless the variant may go below zero, and
    /// reserved stays within its limit. `before` is the cell's figures (`.empty` for a cell not seen).
    /// For `reserveOneLine` and for an engine that commits the hold without building a commit.
    @inlinable public static func holdOneLine(_ line: ReserveLine, before: CellState, in view: some StockView) -> OneLineHold {
        guard let warehouse = view.warehouse(line.warehouse) else { return .refused(.warehouseNotFound(line.warehouse)) }
        guard warehouse.active else { return .refused(Refusal(.inactive, "warehouse \(warehouse.code) is inactive")) }
        let quantity = line.quantity
        let policy = view.policy(of: line.variant)
        if !policy.unlimited && !policy.backorder && before.available < quantity {
            return .refused(.insufficient(variant: line.variant, warehouse: line.warehouse, available: before.available, requested: quantity))
        }
        guard let (held, after) = heldLine(quantity, variant: line.variant, warehouse: line.warehouse, before: before, policy: policy) else {
            return .refused(.limit("reserved may not exceed \(Limits.cellQuantityMax)"))
        }
        return .held(held, after: after, policy)
    }

    /// The line and ledger entry of holding `quantity` of `cell`, whose figures are `before`: reserved
    /// grows unless the variant is unlimited, and what available does not cover is backordered when
    /// the variant allows it. Nil when reserved would pass its limit.
    @inlinable static func held(
        _ quantity: Quantity, of cell: CellKey, before: CellState, policy: VariantPolicy, now: Timestamp, actor: String, reservation: String
    ) -> (ReservationLine, LedgerEntry)? {
        guard let (line, after) = heldLine(quantity, variant: cell.variant, warehouse: cell.warehouse, before: before, policy: policy) else { return nil }
        return (line, cellEntry(.reserve, cell, before: before, after: after, now: now, actor: actor, reservation: reservation))
    }

    /// `held` without the ledger entry: the line, and the cell's figures after the hold.
    @inlinable static func heldLine(
        _ quantity: Quantity, variant: String, warehouse: String, before: CellState, policy: VariantPolicy
    ) -> (ReservationLine, CellState)? {
        var after = before
        var backordered = Quantity.zero
        if !policy.unlimited {
            after.reserved += quantity
            guard after.reserved <= Limits.cellQuantityMax else { return nil }
            if policy.backorder { backordered = (quantity - before.available.clampedAtZero).clampedAtZero }
        }
        return (ReservationLine(variant: variant, warehouse: warehouse, quantity: quantity, backordered: backordered, tracked: !policy.unlimited), after)
    }

    /// Places one `*` line into `demand`, or says why it cannot be placed. `candidates` are the active
    /// warehouses in placement order; what a warehouse can take is its available stock less the demand
    /// this request already puts on it, and never less than zero. A refusal reports the total over the
    /// candidates of available less that demand without the floor: what STOCK shows for them, less what
    /// the request's own explicit lines take (SPEC §7.8), so a warehouse in shortfall lowers it.
    @inlinable static func place(
        _ variant: String, _ quantity: Quantity, strategy: PlacementStrategy, among candidates: [Warehouse],
        demand: inout OrderedQuantities<CellKey>, in view: some StockView
    ) -> Refusal? {
        guard let first = candidates.first else {
            return .insufficient(variant: variant, warehouse: Identifiers.anyWarehouse, available: .zero, requested: quantity)
        }
        let policy = view.policy(of: variant)
        func cell(_ w: Warehouse) -> CellKey { CellKey(variant: variant, warehouse: w.code) }
        if policy.unlimited {
            demand.add(quantity, to: cell(first))
            return nil
        }
        var free: [Quantity] = []
        free.reserveCapacity(candidates.count)
        var totalFree = Quantity.zero
        var totalAvailable = Quantity.zero
        for w in candidates {
            let left = view.cellState(cell(w)).available - demand[cell(w)]
            free.append(left.clampedAtZero)
            totalFree = totalFree.addingSaturating(left.clampedAtZero)
            totalAvailable = totalAvailable.addingSaturating(left)
        }

        switch strategy {
        case .priority:
            if let i = free.firstIndex(where: { $0 >= quantity }) {
                demand.add(quantity, to: cell(candidates[i]))
                return nil
            }
        case .most:
            // Candidates are in priority-then-code order, so the first maximum wins ties as SPEC §7.7 asks.
            var best = 0
            for i in free.indices where free[i] > free[best] { best = i }
            if free[best] >= quantity {
                demand.add(quantity, to: cell(candidates[best]))
                return nil
            }
        case .split:
            if totalFree >= quantity || policy.backorder {
                var left = quantity
                for i in candidates.indices where left.isPositive && free[i].isPositive {
                    let take = min(free[i], left)
                    demand.add(take, to: cell(candidates[i]))
                    left -= take
                }
                if left.isPositive { demand.add(left, to: cell(first)) }
                return nil
            }
        }
        if policy.backorder {
            demand.add(quantity, to: cell(first))
            return nil
        }
        return .insufficient(variant: variant, warehouse: Identifiers.anyWarehouse, available: totalAvailable, requested: quantity)
    }
}

/// Quantities summed per key, remembering the order in which keys first appeared. Requests have few
/// lines, so keys are found by a linear scan until there are enough of them for a table to pay.
@usableFromInline
struct OrderedQuantities<Key: Hashable> {
    /// The first key inline: a request of one line allocates nothing here.
    @usableFromInline var items = InlineFirstArray<(Key, Quantity)>()
    @usableFromInline var index: [Key: Int]? = nil
    @usableFromInline static var linearCountMax: Int { 16 }

    @inlinable init(capacity: Int) { items.reserveCapacity(capacity) }

    @inlinable func position(of key: Key) -> Int? {
        if let index { return index[key] }
        return items.firstIndex { $0.0 == key }
    }

    @inlinable mutating func add(_ quantity: Quantity, to key: Key) {
        if let i = position(of: key) {
            items[i].1 += quantity
            return
        }
        if index != nil {
            index![key] = items.count
        } else if items.count == Self.linearCountMax {
            var table: [Key: Int] = [:]
            for (i, item) in items.enumerated() { table[item.0] = i }
            table[key] = items.count
            index = table
        }
        items.append((key, quantity))
    }

    @inlinable subscript(key: Key) -> Quantity { position(of: key).map { items[$0].1 } ?? .zero }
}
