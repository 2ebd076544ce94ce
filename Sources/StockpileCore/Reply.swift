// What a successful operation answers. Replies are built from the committed entries, so a reply can
// never show figures that differ from what the ledger recorded.

/// A cell after a physical change, with the sequence number of the entry that recorded it.
public struct CellReceipt: Hashable, Sendable {
    public var cell: CellRecord
    public var seq: UInt64
    /// reserved − on_hand when a physical loss took on_hand below what is reserved; zero otherwise.
    public var shortfall: Quantity
    /// COUNT only: counted − on_hand before the count.
    public var variance: Quantity?
    public var replayed: Bool

    public init(cell: CellRecord, seq: UInt64, shortfall: Quantity, variance: Quantity? = nil, replayed: Bool = false) {
        self.cell = cell
        self.seq = seq
        self.shortfall = shortfall
        self.variance = variance
        self.replayed = replayed
    }
}

/// Both cells of a transfer, source first, and the sequence number of the first of its two entries.
public struct TransferReceipt: Hashable, Sendable {
    public var from: CellRecord
    public var to: CellRecord
    public var seq: UInt64
    public var replayed: Bool

    public init(from: CellRecord, to: CellRecord, seq: UInt64, replayed: Bool = false) {
        self.from = from
        self.to = to
        self.seq = seq
        self.replayed = replayed
    }
}

public enum Reply: Hashable, Sendable {
    case reservation(ReservationRecord)
    case cell(CellReceipt)
    case transfer(TransferReceipt)
    /// A warehouse or a policy as WAREHOUSE SET / POLICY SET left it; `replayed` on a KEY retry.
    case warehouse(Warehouse, replayed: Bool = false)
    case policy(VariantPolicy, replayed: Bool = false)

    /// The same reply, marked as the replay of an earlier request.
    public var markedReplayed: Reply {
        switch self {
        case .reservation(var r): r.replayed = true; return .reservation(r)
        case .cell(var c): c.replayed = true; return .cell(c)
        case .transfer(var t): t.replayed = true; return .transfer(t)
        case .warehouse(let w, _): return .warehouse(w, replayed: true)
        case .policy(let p, _): return .policy(p, replayed: true)
        }
    }
}

/// How the reply of a commit is formed once its entries have sequence numbers.
public enum ReplyShape: Hashable, Sendable {
    case reservation
    case cell(variance: Quantity?)
    case transfer
    case warehouse
    case policy
}
