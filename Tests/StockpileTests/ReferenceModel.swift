// An independent, single-threaded, deliberately plain model of the engine's semantics (SPEC §1, §2, §7
// and docs/DECISIONS.md). It shares only the domain types and the syntax check (`Validation`) with the
// engine; every decision is re-derived here from the documents, so a disagreement with the engine points
// at a bug in one of the two. Clarity over speed: state is plain dictionaries, the ledger a plain array.

import StockpileCore

struct ReferenceModel {
    /// What a used idempotency key remembers.
    struct KeyRecord: Hashable {
        /// The normalised command, less its key.
        var command: Command
        var reply: Reply
        var firstUsed: Timestamp
    }

    let retention: Duration
    let defaultStrategy: PlacementStrategy
    /// The actor written on entries of the engine's own expiries (the SPEC does not say; the engine
    /// writes "engine").
    var expiryActor: String = "engine"

    private(set) var cells: [CellKey: CellState] = [:]
    private(set) var warehouses: [String: Warehouse] = [Warehouse.mainCode: .main]
    private(set) var policies: [String: VariantPolicy] = [:]
    private(set) var reservations: [String: Reservation] = [:]
    private(set) var keys: [String: KeyRecord] = [:]
    /// Ids of the reservations the expiry closed, whatever their status says (SPEC §7.6).
    private(set) var endedByExpiry: Set<String> = []
    private(set) var ledger: [LedgerEntry] = []
    /// The time of the latest operation.
    private(set) var now: Timestamp

    init(retention: Duration, defaultStrategy: PlacementStrategy = .priority, start: Timestamp) {
        self.retention = retention
        self.defaultStrategy = defaultStrategy
        self.now = start
    }

    // MARK: - Reads

    func cell(_ key: CellKey) -> CellState { cells[key] ?? .empty }
    func cell(variant: String, warehouse: String) -> CellState { cell(CellKey(variant: variant, warehouse: warehouse)) }
    func reservation(_ id: String) -> Reservation? { reservations[id] }
    func policy(_ variant: String) -> VariantPolicy { policies[variant] ?? VariantPolicy(variant: variant) }
    func warehouse(_ code: String) -> Warehouse? { warehouses[code] }
    var activeWarehousesInPlacementOrder: [Warehouse] {
        warehouses.values.filter(\.active).sorted(by: Warehouse.placementOrder)
    }

    /// Invariant 2, recomputed from scratch: reserved of each cell = Σ remaining of open tracked lines.
    func checkInvariants() -> [String] {
        var problems: [String] = []
        var expected: [CellKey: Quantity] = [:]
        for r in reservations.values where r.isOpen {
            for l in r.lines where l.tracked { expected[l.cell, default: .zero] += l.remaining }
        }
        for (k, s) in cells {
            if s.onHand < .zero || s.reserved < .zero { problems.append("model cell \(k) negative: \(s)") }
            if s.reserved != expected[k, default: .zero] {
                problems.append("model cell \(k) reserved \(s.reserved) but open lines hold \(expected[k, default: .zero])")
            }
        }
        for (k, q) in expected where cells[k] == nil && q != .zero { problems.append("model cell \(k) missing, lines hold \(q)") }
        for (i, e) in ledger.enumerated() where e.seq != UInt64(i + 1) { problems.append("model ledger seq gap at \(i)") }
        return problems
    }

    // MARK: - Execute

    mutating func execute(_ raw: Command, actor: String, now: Timestamp) -> Outcome<Reply> {
        self.now = now
        applyDueWork(now: now)

        let command: Command
        switch Validation.normalize(raw) {
        case .refused(let r): return .refused(r)
        case .ok(let c): command = c
        }

        if let key = command.key, let record = keys[key] {
            if record.command == command.withoutKey { return .ok(record.reply.markedReplayed) }
            return .refused(Refusal(.conflict, "KEY \(key) was used for a different request"))
        }

        let ledgerCountBefore = ledger.count
        let outcome = decideAndApply(command, actor: actor, now: now)

        // SPEC §7.2: only a refusal leaves its key unused, so every success uses it, even one that
        // changed nothing (RELEASE/FULFILL of a closed reservation).
        if let key = command.key, case .ok(let reply) = outcome {
            keys[key] = KeyRecord(command: command.withoutKey, reply: reply, firstUsed: now)
        }
        if case .refused = outcome { precondition(ledger.count == ledgerCountBefore, "a refusal wrote entries") }
        return outcome
    }

