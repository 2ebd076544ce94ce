// The rules of what happens to a reservation after it is made (SPEC §2, §7.5, §7.6): extend, confirm,
// release (all or part of one line), fulfill (all or part of one line) and expiry. Every rule checks
// the whole request first; the reservation's status is then re-derived from its lines.

extension Rules {
    /// EXPIRED when the reservation ended by expiry, even one that reads `fulfilled` because something
    /// shipped first (SPEC §7.6); CLOSED otherwise.
    @inlinable static func closedRefusal(_ r: Reservation) -> Refusal {
        r.endedByExpiry
            ? Refusal(.expired, "reservation \(r.id) expired") : Refusal(.closed, "reservation \(r.id) is \(r.status.rawValue)")
    }

    @inlinable static func extend(_ id: String, ttl: Duration, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        guard var r = view.reservation(id) else { return .refused(.reservationNotFound(id)) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        guard r.expiresAt != nil else { return .refused(.invalid("reservation \(id) does not expire (confirmed or reserved without TTL)")) }
        r.expiresAt = now.advanced(by: ttl)
        let entry = LedgerEntry(time: now, type: .extend, reservation: id, actor: actor)
        return .commit(Commit(time: now, entries: [entry], reservation: r, replyShape: .reservation))
    }

    @inlinable static func confirm(_ id: String, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        guard var r = view.reservation(id) else { return .refused(.reservationNotFound(id)) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        guard r.expiresAt != nil else { return .unchanged(.reservation(ReservationRecord(r))) }
        r.expiresAt = nil
        let entry = LedgerEntry(time: now, type: .confirm, reservation: id, actor: actor)
        return .commit(Commit(time: now, entries: [entry], reservation: r, replyShape: .reservation))
    }

    /// What remains on each line, the first kept inline: a one-line reservation allocates nothing here.
    @inlinable static func remaining(of r: Reservation) -> InlineFirstArray<Quantity> {
        var quantities = InlineFirstArray<Quantity>()
        quantities.reserveCapacity(r.lines.count)
        for line in r.lines { quantities.append(line.remaining) }
        return quantities
    }

    /// The quantity to act on per line: everything that remains, or the selected part of one line.
    /// For a selected line the checks run in precedence order: the line must exist (NOTFOUND), the
    /// reservation must be open (CLOSED / EXPIRED), and the quantity must not exceed what remains
    /// (INVALID).
    @inlinable static func selectedQuantities(_ r: Reservation, _ selector: LineSelector?) -> Result<InlineFirstArray<Quantity>, Refusal> {
        guard let selector else { return .success(remaining(of: r)) }
        let cell = CellKey(variant: selector.variant, warehouse: selector.warehouse)
        guard let i = r.lineIndex(of: cell) else {
            return .failure(Refusal(.notFound, "reservation \(r.id) has no line \(cell.variant) \(cell.warehouse)"))
        }
        guard r.isOpen else { return .failure(closedRefusal(r)) }
        guard selector.quantity <= r.lines[i].remaining else {
            return .failure(.invalid("only \(r.lines[i].remaining) remain on line \(cell.variant) \(cell.warehouse) of reservation \(r.id)"))
        }
        var quantities = InlineFirstArray<Quantity>()
        for _ in r.lines { quantities.append(.zero) }
        quantities[i] = selector.quantity
        return .success(quantities)
    }

    @inlinable static func release(
        _ id: String, line selector: LineSelector?, reason: ReasonCode, in view: some StockView, now: Timestamp, actor: String
    ) -> Decision {
        guard let r = view.reservation(id) else { return .refused(.reservationNotFound(id)) }
        if selector == nil && !r.isOpen { return .unchanged(.reservation(ReservationRecord(r))) }
        switch selectedQuantities(r, selector) {
        case .failure(let refusal): return .refused(refusal)
        case .success(let quantities):
            return .commit(releasing(consume r, quantities, type: .release, reason: reason, in: view, at: now, actor: actor))
        }
    }

    /// Expires a hold whose deadline has come: what remains is released with reason `expired`, at the
    /// deadline itself. Nil when the reservation no longer expires at `deadline` (extended, confirmed
    /// or closed since the deadline was queued).
    @inlinable public static func expire(_ id: String, deadline: Timestamp, in view: some StockView, actor: String) -> Commit? {
        guard let r = view.reservation(id), r.isOpen, r.expiresAt == deadline else { return nil }
        let quantities = remaining(of: r)
        return releasing(consume r, quantities, type: .expire, reason: .expired, in: view, at: deadline, actor: actor)
    }

    /// Takes `r` (consumed, so that changing its lines does not copy them).
    @inlinable static func releasing(
        _ r: consuming Reservation, _ quantities: InlineFirstArray<Quantity>, type: EntryType, reason: ReasonCode, in view: some StockView,
        at time: Timestamp, actor: String
    ) -> Commit {
        var r = r
        var entries: [LedgerEntry] = []
        for i in r.lines.indices where quantities[i].isPositive {
            let line = r.lines[i]
            let before = view.cellState(line.cell)
            var after = before
            if line.tracked { after.reserved -= quantities[i] }
            entries.append(cellEntry(type, line.cell, before: before, after: after, now: time, actor: actor, reason: reason, reservation: r.id))
            r.lines[i].released += quantities[i]
        }
        r.settleStatus(at: time, byExpiry: type == .expire)
        return Commit(time: time, entries: entries, reservation: r, replyShape: .reservation)
    }

    @inlinable static func fulfill(_ id: String, line selector: LineSelector?, in view: some StockView, now: Timestamp, actor: String) -> Decision {
        guard var r = view.reservation(id) else { return .refused(.reservationNotFound(id)) }
        if selector == nil && !r.isOpen {
            return r.status == .fulfilled ? .unchanged(.reservation(ReservationRecord(r))) : .refused(closedRefusal(r))
        }
        let quantities: InlineFirstArray<Quantity>
        switch selectedQuantities(r, selector) {
        case .failure(let refusal): return .refused(refusal)
        case .success(let q): quantities = q
        }
        // A backordered line cannot ship before stock arrives: on_hand must cover the shipment.
        for i in r.lines.indices where quantities[i].isPositive && r.lines[i].tracked {
            let onHand = view.cellState(r.lines[i].cell).onHand
            if onHand < quantities[i] {
                return .refused(.insufficient(variant: r.lines[i].variant, warehouse: r.lines[i].warehouse, available: onHand, requested: quantities[i]))
            }
        }
        var entries: [LedgerEntry] = []
        for i in r.lines.indices where quantities[i].isPositive {
            let line = r.lines[i]
            let before = view.cellState(line.cell)
            var after = before
            if line.tracked {
                after.onHand -= quantities[i]
                after.reserved -= quantities[i]
            }
            entries.append(cellEntry(.fulfill, line.cell, before: before, after: after, now: now, actor: actor, reservation: id))
            r.lines[i].fulfilled += quantities[i]
        }
        r.settleStatus(at: now)
        return .commit(Commit(time: now, entries: entries, reservation: r, replyShape: .reservation))
    }
}
