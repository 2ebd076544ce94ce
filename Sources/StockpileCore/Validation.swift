// The first rule every command meets: syntax and ranges. A command that passes is normalised
// (warehouse codes upper-cased) and every later rule may assume its names and numbers are in range.
// Wrong form or range is INVALID; past a limit of SPEC §5 is LIMIT (SPEC §7.14).

public enum Validation {
    /// The command normalised, or why it is refused.
    public static func normalize(_ command: Command) -> Outcome<Command> {
        do {
            return .ok(try normalized(command))
        } catch {
            return .refused(error)
        }
    }

    /// Whether `r` is valid and `normalize` would return it as it is (`checkReserve` is false).
    public static func isValidAsItStands(_ r: ReserveRequest) -> Bool {
        guard case .some(false) = try? checkReserve(r) else { return false }
        return true
    }

    /// Checks a reservation request as `normalize` does, reading it only. Returns whether a
    /// warehouse code needs upper-casing (then `normalize` returns a changed request); false when
    /// `normalize` would return the request as it is.
    public static func checkReserve(_ r: ReserveRequest) throws(Refusal) -> Bool {
        try checkID(r.id)
        guard !r.lines.isEmpty else { throw .invalid("a reservation needs at least one line") }
        guard r.lines.count <= Limits.linesPerReservationMax else {
            throw .limit("a reservation may have at most \(Limits.linesPerReservationMax) lines")
        }
        // Read-only: the lines are written (which copies the caller's array) only when a warehouse
        // code is not upper-case already. A loop that may write lets the compiler make the array
        // unique before it starts, copying it every time.
        var lowerCase = false
        for line in r.lines {
            try checkVariant(line.variant)
            if line.warehouse != Identifiers.anyWarehouse {
                let code = try warehouse(line.warehouse)
                if code != line.warehouse { lowerCase = true }
            }
            try checkQuantity(line.quantity, minimum: 1)
        }
        if let ttl = r.ttl { try checkTTL(ttl) }
        if let c = r.customer { try checkText(c, "customer", allowEmpty: false) }
        return lowerCase
    }

    static func normalized(_ command: Command) throws(Refusal) -> Command {
        switch command {
        case .reserve(var r):
            if try checkReserve(r) {
                for i in r.lines.indices where r.lines[i].warehouse != Identifiers.anyWarehouse {
                    r.lines[i].warehouse = try warehouse(r.lines[i].warehouse)
                }
            }
            return .reserve(r)
        case .extend(let id, let ttl, let key):
            try checkID(id)
            try checkTTL(ttl)
            try checkKey(key)
            return command
        case .confirm(let id, let key):
            try checkID(id)
            try checkKey(key)
            return command
        case .release(let id, let line, let reason, let key):
            try checkID(id)
            try checkKey(key)
            return .release(id: id, line: try selector(line), reason: reason, key: key)
        case .fulfill(let id, let line, let key):
            try checkID(id)
            try checkKey(key)
            return .fulfill(id: id, line: try selector(line), key: key)
        case .adjust(let v, let w, let delta, let reason, let note, let ref, let key):
            try checkVariant(v)
            let w = try warehouse(w)
            guard delta != .zero else { throw .invalid("an adjustment of 0 changes nothing") }
            guard delta.units.magnitude <= Limits.quantityMax.units.magnitude else {
                throw .limit("quantity may not exceed \(Limits.quantityMax)")
            }
            guard let sign = reason.adjustSign else { throw .invalid("reason \(reason.rawValue) is not accepted for ADJUST") }
            if sign > 0 && delta < .zero { throw .invalid("reason \(reason.rawValue) adds stock: delta must be positive") }
            if sign < 0 && delta > .zero { throw .invalid("reason \(reason.rawValue) removes stock: delta must be negative") }
            try checkText(note, "note")
            try checkText(ref, "ref")
            try checkKey(key)
            return .adjust(variant: v, warehouse: w, delta: delta, reason: reason, note: note, reference: ref, key: key)
        case .setQuantity(let v, let w, let q, let reason, let expected, let key):
            try checkVariant(v)
            let w = try warehouse(w)
            try checkQuantity(q, minimum: 0)
            if let expected { try checkQuantity(expected, minimum: 0) }
            try checkKey(key)
            return .setQuantity(variant: v, warehouse: w, quantity: q, reason: reason, ifOnHand: expected, key: key)
        case .importStock(let v, let w, let onHand):
            return .importStock(variant: v, warehouse: try importRow(variant: v, warehouse: w, onHand: onHand), onHand: onHand)
        case .count(let v, let w, let counted, let note, let key):
            try checkVariant(v)
            let w = try warehouse(w)
            try checkQuantity(counted, minimum: 0)
            try checkText(note, "note")
            try checkKey(key)
            return .count(variant: v, warehouse: w, counted: counted, note: note, key: key)
        case .transfer(let v, let from, let to, let q, let note, let key):
            try checkVariant(v)
            let from = try warehouse(from)
            let to = try warehouse(to)
            guard from != to else { throw .invalid("a transfer needs two different warehouses") }
            try checkQuantity(q, minimum: 1)
            try checkText(note, "note")
            try checkKey(key)
            return .transfer(variant: v, from: from, to: to, quantity: q, note: note, key: key)
        case .returnStock(let v, let w, let q, let disposition, let ref, let key):
            try checkVariant(v)
            let w = try warehouse(w)
            try checkQuantity(q, minimum: 1)
            try checkText(ref, "ref")
            try checkKey(key)
            return .returnStock(variant: v, warehouse: w, quantity: q, disposition: disposition, reference: ref, key: key)
        case .setWarehouse(var change, let key):
            try checkKey(key)
            change.code = try warehouse(change.code)
            try checkText(change.name, "name")
            try checkText(change.address, "address")
            if let p = change.priority, p.magnitude > Limits.priorityMagnitudeMax.magnitude {
                throw .invalid("priority must be between -\(Limits.priorityMagnitudeMax) and \(Limits.priorityMagnitudeMax)")
            }
            return .setWarehouse(change, key: key)
        case .setPolicy(let change, let key):
            try checkKey(key)
            try checkVariant(change.variant)
            if let n = change.lowStock { try checkQuantity(n, minimum: 0) }
            return command
        }
    }