    /// Expiries whose deadline has come, in order of (deadline, id), then forgetting what the
    /// retention window no longer covers.
    mutating func applyDueWork(now: Timestamp) {
        let due = reservations.values
            .filter { $0.isOpen && $0.expiresAt != nil && $0.expiresAt! <= now }
            .sorted { a, b in a.expiresAt! != b.expiresAt! ? a.expiresAt! < b.expiresAt! : a.id < b.id }
        for var r in due {
            let deadline = r.expiresAt!
            for i in r.lines.indices where r.lines[i].remaining.isPositive {
                let line = r.lines[i]
                let rem = line.remaining
                changeCell(
                    line.cell, onHand: .zero, reserved: line.tracked ? -rem : .zero, type: .expire, reason: .expired,
                    reservation: r.id, actor: expiryActor, time: deadline)
                r.lines[i].released += rem
            }
            r.settleStatus(at: deadline, byExpiry: true)
            reservations[r.id] = r
            endedByExpiry.insert(r.id)
        }

        let cutoff = Timestamp(milliseconds: now.milliseconds - retention.wholeMilliseconds)
        reservations = reservations.filter { _, r in
            guard let closed = r.closedAt else { return true }
            return closed > cutoff
        }
        endedByExpiry = endedByExpiry.filter { reservations[$0] != nil }
        keys = keys.filter { _, k in k.firstUsed > cutoff }
    }

    // MARK: - Helpers

    @discardableResult
    private mutating func appendEntry(_ entry: LedgerEntry) -> UInt64 {
        var e = entry
        e.seq = UInt64(ledger.count + 1)
        ledger.append(e)
        return e.seq
    }

    /// Changes a cell by the deltas and writes the one entry that records it. Returns the entry's seq.
    @discardableResult
    private mutating func changeCell(
        _ key: CellKey, onHand dOnHand: Quantity, reserved dReserved: Quantity, type: EntryType, reason: ReasonCode?,
        note: String = "", reference: String = "", reservation: String = "", actor: String, time: Timestamp
    ) -> UInt64 {
        var s = cell(key)
        s.onHand += dOnHand
        s.reserved += dReserved
        precondition(s.onHand >= .zero && s.reserved >= .zero, "model drove cell \(key) negative: \(s)")
        cells[key] = s
        return appendEntry(
            LedgerEntry(
                time: time, type: type, variant: key.variant, warehouse: key.warehouse, deltaOnHand: dOnHand,
                deltaReserved: dReserved, onHand: s.onHand, reserved: s.reserved, reason: reason, note: note,
                reference: reference, reservation: reservation, actor: actor))
    }

    /// SPEC §7.6: EXPIRED when it ended by expiry, even when something shipped first and it reads
    /// `fulfilled`; CLOSED otherwise.
    private func closedRefusal(_ r: Reservation) -> Refusal {
        endedByExpiry.contains(r.id)
            ? Refusal(.expired, "reservation \(r.id) expired") : Refusal(.closed, "reservation \(r.id) is \(r.status.rawValue)")
    }

    private func cellReceipt(_ key: CellKey, seq: UInt64, variance: Quantity? = nil) -> Reply {
        let s = cell(key)
        return .cell(CellReceipt(cell: CellRecord(key: key, state: s), seq: seq, shortfall: s.shortfall, variance: variance))
    }

    // MARK: - Decisions

