// The open-addressing index the engine's tables (`IDTable`, `CellTable`) and a log segment's numbers
// of its cells (`SegmentNames`) find their entries through: a power-of-two count of 8-byte slots, each
// 0 (empty) or the high 32 bits of its entry's 64-bit hash (the tag) with the entry's position + 1 in
// the low 32; linear probing. An entry's home slot is the top bits of its hash, which its tag holds,
// so the index is rebuilt from its own slots, without reading an entry or hashing a name again; and
// doubling it maps the slot order onto itself (home h becomes 2h or 2h + 1), so growing reads the old
// index in order and writes the new one nearly in order. With homes taken from the low bits, growing
// read every entry for its hash and wrote the new index at random: a cache miss per entry, for tables
// of millions (a replay of a long log grows them all the way). Its owner decides when it grows (at
// most half full, so that a probe ends at an empty slot) and compares names (`probe`'s `matches`).

/// Public only to the package's own modules, through `@_spi(Tables) import StockpileCore`: the
/// engine's tables and the log's segments share it, and its methods must be inlinable across modules,
/// which `package` declarations were not here (each probe became a call, and so did its `matches`).
@_spi(Tables) public struct TaggedIndex: Sendable {
    /// Changed only by the methods below (public so that they inline into their callers).
    public var slots: [UInt64] = []
    /// 64 − log2(slot count): a hash's home slot is `hash >> shift` (64 while there are no slots).
    public var shift: UInt64 = 64

    @inlinable public init() {}

    @inlinable public static var tagMask: UInt64 { 0xFFFF_FFFF_0000_0000 }
    @inlinable public static var positionMask: UInt64 { 0xFFFF_FFFF }

    @inlinable @inline(__always) public static func tag(_ hash: UInt64) -> UInt64 { hash & tagMask }

    /// The position a non-empty slot holds.
    @inlinable @inline(__always) public static func position(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & positionMask) &- 1 }

    /// The fewest slots, a power of two and at least `minimum` (a power of two), that hold `count`
    /// entries at most half full: what an owner resizes to when it grows.
    @inlinable public static func slotCount(holding count: Int, atLeast minimum: Int = 16) -> Int {
        var capacity = minimum
        while capacity < count &* 2 { capacity &*= 2 }
        return capacity
    }

    @inlinable public var isEmpty: Bool { slots.isEmpty }
    @inlinable public var count: Int { slots.count }
    @inlinable @inline(__always) public var mask: Int { slots.count &- 1 }

    /// The home slot of `hash`, or of the entry a slot holds (its tag is its hash's top bits).
    @inlinable @inline(__always) public func home(_ hash: UInt64) -> Int { Self.home(of: hash, shift: shift) }

    /// The home slot of `hash` in an index of 2^(64 − `shift`) slots.
    @inlinable @inline(__always) public static func home(of hash: UInt64, shift: UInt64) -> Int { Int(truncatingIfNeeded: hash >> shift) }

    @inlinable @inline(__always) public subscript(i: Int) -> UInt64 {
        get { slots[i] }
        set { slots[i] = newValue }
    }

    /// Walks the probe path of `hash` from its home: the slot of the first entry whose tag is the
    /// hash's and whose position `matches` (found), or else the empty slot that ends the path (not
    /// found: where an entry with this hash would go). The index must have slots.
    @inlinable @inline(__always) public func probe(hash: UInt64, matches: (Int) -> Bool) -> (slot: Int, found: Bool) {
        let mask = self.mask
        let tag = Self.tag(hash)
        var i = home(hash)
        while true {
            let v = slots[i]
            if v == 0 { return (i, false) }
            if v & Self.tagMask == tag && matches(Self.position(v)) { return (i, true) }
            i = (i &+ 1) & mask
        }
    }

    /// Puts the entry at `position`, hashed `hash`, in the first empty slot from its home.
    @inlinable @inline(__always) public mutating func place(position p: Int, hash: UInt64) {
        place(Self.tag(hash) | UInt64(p &+ 1))
    }

    @inlinable @inline(__always) mutating func place(_ slot: UInt64) {
        let mask = self.mask
        var i = home(slot)
        while slots[i] != 0 { i = (i &+ 1) & mask }
        slots[i] = slot
    }

    /// Makes it `capacity` slots (a power of two, from 16 to 2^32, more than it holds) and places
    /// every entry again, in the order of the slots it leaves.
    @inlinable public mutating func resize(to capacity: Int) {
        precondition(capacity.nonzeroBitCount == 1 && capacity >= 16 && capacity <= 1 << 32, "a power of two from 16 to 2^32 slots")
        let old = slots
        slots = Array(repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        for i in 0..<old.count where old[i] != 0 { place(old[i]) }
    }

    @inlinable public mutating func removeAll() {
        slots.removeAll()
        shift = 64
    }
}
