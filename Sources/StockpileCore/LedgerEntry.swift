// The ledger: one entry per cell change, in commit order, never edited. Sequence numbers are gapless
// and increasing over all entries, and the entries of one operation are consecutive.

/// The kind of change an entry records (SPEC §7.11).
public enum EntryType: String, Sendable, Hashable, CaseIterable {
    case reserve, release, expire, fulfill, adjust, set, count, transfer, `return`, extend, confirm, warehouse,
        policy, `import`
    /// RESET: everything before it is gone (stock, reservations, keys, warehouses, policies, KPIs);
    /// the ledger's numbering goes on.
    case reset
}

public struct LedgerEntry: Hashable, Sendable {
    /// Assigned when the entry is committed; zero before.
    public var seq: UInt64
    public var time: Timestamp
    public var type: EntryType
    /// Empty for entries that touch no cell (extend, confirm, warehouse; policy keeps its variant).
    public var variant: String
    public var warehouse: String
    public var deltaOnHand: Quantity
    public var deltaReserved: Quantity
    /// The cell's figures after the change.
    public var onHand: Quantity
    public var reserved: Quantity
    public var reason: ReasonCode?
    public var note: String
    public var reference: String
    public var reservation: String
    public var actor: String

    public init(
        seq: UInt64 = 0, time: Timestamp, type: EntryType, variant: String = "", warehouse: String = "",
        deltaOnHand: Quantity = .zero, deltaReserved: Quantity = .zero, onHand: Quantity = .zero,
        reserved: Quantity = .zero, reason: ReasonCode? = nil, note: String = "", reference: String = "",
        reservation: String = "", actor: String = ""
    ) {
        self.seq = seq
        self.time = time
        self.type = type
        self.variant = variant
        self.warehouse = warehouse
        self.deltaOnHand = deltaOnHand
        self.deltaReserved = deltaReserved
        self.onHand = onHand
        self.reserved = reserved
        self.reason = reason
        self.note = note
        self.reference = reference
        self.reservation = reservation
        self.actor = actor
    }

    public var available: Quantity { onHand - reserved }
    /// True when the entry records a change of a cell (it names both a variant and a warehouse).
    public var touchesCell: Bool { !variant.isEmpty && !warehouse.isEmpty }
    public var cell: CellKey { CellKey(variant: variant, warehouse: warehouse) }
    /// The cell's figures before the change.
    public var before: CellState { CellState(onHand: onHand - deltaOnHand, reserved: reserved - deltaReserved) }
    public var after: CellState { CellState(onHand: onHand, reserved: reserved) }
}