    private mutating func decideAndApply(_ command: Command, actor: String, now: Timestamp) -> Outcome<Reply> {
        switch command {
        case .reserve(let request):
            return reserve(request, actor: actor, now: now)
        case .extend(let id, let ttl, _):
            return extend(id: id, ttl: ttl, actor: actor, now: now)
        case .confirm(let id, _):
            return confirm(id: id, actor: actor, now: now)
        case .release(let id, let line, let reason, _):
            return release(id: id, line: line, reason: reason ?? .cancelled, actor: actor, now: now)
        case .fulfill(let id, let line, _):
            return fulfill(id: id, line: line, actor: actor, now: now)
        case .adjust(let v, let w, let delta, let reason, let note, let ref, _):
            guard warehouses[w] != nil else { return .refused(.warehouseNotFound(w)) }
            let key = CellKey(variant: v, warehouse: w)
            let before = cell(key)
            if before.onHand + delta < .zero {
                return .refused(Refusal(.negative, "on_hand would drop below 0", current: before.onHand))
            }
            if before.onHand + delta > Limits.cellQuantityMax { return .refused(.limit("cell on_hand limit")) }
            let seq = changeCell(
                key, onHand: delta, reserved: .zero, type: .adjust, reason: reason, note: note ?? "", reference: ref ?? "",
                actor: actor, time: now)
            return .ok(cellReceipt(key, seq: seq))
        case .setQuantity(let v, let w, let q, let reason, let expected, _):
            guard warehouses[w] != nil else { return .refused(.warehouseNotFound(w)) }
            let key = CellKey(variant: v, warehouse: w)
            let before = cell(key)
            if let expected, expected != before.onHand {
                return .refused(Refusal(.conflict, "on_hand is \(before.onHand)", current: before.onHand))
            }
            let seq = changeCell(key, onHand: q - before.onHand, reserved: .zero, type: .set, reason: reason, actor: actor, time: now)
            return .ok(cellReceipt(key, seq: seq))
        case .importStock(let v, let w, let onHand):
            guard warehouses[w] != nil else { return .refused(.warehouseNotFound(w)) }
            let key = CellKey(variant: v, warehouse: w)
            let seq = changeCell(key, onHand: onHand - cell(key).onHand, reserved: .zero, type: .import, reason: .import, actor: actor, time: now)
            return .ok(cellReceipt(key, seq: seq))
        case .count(let v, let w, let counted, let note, _):
            guard warehouses[w] != nil else { return .refused(.warehouseNotFound(w)) }
            let key = CellKey(variant: v, warehouse: w)
            let variance = counted - cell(key).onHand
            let seq = changeCell(key, onHand: variance, reserved: .zero, type: .count, reason: .count, note: note ?? "", actor: actor, time: now)
            return .ok(cellReceipt(key, seq: seq, variance: variance))
        case .transfer(let v, let from, let to, let q, let note, _):
            guard warehouses[from] != nil else { return .refused(.warehouseNotFound(from)) }
            guard warehouses[to] != nil else { return .refused(.warehouseNotFound(to)) }
            let fromKey = CellKey(variant: v, warehouse: from)
            let toKey = CellKey(variant: v, warehouse: to)
            // SPEC §7.8: INSUFFICIENT states what STOCK shows, negative for a source in shortfall.
            let available = cell(fromKey).available
            if available < q {
                return .refused(.insufficient(variant: v, warehouse: from, available: available, requested: q))
            }
            if cell(toKey).onHand + q > Limits.cellQuantityMax { return .refused(.limit("cell on_hand limit")) }
            let seq = changeCell(fromKey, onHand: -q, reserved: .zero, type: .transfer, reason: .transfer, note: note ?? "", actor: actor, time: now)
            changeCell(toKey, onHand: q, reserved: .zero, type: .transfer, reason: .transfer, note: note ?? "", actor: actor, time: now)
            return .ok(
                .transfer(
                    TransferReceipt(
                        from: CellRecord(key: fromKey, state: cell(fromKey)), to: CellRecord(key: toKey, state: cell(toKey)), seq: seq)))
        case .returnStock(let v, let w, let q, let disposition, let ref, _):
            guard warehouses[w] != nil else { return .refused(.warehouseNotFound(w)) }
            let key = CellKey(variant: v, warehouse: w)
            let seq: UInt64
            switch disposition {
            case .restock:
                if cell(key).onHand + q > Limits.cellQuantityMax { return .refused(.limit("cell on_hand limit")) }
                seq = changeCell(key, onHand: q, reserved: .zero, type: .return, reason: .returned, reference: ref ?? "", actor: actor, time: now)
            case .damaged:
                seq = changeCell(
                    key, onHand: .zero, reserved: .zero, type: .return, reason: .damaged, note: "\(q) units returned damaged",
                    reference: ref ?? "", actor: actor, time: now)
            }
            return .ok(cellReceipt(key, seq: seq))
        case .setWarehouse(let change, _):
            var w = warehouses[change.code] ?? Warehouse(code: change.code)
            if let n = change.name { w.name = n }
            if let a = change.address { w.address = a }
            if let p = change.priority { w.priority = p }
            if let a = change.active { w.active = a }
            warehouses[w.code] = w
            appendEntry(LedgerEntry(time: now, type: .warehouse, warehouse: w.code, actor: actor))
            return .ok(.warehouse(w))
        case .setPolicy(let change, _):
            var p = policy(change.variant)
            if let b = change.backorder { p.backorder = b }
            if let u = change.unlimited { p.unlimited = u }
            if let l = change.lowStock { p.lowStock = l }
            policies[p.variant] = p
            appendEntry(LedgerEntry(time: now, type: .policy, variant: p.variant, actor: actor))
            return .ok(.policy(p))
        }
    }