    /// An import row checked as `normalize` checks `.importStock` (variant, then warehouse, then
    /// figure); returns the warehouse code normalised. `previous`: the last row's warehouse as given
    /// and as normalised, reused when this row names the same (a load checks millions of rows, most
    /// naming one warehouse).
    public static func importRow(
        variant: String, warehouse code: String, onHand: Quantity, previous: (given: String, normalized: String)? = nil
    ) throws(Refusal) -> String {
        try checkVariant(variant)
        let normalized: String
        if let previous, previous.given == code {
            normalized = previous.normalized
        } else {
            normalized = try warehouse(code)
        }
        try checkQuantity(onHand, minimum: 0)
        return normalized
    }

    static func checkID(_ id: String) throws(Refusal) {
        guard Identifiers.isValidReservationID(id) else {
            throw .invalid("reservation id must be 1-\(Limits.reservationIDByteCountMax) printable ASCII characters without spaces")
        }
    }

    static func checkKey(_ key: String?) throws(Refusal) {
        guard let key else { return }
        guard Identifiers.isValidReservationID(key) else {
            throw .invalid("KEY must be 1-\(Limits.reservationIDByteCountMax) printable ASCII characters without spaces")
        }
    }

    static func checkVariant(_ v: String) throws(Refusal) {
        guard Identifiers.isValidVariant(v) else {
            throw .invalid("variant id must be 1-\(Limits.variantByteCountMax) characters of [A-Za-z0-9._:/-] and not an option word")
        }
    }

    static func warehouse(_ code: String) throws(Refusal) -> String {
        guard let normalized = Identifiers.normalizedWarehouse(code) else {
            throw .invalid("warehouse code must be 1-\(Limits.warehouseCodeByteCountMax) characters of [A-Za-z0-9_-]")
        }
        return normalized
    }

    static func checkQuantity(_ q: Quantity, minimum: Int64) throws(Refusal) {
        guard q.units >= minimum else { throw .invalid("quantity must be at least \(minimum)") }
        guard q <= Limits.quantityMax else { throw .limit("quantity may not exceed \(Limits.quantityMax)") }
    }

    static func checkTTL(_ ttl: Duration) throws(Refusal) {
        guard ttl >= Limits.ttlMin, ttl <= Limits.ttlMax else {
            throw .invalid("TTL must be between 1 and \(Limits.ttlMax.components.seconds) seconds")
        }
    }

    static func checkText(_ text: String?, _ what: String, allowEmpty: Bool = true) throws(Refusal) {
        guard let text else { return }
        guard Identifiers.isValidText(text), allowEmpty || !text.isEmpty else {
            throw .invalid("\(what) must be at most \(Limits.textByteCountMax) bytes of printable text")
        }
    }

    static func selector(_ line: LineSelector?) throws(Refusal) -> LineSelector? {
        guard var line else { return nil }
        try checkVariant(line.variant)
        line.warehouse = try warehouse(line.warehouse)
        try checkQuantity(line.quantity, minimum: 1)
        return line
    }
}

extension Refusal: Error {}
