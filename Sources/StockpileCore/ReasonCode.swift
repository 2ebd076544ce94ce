// The fixed set of reason codes (SPEC §2), with stable spellings. Free text goes in a note, never here.

public enum ReasonCode: String, Sendable, CaseIterable, Hashable {
    case received, returned, damaged, lost, found, correction, count, transfer, `import`, expired, cancelled, other

    /// Parses a reason as written on the wire (case-insensitive).
    public init?(parsing text: String) {
        self.init(rawValue: text.lowercased())
    }

    /// The sign an ADJUST with this reason must have (SPEC §7.10): +1 adds, -1 removes, 0 either way,
    /// nil when the reason is written only by the engine and not accepted on ADJUST.
    public var adjustSign: Int? {
        switch self {
        case .received, .returned, .found: return 1
        case .damaged, .lost: return -1
        case .correction, .other: return 0
        case .count, .transfer, .import, .expired, .cancelled: return nil
        }
    }
}

/// What happens to returned goods: back on the shelf, or recorded as damaged (a ledger entry only).
public enum ReturnDisposition: String, Sendable, Hashable {
    case restock, damaged
}

/// How a `*` line is placed (SPEC §2): the first warehouse by priority that can take the whole line,
/// the one with the most available, or filled across warehouses in priority order.
public enum PlacementStrategy: String, Sendable, Hashable, CaseIterable {
    case priority, most, split
}
