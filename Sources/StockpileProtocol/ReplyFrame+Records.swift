// The records of SPEC §5, §7.1, §7.9 and §7.12 as reply frames: every field name in one place, spelled
// as the SPEC spells it. Numbers are integers, booleans 1/0, times epoch milliseconds, strings bulk
// text; an optional string that is missing is empty text and a missing expiry is 0, so every record of
// a kind has the same fields and a client can read them without checking for absence.

import StockpileCore

extension ReplyFrame {
    static func integer(_ q: Quantity) -> ReplyFrame { .integer(q.units) }
    static func integer(_ n: Int) -> ReplyFrame { .integer(Int64(n)) }
    /// Sequence numbers stay far below Int64.max; clamping keeps a corrupt one from trapping a reply.
    static func integer(_ seq: UInt64) -> ReplyFrame { .integer(Int64(clamping: seq)) }
    static func boolean(_ b: Bool) -> ReplyFrame { .integer(b ? 1 : 0) }

    /// `text` with CR and LF replaced by spaces: status and error lines end at the first line break,
    /// so one inside would split the reply (Redis sanitises its error messages the same way).
    static func oneLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return text }
        return String(decoding: text.utf8.map { $0 == 0x0D || $0 == 0x0A ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    /// `-CODE message` (SPEC §5, §7.8).
    public init(_ refusal: Refusal) {
        self = .error(ReplyFrame.oneLine("\(refusal.code.name) \(refusal.message)"))
    }

    static func cellFields(_ cell: CellRecord) -> [RecordField] {
        [
            RecordField("variant", .text(cell.variant)),
            RecordField("warehouse", .text(cell.warehouse)),
            RecordField("on_hand", .integer(cell.onHand)),
            RecordField("reserved", .integer(cell.reserved)),
            RecordField("available", .integer(cell.available)),
        ]
    }

    /// A cell: `variant warehouse on_hand reserved available`.
    public init(cell: CellRecord) {
        self = .record(ReplyFrame.cellFields(cell))
    }

    /// The reply of a successful mutation (SPEC §5, §7.2).
    public init(_ reply: Reply) {
        switch reply {
        case .cell(let receipt):
            var fields = ReplyFrame.cellFields(receipt.cell)
            fields.append(RecordField("seq", .integer(receipt.seq)))
            fields.append(RecordField("shortfall", .integer(receipt.shortfall)))
            if let variance = receipt.variance { fields.append(RecordField("variance", .integer(variance))) }
            if receipt.replayed { fields.append(RecordField("replayed", .integer(1))) }
            self = .record(fields)
        case .transfer(let receipt):
            // The two entries of a transfer are consecutive, source first (SPEC §1).
            self = .array([
                ReplyFrame.transferSide(receipt.from, seq: receipt.seq, replayed: receipt.replayed),
                ReplyFrame.transferSide(receipt.to, seq: receipt.seq + 1, replayed: receipt.replayed),
            ])
        case .reservation(let record):
            self.init(reservation: record)
        case .warehouse(let warehouse, let replayed):
            self.init(warehouse, replayed: replayed)
        case .policy(let policy, let replayed):
            self.init(policy, replayed: replayed)
        }
    }

    static func transferSide(_ cell: CellRecord, seq: UInt64, replayed: Bool) -> ReplyFrame {
        var fields = cellFields(cell)
        fields.append(RecordField("seq", .integer(seq)))
        fields.append(RecordField("shortfall", .integer(cell.shortfall)))
        if replayed { fields.append(RecordField("replayed", .integer(1))) }
        return .record(fields)
    }

    /// A reservation: `id status expires_at_ms customer created_at_ms fully_shipped lines`, and
    /// `replayed 1` on a replay; each line `variant warehouse quantity fulfilled released backordered
    /// remaining`.
    public init(reservation record: ReservationRecord) {
        let r = record.reservation
        var fields = [
            RecordField("id", .text(r.id)),
            RecordField("status", .text(r.status.rawValue)),
            RecordField("expires_at_ms", .integer(r.expiresAt?.milliseconds ?? 0)),
            RecordField("customer", .text(r.customer ?? "")),
            RecordField("created_at_ms", .integer(r.createdAt.milliseconds)),
            RecordField("fully_shipped", .boolean(r.isFullyShipped)),
            RecordField("lines", .array(r.lines.map(ReplyFrame.line))),
        ]
        if record.replayed { fields.append(RecordField("replayed", .integer(1))) }
        self = .record(fields)
    }

    static func line(_ line: ReservationLine) -> ReplyFrame {
        .record([
            RecordField("variant", .text(line.variant)),
            RecordField("warehouse", .text(line.warehouse)),
            RecordField("quantity", .integer(line.quantity)),
            RecordField("fulfilled", .integer(line.fulfilled)),
            RecordField("released", .integer(line.released)),
            RecordField("backordered", .integer(line.backordered)),
            RecordField("remaining", .integer(line.remaining)),
        ])
    }

    /// `STOCK variant`: the per-warehouse cells, then the totals (warehouse `*`) (SPEC §7.12).
    public init(_ stock: VariantStock) {
        self = .array(stock.cells.map { ReplyFrame(cell: $0) } + [ReplyFrame(cell: stock.totals)])
    }

    /// `LOWSTOCK`: cell records.
    public init(lowStock cells: [CellRecord]) {
        self = .array(cells.map { ReplyFrame(cell: $0) })
    }

    /// `BACKORDERS`: `reservation variant warehouse quantity remaining backordered` (SPEC §7.9).
    public init(_ backorders: [BackorderLine]) {
        self = .array(
            backorders.map { b in
                .record([
                    RecordField("reservation", .text(b.reservation)),
                    RecordField("variant", .text(b.variant)),
                    RecordField("warehouse", .text(b.warehouse)),
                    RecordField("quantity", .integer(b.quantity)),
                    RecordField("remaining", .integer(b.remaining)),
                    RecordField("backordered", .integer(b.backordered)),
                ])
            })
    }

    /// `HISTORY` and `EVENTS`: ledger entries with the event field names (SPEC §5, §7.11), and
    /// `shortfall` when the entry left reserved above on_hand, as the event stream does.
    public init(entries: [LedgerEntry]) {
        self = .array(entries.map(ReplyFrame.entry))
    }

    static func entry(_ e: LedgerEntry) -> ReplyFrame {
        var fields = [
            RecordField("seq", .integer(e.seq)),
            RecordField("time_ms", .integer(e.time.milliseconds)),
            RecordField("type", .text(e.type.rawValue)),
            RecordField("variant", .text(e.variant)),
            RecordField("warehouse", .text(e.warehouse)),
            RecordField("delta_on_hand", .integer(e.deltaOnHand)),
            RecordField("delta_reserved", .integer(e.deltaReserved)),
            RecordField("on_hand", .integer(e.onHand)),
            RecordField("reserved", .integer(e.reserved)),
            RecordField("available", .integer(e.available)),
            RecordField("reason", .text(e.reason?.rawValue ?? "")),
            RecordField("note", .text(e.note)),
            RecordField("ref", .text(e.reference)),
            RecordField("reservation", .text(e.reservation)),
            RecordField("actor", .text(e.actor)),
        ]
        if e.reserved > e.onHand { fields.append(RecordField("shortfall", .integer(e.reserved - e.onHand))) }
        return .record(fields)
    }

    /// A warehouse: `code name address priority active` (SPEC §7.12), plus `replayed 1` on a KEY retry.
    public init(_ warehouse: Warehouse, replayed: Bool = false) {
        var fields = [
            RecordField("code", .text(warehouse.code)),
            RecordField("name", .text(warehouse.name)),
            RecordField("address", .text(warehouse.address)),
            RecordField("priority", .integer(warehouse.priority)),
            RecordField("active", .boolean(warehouse.active)),
        ]
        if replayed { fields.append(RecordField("replayed", .integer(1))) }
        self = .record(fields)
    }

    /// `WAREHOUSE LIST`: warehouse records, in the order given.
    public init(warehouses: [Warehouse]) {
        self = .array(warehouses.map { ReplyFrame($0) })
    }

    /// A variant's policy: `variant backorder unlimited low_stock` (SPEC §7.12), plus `replayed 1` on a KEY retry.
    public init(_ policy: VariantPolicy, replayed: Bool = false) {
        var fields = [
            RecordField("variant", .text(policy.variant)),
            RecordField("backorder", .boolean(policy.backorder)),
            RecordField("unlimited", .boolean(policy.unlimited)),
            RecordField("low_stock", .integer(policy.lowStock)),
        ]
        if replayed { fields.append(RecordField("replayed", .integer(1))) }
        self = .record(fields)
    }

    /// STATS (SPEC §6, §7.12): the figures, then `adjusted_<reason>` for every reason code (the
    /// adjustment trend) and `refused_<code>` for every refusal code, each present even when zero so a
    /// dashboard sees a fixed set of fields.
    public init(_ stats: Stats) {
        var fields = [
            RecordField("cells", .integer(stats.cells)),
            RecordField("warehouses", .integer(stats.warehouses)),
            RecordField("variants", .integer(stats.variants)),
            RecordField("on_hand", .integer(stats.onHand)),
            RecordField("reserved", .integer(stats.reserved)),
            RecordField("available", .integer(stats.available)),
            RecordField("low_stock", .integer(stats.lowStock)),
            RecordField("active_reservations", .integer(stats.activeReservations)),
            RecordField("units_reserved", .integer(stats.counters.unitsReserved)),
            RecordField("units_fulfilled", .integer(stats.counters.unitsFulfilled)),
            RecordField("units_released", .integer(stats.counters.unitsReleased)),
            RecordField("units_expired", .integer(stats.counters.unitsExpired)),
            RecordField("stockouts", .integer(stats.counters.stockouts)),
            RecordField("accuracy", .integer(stats.accuracyBasisPoints)),
            RecordField("shrinkage", .integer(stats.counters.shrinkage)),
        ]
        fields.reserveCapacity(fields.count + ReasonCode.allCases.count + RefusalCode.allCases.count)
        for reason in ReasonCode.allCases {
            fields.append(RecordField("adjusted_\(reason.rawValue)", .integer(stats.counters.adjustedByReason[reason] ?? .zero)))
        }
        for code in RefusalCode.allCases {
            fields.append(RecordField("refused_\(code.name.lowercased())", .integer(stats.refused[code] ?? 0)))
        }
        self = .record(fields)
    }
}