    // MARK: RESERVE

    private mutating func reserve(_ request: ReserveRequest, actor: String, now: Timestamp) -> Outcome<Reply> {
        let strategy = request.strategy ?? defaultStrategy
        let fingerprint = ReserveFingerprint(request, strategy: strategy)
        if let existing = reservations[request.id] {
            if existing.fingerprint == fingerprint { return .ok(.reservation(ReservationRecord(existing, replayed: true))) }
            return .refused(Refusal(.conflict, "reservation \(request.id) exists with a different request"))
        }

        // Merge: explicit lines per cell, `*` lines per variant, first appearance fixing the order.
        var explicit: [(key: CellKey, quantity: Quantity)] = []
        var placed: [(variant: String, quantity: Quantity)] = []
        for line in request.lines {
            if line.warehouse == Identifiers.anyWarehouse {
                if let i = placed.firstIndex(where: { $0.variant == line.variant }) {
                    placed[i].quantity += line.quantity
                } else {
                    placed.append((line.variant, line.quantity))
                }
            } else {
                let key = CellKey(variant: line.variant, warehouse: line.warehouse)
                if let i = explicit.firstIndex(where: { $0.key == key }) {
                    explicit[i].quantity += line.quantity
                } else {
                    explicit.append((key, line.quantity))
                }
            }
        }

        // NOTFOUND for every line, then INACTIVE for every line.
        for e in explicit where warehouses[e.key.warehouse] == nil { return .refused(.warehouseNotFound(e.key.warehouse)) }
        for e in explicit where warehouses[e.key.warehouse]?.active == false {
            return .refused(Refusal(.inactive, "warehouse \(e.key.warehouse) is inactive"))
        }

        // Stock of the explicit lines, in order.
        var lines: [ReservationLine] = []
        for e in explicit {
            let p = policy(e.key.variant)
            if p.unlimited {
                lines.append(ReservationLine(variant: e.key.variant, warehouse: e.key.warehouse, quantity: e.quantity, tracked: false))
                continue
            }
            let available = cell(e.key).available
            if e.quantity > available && !p.backorder {
                return .refused(
                    .insufficient(variant: e.key.variant, warehouse: e.key.warehouse, available: available, requested: e.quantity))
            }
            lines.append(ReservationLine(variant: e.key.variant, warehouse: e.key.warehouse, quantity: e.quantity))
        }

        // Place the `*` lines on what the explicit lines leave.
        let active = activeWarehousesInPlacementOrder
        func add(_ variant: String, _ warehouse: String, _ q: Quantity, tracked: Bool) {
            let key = CellKey(variant: variant, warehouse: warehouse)
            if let i = lines.firstIndex(where: { $0.cell == key }) {
                lines[i].quantity += q
            } else {
                lines.append(ReservationLine(variant: variant, warehouse: warehouse, quantity: q, tracked: tracked))
            }
        }
        for s in placed {
            let p = policy(s.variant)
            guard let first = active.first else {
                return .refused(.insufficient(variant: s.variant, warehouse: Identifiers.anyWarehouse, available: .zero, requested: s.quantity))
            }
            if p.unlimited {
                add(s.variant, first.code, s.quantity, tracked: false)
                continue
            }
            // What each active warehouse can still give to this request (never below zero), and what
            // INSUFFICIENT reports: the same sum without that floor, so that it agrees with STOCK over
            // the active warehouses less the request's own explicit lines (SPEC §7.8).
            let left: [(code: String, available: Quantity)] = active.map { w in
                let key = CellKey(variant: s.variant, warehouse: w.code)
                let already = lines.first(where: { $0.cell == key })?.quantity ?? .zero
                return (w.code, cell(key).available - already)
            }
            let gives = left.map { (code: $0.code, can: $0.available.clampedAtZero) }
            let total = gives.reduce(Quantity.zero) { $0 + $1.can }
            let reported = left.reduce(Quantity.zero) { $0 + $1.available }
            let refusal = Refusal.insufficient(variant: s.variant, warehouse: Identifiers.anyWarehouse, available: reported, requested: s.quantity)
            switch strategy {
            case .priority:
                if let g = gives.first(where: { $0.can >= s.quantity }) {
                    add(s.variant, g.code, s.quantity, tracked: true)
                } else if p.backorder {
                    add(s.variant, first.code, s.quantity, tracked: true)
                } else {
                    return .refused(refusal)
                }
            case .most:
                var best = gives[0]
                for g in gives.dropFirst() where g.can > best.can { best = g }
                if best.can >= s.quantity {
                    add(s.variant, best.code, s.quantity, tracked: true)
                } else if p.backorder {
                    add(s.variant, first.code, s.quantity, tracked: true)
                } else {
                    return .refused(refusal)
                }
            case .split:
                if total < s.quantity && !p.backorder { return .refused(refusal) }
                // What stock covers, in priority order; then the uncovered rest (backorder variants) goes
                // to the first warehouse by priority. Line order is not in the SPEC: this follows the
                // engine (the rest merges into an existing line, or is appended after the covered ones).
                var rest = s.quantity
                for g in gives where rest.isPositive {
                    let t = min(g.can, rest)
                    if t.isPositive {
                        add(s.variant, g.code, t, tracked: true)
                        rest -= t
                    }
                }
                if rest.isPositive { add(s.variant, first.code, rest, tracked: true) }
            }
        }

        // Backordered: the part available stock did not cover, for backorder variants.
        for i in lines.indices where lines[i].tracked && policy(lines[i].variant).backorder {
            let before = cell(lines[i].cell).available.clampedAtZero
            lines[i].backordered = (lines[i].quantity - before).clampedAtZero
        }
        for l in lines where cell(l.cell).reserved + (l.tracked ? l.quantity : .zero) > Limits.cellQuantityMax {
            return .refused(.limit("cell reserved limit"))
        }

        // Apply.
        for l in lines {
            changeCell(
                l.cell, onHand: .zero, reserved: l.tracked ? l.quantity : .zero, type: .reserve, reason: nil,
                reservation: request.id, actor: actor, time: now)
        }
        let r = Reservation(
            id: request.id, lines: lines, status: .active, expiresAt: request.ttl.map { now.advanced(by: $0) },
            customer: request.customer, createdAt: now, fingerprint: fingerprint)
        reservations[r.id] = r
        return .ok(.reservation(ReservationRecord(r)))
    }

