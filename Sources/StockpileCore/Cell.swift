// A stock cell: the on-hand and reserved figures of one (variant, warehouse). Both are never negative
// (invariant 1); available = on_hand − reserved may be, for backorders and physical losses (invariant 3).

/// The address of a cell. The warehouse code is the stored upper-case form.
public struct CellKey: Hashable, Sendable, Comparable {
    public var variant: String
    public var warehouse: String

    @inlinable public init(variant: String, warehouse: String) {
        self.variant = variant
        self.warehouse = warehouse
    }

    public static func < (a: CellKey, b: CellKey) -> Bool {
        a.variant != b.variant ? a.variant < b.variant : a.warehouse < b.warehouse
    }

    /// FNV-1a over the variant, a 0xFF separator (never a byte of a name) and the warehouse: the same
    /// in every process, so shard routing, the shards' cell tables and the stock file's duplicate
    /// check all hash a cell this one way.
    @inlinable public var stableHash: UInt64 {
        FNV1a.hash(warehouse, from: (FNV1a.hash(variant) ^ 0xFF) &* FNV1a.prime)
    }

    /// The hash a shard's cell table files a cell under: `stable` (its `stableHash`) finished with
    /// MurmurHash3's 64-bit finaliser, so that every bit depends on every byte (the table's slot bits
    /// must not repeat the bits that chose the shard).
    @inlinable public static func tableHash(stable: UInt64) -> UInt64 {
        var h = stable
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}

/// 64-bit FNV-1a over a string's UTF-8 bytes: cheap and the same in every process (unlike `Hasher`,
/// which is seeded per process), for spreading names over shards, lock stripes and table slots.
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x100_0000_01b3

    @inlinable public static func hash(_ text: String, from start: UInt64 = offsetBasis) -> UInt64 {
        // Over the string's bytes in one buffer (a small string's are copied to the stack): walking
        // the UTF-8 view checks the string's form at every byte, several times the multiply's cost.
        if let h = text.utf8.withContiguousStorageIfAvailable({ hash($0, from: start) }) { return h }
        var h = start
        for b in text.utf8 { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    @inlinable static func hash(_ bytes: UnsafeBufferPointer<UInt8>, from start: UInt64) -> UInt64 {
        var h = start
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }
}

/// The figures of a cell. A cell never used reads as zeros.
public struct CellState: Hashable, Sendable {
    public var onHand: Quantity
    public var reserved: Quantity

    @inlinable public init(onHand: Quantity = .zero, reserved: Quantity = .zero) {
        self.onHand = onHand
        self.reserved = reserved
    }

    @inlinable public var available: Quantity { onHand - reserved }
    /// How far a physical loss took on_hand below what is reserved (SPEC §7.10); zero when it did not.
    @inlinable public var shortfall: Quantity { (reserved - onHand).clampedAtZero }

    public static let empty = CellState()
}

/// A cell as queries report it.
public struct CellRecord: Hashable, Sendable {
    public var variant: String
    public var warehouse: String
    public var onHand: Quantity
    public var reserved: Quantity
    public var available: Quantity { onHand - reserved }
    /// As `CellState.shortfall`.
    public var shortfall: Quantity { (reserved - onHand).clampedAtZero }

    public init(key: CellKey, state: CellState) {
        self.variant = key.variant
        self.warehouse = key.warehouse
        self.onHand = state.onHand
        self.reserved = state.reserved
    }

    public init(variant: String, warehouse: String, onHand: Quantity, reserved: Quantity) {
        self.variant = variant
        self.warehouse = warehouse
        self.onHand = onHand
        self.reserved = reserved
    }
}
