// The decision rules of every mutation (SPEC §2 and §7): pure functions from a request and a view of
// the state to a commit, an unchanged reply or a refusal. They read the clock only through `now`,
// never mutate anything, and check everything before producing a single effect, which is what makes
// every operation all-or-nothing.

public enum Rules {
    /// Decides a command that already passed `Validation.normalize`.
    @inlinable public static func decide(
        _ command: Command, in view: some StockView, now: Timestamp, actor: String, settings: RuleSettings
    ) -> Decision {
        let decision: Decision
        switch command {
        case .reserve(let request):
            decision = reserve(request, in: view, now: now, actor: actor, settings: settings)
        case .extend(let id, let ttl, _):
            decision = extend(id, ttl: ttl, in: view, now: now, actor: actor)
        case .confirm(let id, _):
            decision = confirm(id, in: view, now: now, actor: actor)
        case .release(let id, let line, let reason, _):
            decision = release(id, line: line, reason: reason ?? .cancelled, in: view, now: now, actor: actor)
        case .fulfill(let id, let line, _):
            decision = fulfill(id, line: line, in: view, now: now, actor: actor)
        case .adjust(let v, let w, let delta, let reason, let note, let ref, _):
            decision = adjust(CellKey(variant: v, warehouse: w), delta: delta, reason: reason, note: note ?? "", reference: ref ?? "", in: view, now: now, actor: actor)
        case .setQuantity(let v, let w, let q, let reason, let expected, _):
            decision = setQuantity(CellKey(variant: v, warehouse: w), to: q, reason: reason, ifOnHand: expected, in: view, now: now, actor: actor)
        case .count(let v, let w, let counted, let note, _):
            decision = count(CellKey(variant: v, warehouse: w), counted: counted, note: note ?? "", in: view, now: now, actor: actor)
        case .transfer(let v, let from, let to, let q, let note, _):
            decision = transfer(v, from: from, to: to, quantity: q, note: note ?? "", in: view, now: now, actor: actor)
        case .returnStock(let v, let w, let q, let disposition, let ref, _):
            decision = returnStock(CellKey(variant: v, warehouse: w), quantity: q, disposition: disposition, reference: ref ?? "", in: view, now: now, actor: actor)
        case .setWarehouse(let change, _):
            decision = setWarehouse(change, in: view, now: now, actor: actor)
        case .setPolicy(let change, _):
            decision = setPolicy(change, in: view, now: now, actor: actor)
        case .importStock(let v, let w, let onHand):
            decision = importStock(CellKey(variant: v, warehouse: w), onHand: onHand, in: view, now: now, actor: actor)
        }
        // Test the key first: binding the commit copies it, and most commands carry no key.
        guard command.key != nil, case .commit(var commit) = decision else { return decision }
        commit.keyedCommand = command
        return .commit(commit)
    }

    // MARK: Physical changes

    @inlinable static func adjust(
        _ cell: CellKey, delta: Quantity, reason: ReasonCode, note: String, reference: String, in view: some StockView,
        now: Timestamp, actor: String
    ) -> Decision {
        guard view.warehouse(cell.warehouse) != nil else { return .refused(.warehouseNotFound(cell.warehouse)) }
        let before = view.cellState(cell)
        let onHand = before.onHand + delta
        guard onHand >= .zero else {
            return .refused(Refusal(.negative, "\(cell.variant) \(cell.warehouse) on_hand \(before.onHand) cannot drop by \(-delta)", current: before.onHand))
        }
        guard onHand <= Limits.cellQuantityMax else { return .refused(.limit("on_hand may not exceed \(Limits.cellQuantityMax)")) }
        let entry = cellEntry(.adjust, cell, before: before, after: CellState(onHand: onHand, reserved: before.reserved), now: now, actor: actor, reason: reason, note: note, reference: reference)
        return .commit(Commit(time: now, entries: [entry], replyShape: .cell(variance: nil)))
    }

    @inlinable static func setQuantity(
        _ cell: CellKey, to quantity: Quantity, reason: ReasonCode, ifOnHand expected: Quantity?, in view: some StockView,
        now: Timestamp, actor: String
    ) -> Decision {
        guard view.warehouse(cell.warehouse) != nil else { return .refused(.warehouseNotFound(cell.warehouse)) }
        let before = view.cellState(cell)
        if let expected, expected != before.onHand {
            return .refused(Refusal(.conflict, "on_hand is \(before.onHand), not \(expected)", current: before.onHand))
        }
        let entry = cellEntry(.set, cell, before: before, after: CellState(onHand: quantity, reserved: before.reserved), now: now, actor: actor, reason: reason)
        return .commit(Commit(time: now, entries: [entry], replyShape: .cell(variance: nil)))
    }

    @inlinable static func importStock(_ cell: CellKey, onHand: Quantity, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        guard view.warehouse(cell.warehouse) != nil else { return .refused(.warehouseNotFound(cell.warehouse)) }
        let entry = importEntry(cell, onHand: onHand, before: view.cellState(cell), now: now, actor: actor)
        return .commit(Commit(time: now, entries: [entry], replyShape: .cell(variance: nil)))
    }