    // MARK: Holds

    private mutating func extend(id: String, ttl: Duration, actor: String, now: Timestamp) -> Outcome<Reply> {
        guard var r = reservations[id] else { return .refused(.reservationNotFound(id)) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        guard r.expiresAt != nil else { return .refused(.invalid("reservation \(id) does not expire")) }
        r.expiresAt = now.advanced(by: ttl)
        reservations[id] = r
        appendEntry(LedgerEntry(time: now, type: .extend, reservation: id, actor: actor))
        return .ok(.reservation(ReservationRecord(r)))
    }

    private mutating func confirm(id: String, actor: String, now: Timestamp) -> Outcome<Reply> {
        guard var r = reservations[id] else { return .refused(.reservationNotFound(id)) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        guard r.expiresAt != nil else { return .ok(.reservation(ReservationRecord(r))) }
        r.expiresAt = nil
        reservations[id] = r
        appendEntry(LedgerEntry(time: now, type: .confirm, reservation: id, actor: actor))
        return .ok(.reservation(ReservationRecord(r)))
    }

    private mutating func release(id: String, line selector: LineSelector?, reason: ReasonCode, actor: String, now: Timestamp) -> Outcome<Reply> {
        guard var r = reservations[id] else { return .refused(.reservationNotFound(id)) }
        guard let selector else {
            guard r.isOpen else { return .ok(.reservation(ReservationRecord(r))) }
            for i in r.lines.indices where r.lines[i].remaining.isPositive {
                let l = r.lines[i]
                let rem = l.remaining
                changeCell(l.cell, onHand: .zero, reserved: l.tracked ? -rem : .zero, type: .release, reason: reason, reservation: id, actor: actor, time: now)
                r.lines[i].released += rem
            }
            r.settleStatus(at: now)
            reservations[id] = r
            return .ok(.reservation(ReservationRecord(r)))
        }
        let key = CellKey(variant: selector.variant, warehouse: selector.warehouse)
        // DECISIONS precedence: NOTFOUND (of the line) before CLOSED/EXPIRED.
        guard let i = r.lineIndex(of: key) else { return .refused(Refusal(.notFound, "reservation \(id) has no line \(key.variant) \(key.warehouse)")) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        let l = r.lines[i]
        guard selector.quantity <= l.remaining else {
            return .refused(.invalid("only \(l.remaining) remain on \(key.variant) \(key.warehouse)"))
        }
        changeCell(key, onHand: .zero, reserved: l.tracked ? -selector.quantity : .zero, type: .release, reason: reason, reservation: id, actor: actor, time: now)
        r.lines[i].released += selector.quantity
        r.settleStatus(at: now)
        reservations[id] = r
        return .ok(.reservation(ReservationRecord(r)))
    }

    private mutating func fulfill(id: String, line selector: LineSelector?, actor: String, now: Timestamp) -> Outcome<Reply> {
        guard var r = reservations[id] else { return .refused(.reservationNotFound(id)) }
        guard let selector else {
            guard r.isOpen else {
                return r.status == .fulfilled ? .ok(.reservation(ReservationRecord(r))) : .refused(closedRefusal(r))
            }
            for l in r.lines where l.tracked && l.remaining.isPositive && cell(l.cell).onHand < l.remaining {
                return .refused(.insufficient(variant: l.variant, warehouse: l.warehouse, available: cell(l.cell).onHand, requested: l.remaining))
            }
            for i in r.lines.indices where r.lines[i].remaining.isPositive {
                let l = r.lines[i]
                let rem = l.remaining
                let d = l.tracked ? -rem : .zero
                changeCell(l.cell, onHand: d, reserved: d, type: .fulfill, reason: nil, reservation: id, actor: actor, time: now)
                r.lines[i].fulfilled += rem
            }
            r.settleStatus(at: now)
            reservations[id] = r
            return .ok(.reservation(ReservationRecord(r)))
        }
        let key = CellKey(variant: selector.variant, warehouse: selector.warehouse)
        // DECISIONS precedence: NOTFOUND (of the line) before CLOSED/EXPIRED.
        guard let i = r.lineIndex(of: key) else { return .refused(Refusal(.notFound, "reservation \(id) has no line \(key.variant) \(key.warehouse)")) }
        guard r.isOpen else { return .refused(closedRefusal(r)) }
        let l = r.lines[i]
        let q = selector.quantity
        guard q <= l.remaining else { return .refused(.invalid("only \(l.remaining) remain on \(key.variant) \(key.warehouse)")) }
        if l.tracked && cell(key).onHand < q {
            return .refused(.insufficient(variant: key.variant, warehouse: key.warehouse, available: cell(key).onHand, requested: q))
        }
        let d = l.tracked ? -q : .zero
        changeCell(key, onHand: d, reserved: d, type: .fulfill, reason: nil, reservation: id, actor: actor, time: now)
        r.lines[i].fulfilled += q
        r.settleStatus(at: now)
        reservations[id] = r
        return .ok(.reservation(ReservationRecord(r)))
    }
}
