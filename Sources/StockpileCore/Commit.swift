// A commit is the one self-contained record of everything an operation changed: the ledger entries
// (each carrying the cell's figures after the change), the reservation, warehouse or policy as they
// are afterwards, and the keyed command. Applying commits in sequence order from empty rebuilds the
// state exactly; this is what the write-ahead log stores and what replay applies.

public struct Commit: Hashable, Sendable {
    public var time: Timestamp
    /// One per cell change (and one for a change that touches no cell); sequence numbers are assigned
    /// by the ledger when the commit is appended.
    public var entries: [LedgerEntry]
    public var reservation: Reservation?
    public var warehouse: Warehouse?
    public var policy: VariantPolicy?
    public var replyShape: ReplyShape
    /// The command, when it carried an idempotency key: a retry with that key gets this commit's reply.
    public var keyedCommand: Command?
    /// Where the ledger handed it to the log: not part of what it is (see `LogPosition`).
    public var logged = LogPosition()

    public init(
        time: Timestamp, entries: [LedgerEntry], reservation: Reservation? = nil, warehouse: Warehouse? = nil,
        policy: VariantPolicy? = nil, replyShape: ReplyShape, keyedCommand: Command? = nil
    ) {
        self.time = time
        self.entries = entries
        self.reservation = reservation
        self.warehouse = warehouse
        self.policy = policy
        self.replyShape = replyShape
        self.keyedCommand = keyedCommand
    }

    public var firstSeq: UInt64 { entries.first?.seq ?? 0 }

    /// Whether this is a RESET (its one entry is of type `reset`): every shard starts over from it.
    public var isReset: Bool { entries.first?.type == .reset }

    /// The reply this commit answers with (valid once sequence numbers are assigned).
    public func reply() -> Reply {
        switch replyShape {
        case .reservation:
            return .reservation(ReservationRecord(reservation!))
        case .cell(let variance):
            let e = entries[0]
            return .cell(CellReceipt(cell: CellRecord(key: e.cell, state: e.after), seq: e.seq, shortfall: e.after.shortfall, variance: variance))
        case .transfer:
            let (a, b) = (entries[0], entries[1])
            return .transfer(TransferReceipt(from: CellRecord(key: a.cell, state: a.after), to: CellRecord(key: b.cell, state: b.after), seq: a.seq))
        case .warehouse:
            return .warehouse(warehouse!)
        case .policy:
            return .policy(policy!)
        }
    }
}

/// What the rules decide for one request.
public enum Decision: Hashable, Sendable {
    /// Apply this commit.
    case commit(Commit)
    /// Nothing to change; answer with this (a release or fulfilment of a reservation with nothing left).
    case unchanged(Reply)
    case refused(Refusal)
}

/// The LSN of the log record a commit went out in (0 when it was not logged: an engine without a log,
/// a commit not yet numbered, one decoded from the log). A KEY remembers it to read its reply back.
/// It says where a commit was written, not what it is: two commits that differ only here are equal,
/// so a commit decoded from its record equals the one that was written.
public struct LogPosition: Hashable, Sendable {
    public var lsn: UInt64 = 0

    public init(lsn: UInt64 = 0) { self.lsn = lsn }

    public static func == (a: LogPosition, b: LogPosition) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}
}
