// Typed entry points for an embedding order service: each builds the `Command` and unwraps the reply
// to the type that command answers with. Same semantics as `execute` (and as the wire).

import StockpileCore

extension Outcome where Value == Reply {
    fileprivate var reservation: Outcome<ReservationRecord> {
        map { if case .reservation(let r) = $0 { return r }; preconditionFailure("reply \($0) is not a reservation") }
    }
    fileprivate var cell: Outcome<CellReceipt> {
        map { if case .cell(let c) = $0 { return c }; preconditionFailure("reply \($0) is not a cell receipt") }
    }
}

extension Engine {
    /// Reserves stock for `request` (all lines or none). A retry with the same id and request replays.
    public func reserve(_ request: ReserveRequest, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.reserve(request), actor: actor).reservation
    }

    /// Moves a hold's expiry to now + `ttl`. A retry with the same `key` replays instead of moving it again.
    public func extend(_ id: String, ttl: Duration, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.extend(id: id, ttl: ttl, key: key), actor: actor).reservation
    }

    /// Drops a hold's expiry: it becomes an order reservation. A retry with the same `key` replays.
    public func confirm(_ id: String, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.confirm(id: id, key: key), actor: actor).reservation
    }

    /// Releases everything that remains, or part of one line.
    public func release(_ id: String, line: LineSelector? = nil, reason: ReasonCode? = nil, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.release(id: id, line: line, reason: reason, key: key), actor: actor).reservation
    }

    /// Ships everything that remains, or part of one line (a partial shipment).
    public func fulfill(_ id: String, line: LineSelector? = nil, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.fulfill(id: id, line: line, key: key), actor: actor).reservation
    }

    public func adjust(
        variant: String, warehouse: String, by delta: Quantity, reason: ReasonCode, note: String? = nil, reference: String? = nil,
        key: String? = nil, actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.adjust(variant: variant, warehouse: warehouse, delta: delta, reason: reason, note: note, reference: reference, key: key), actor: actor).cell
    }

    /// Sets on_hand; with `ifOnHand`, only when on_hand is that value (compare-and-set).
    public func setQuantity(
        variant: String, warehouse: String, to quantity: Quantity, reason: ReasonCode, ifOnHand: Quantity? = nil, key: String? = nil,
        actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.setQuantity(variant: variant, warehouse: warehouse, quantity: quantity, reason: reason, ifOnHand: ifOnHand, key: key), actor: actor).cell
    }

    /// A cycle count: sets on_hand to what was counted and records the variance.
    public func count(variant: String, warehouse: String, counted: Quantity, note: String? = nil, key: String? = nil, actor: String = "") async -> Outcome<CellReceipt> {
        await execute(.count(variant: variant, warehouse: warehouse, counted: counted, note: note, key: key), actor: actor).cell
    }

    public func transfer(
        variant: String, from: String, to: String, quantity: Quantity, note: String? = nil, key: String? = nil, actor: String = ""
    ) async -> Outcome<TransferReceipt> {
        await execute(.transfer(variant: variant, from: from, to: to, quantity: quantity, note: note, key: key), actor: actor).map {
            if case .transfer(let t) = $0 { return t }
            preconditionFailure("reply \($0) is not a transfer receipt")
        }
    }

    /// Goods coming back: restocked (on_hand grows) or recorded as damaged.
    public func returnStock(
        variant: String, warehouse: String, quantity: Quantity, disposition: ReturnDisposition, reference: String? = nil,
        key: String? = nil, actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.returnStock(variant: variant, warehouse: warehouse, quantity: quantity, disposition: disposition, reference: reference, key: key), actor: actor).cell
    }

    /// Creates or changes a warehouse. A retry with the same `key` replays.
    public func setWarehouse(_ change: WarehouseChange, key: String? = nil, actor: String = "") async -> Outcome<Warehouse> {
        await execute(.setWarehouse(change, key: key), actor: actor).map {
            if case .warehouse(let w, _) = $0 { return w }
            preconditionFailure("reply \($0) is not a warehouse")
        }
    }

    /// Changes a variant's policy. A retry with the same `key` replays.
    public func setPolicy(_ change: PolicyChange, key: String? = nil, actor: String = "") async -> Outcome<VariantPolicy> {
        await execute(.setPolicy(change, key: key), actor: actor).map {
            if case .policy(let p, _) = $0 { return p }
            preconditionFailure("reply \($0) is not a policy")
        }
    }
}

extension Engine {
    /// Loads stock from outside (a seed file, an import): each row's on_hand becomes its figure,
    /// logged as type and reason `import`; reservations are untouched. Every row's warehouse must
    /// exist: one that does not refuses the whole load (NOTFOUND naming its line) and changes nothing.
    /// Returns the number of rows applied once all are durable. Cost: one operation per row, and one
    /// wait for the log at the end (not one per row, so a million rows load in seconds).
    public func importStock(_ rows: [StockRow], actor: String = "import") async -> Outcome<Int> {
        let known = Set(warehouses().map(\.code))
        if let row = rows.first(where: { !known.contains($0.warehouse) }) {
            return .refused(Refusal(.notFound, "line \(row.line): warehouse \(row.warehouse) does not exist"))
        }
        for row in rows {
            let command = Command.importStock(variant: row.variant, warehouse: row.warehouse, onHand: row.onHand)
            if case .refused(let r) = await executeDeferringDurability(command, actor: actor) {
                _ = await waitUntilDurable()
                return .refused(Refusal(r.code, "line \(row.line): \(r.message)"))
            }
        }
        if let failure = await waitUntilDurable() { return .refused(failure) }
        return .ok(rows.count)
    }
}