    /// The entry of one imported row, for a cell whose warehouse exists: on_hand becomes the row's
    /// figure, reserved stays. A bulk import decides its rows with this, one commit for many.
    @inlinable public static func importEntry(_ cell: CellKey, onHand: Quantity, before: CellState, now: Timestamp, actor: String) -> LedgerEntry {
        cellEntry(.import, cell, before: before, after: CellState(onHand: onHand, reserved: before.reserved), now: now, actor: actor, reason: .import)
    }

    @inlinable static func count(_ cell: CellKey, counted: Quantity, note: String, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        guard view.warehouse(cell.warehouse) != nil else { return .refused(.warehouseNotFound(cell.warehouse)) }
        let before = view.cellState(cell)
        let entry = cellEntry(.count, cell, before: before, after: CellState(onHand: counted, reserved: before.reserved), now: now, actor: actor, reason: .count, note: note)
        return .commit(Commit(time: now, entries: [entry], replyShape: .cell(variance: counted - before.onHand)))
    }

    @inlinable static func transfer(
        _ variant: String, from: String, to: String, quantity: Quantity, note: String, in view: some StockView, now: Timestamp,
        actor: String
    ) -> Decision {
        guard view.warehouse(from) != nil else { return .refused(.warehouseNotFound(from)) }
        guard view.warehouse(to) != nil else { return .refused(.warehouseNotFound(to)) }
        let source = CellKey(variant: variant, warehouse: from)
        let destination = CellKey(variant: variant, warehouse: to)
        let a = view.cellState(source)
        let b = view.cellState(destination)
        // Reported as STOCK shows it, negative for a source in shortfall (SPEC §7.8).
        guard a.available >= quantity else {
            return .refused(.insufficient(variant: variant, warehouse: from, available: a.available, requested: quantity))
        }
        guard b.onHand + quantity <= Limits.cellQuantityMax else { return .refused(.limit("on_hand may not exceed \(Limits.cellQuantityMax)")) }
        let out = cellEntry(.transfer, source, before: a, after: CellState(onHand: a.onHand - quantity, reserved: a.reserved), now: now, actor: actor, reason: .transfer, note: note)
        let into = cellEntry(.transfer, destination, before: b, after: CellState(onHand: b.onHand + quantity, reserved: b.reserved), now: now, actor: actor, reason: .transfer, note: note)
        return .commit(Commit(time: now, entries: [out, into], replyShape: .transfer))
    }

    @inlinable static func returnStock(
        _ cell: CellKey, quantity: Quantity, disposition: ReturnDisposition, reference: String, in view: some StockView,
        now: Timestamp, actor: String
    ) -> Decision {
        guard view.warehouse(cell.warehouse) != nil else { return .refused(.warehouseNotFound(cell.warehouse)) }
        let before = view.cellState(cell)
        var after = before
        if disposition == .restock {
            after.onHand += quantity
            guard after.onHand <= Limits.cellQuantityMax else { return .refused(.limit("on_hand may not exceed \(Limits.cellQuantityMax)")) }
        }
        let reason: ReasonCode = disposition == .restock ? .returned : .damaged
        // A damaged return changes no figure; its entry (Δ 0, reason damaged) names the units in the note
        // so the ledger still says how much came back broken.
        let note = disposition == .damaged ? "\(quantity) units returned damaged" : ""
        let entry = cellEntry(.return, cell, before: before, after: after, now: now, actor: actor, reason: reason, note: note, reference: reference)
        return .commit(Commit(time: now, entries: [entry], replyShape: .cell(variance: nil)))
    }

    // MARK: Catalog

    @inlinable static func setWarehouse(_ change: WarehouseChange, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        var w = view.warehouse(change.code) ?? Warehouse(code: change.code)
        if let name = change.name { w.name = name }
        if let address = change.address { w.address = address }
        if let priority = change.priority { w.priority = priority }
        if let active = change.active { w.active = active }
        let entry = LedgerEntry(time: now, type: .warehouse, warehouse: w.code, actor: actor)
        return .commit(Commit(time: now, entries: [entry], warehouse: w, replyShape: .warehouse))
    }

    @inlinable static func setPolicy(_ change: PolicyChange, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        var p = view.policy(of: change.variant)
        if let b = change.backorder { p.backorder = b }
        if let u = change.unlimited { p.unlimited = u }
        if let n = change.lowStock { p.lowStock = n }
        let entry = LedgerEntry(time: now, type: .policy, variant: p.variant, actor: actor)
        return .commit(Commit(time: now, entries: [entry], policy: p, replyShape: .policy))
    }

    // MARK: Helpers

    /// The ledger entry of a change of `cell`'s figures from `before` to `after`.
    @inlinable public static func cellEntry(
        _ type: EntryType, _ cell: CellKey, before: CellState, after: CellState, now: Timestamp, actor: String,
        reason: ReasonCode? = nil, note: String = "", reference: String = "", reservation: String = ""
    ) -> LedgerEntry {
        LedgerEntry(
            time: now, type: type, variant: cell.variant, warehouse: cell.warehouse, deltaOnHand: after.onHand - before.onHand,
            deltaReserved: after.reserved - before.reserved, onHand: after.onHand, reserved: after.reserved, reason: reason,
            note: note, reference: reference, reservation: reservation, actor: actor)
    }
}
