// The open-addressing index `IDTable` and `CellTable` find their entries through: a power-of-two
// count of 8-byte slots, each 0 (empty) or the high 32 bits of its entry's 64-bit hash (the tag) with
// the entry's position + 1 in the low 32; linear probing. An entry's home slot is the top bits of its
// hash, which its tag holds, so the index is rebuilt from its own slots, without reading an entry or
// hashing a name again; and doubling it maps the slot order onto itself (home h becomes 2h or
// 2h + 1), so growing reads the old index in order and writes the new one nearly in order. With
// homes taken from the low bits, growing read every entry for its hash and wrote the new index at
// random: a cache miss per entry, for tables of millions (a replay of a long log grows them all the
// way).

import CStockpileLinux

/// When a table of open-addressing slots (`IDTable`'s index, the directory's `ShardSlots`) gives
/// room back as it empties: once at most an eighth of its slots are used (and it has more than
/// 1,024), it moves into slots a quarter full. It doubles again only after its count has doubled and
/// halves again only after its count has halved, so each move is paid for by as many changes.
/// Without it a table kept the room of its peak for good (the reservations of a flash sale,
/// forgotten a day later, left 16 to 32 bytes each behind).
enum SlotRoom {
    /// The slot count to move into after a removal left `count` in `slotCount`; nil to stay.
    @inline(__always) static func shrunk(count: Int, slotCount: Int) -> Int? {
        guard slotCount > 1024, count &* 8 <= slotCount else { return nil }
        var capacity = 16
        while capacity < count &* 4 { capacity &*= 2 }
        return capacity
    }
}

struct TaggedIndex: Sendable {
    private(set) var slots: [UInt64] = []
    /// 64 − log2(slot count): a hash's home slot is `hash >> shift` (64 while there are no slots).
    private var shift: UInt64 = 64

    static var tagMask: UInt64 { 0xFFFF_FFFF_0000_0000 }
    static var positionMask: UInt64 { 0xFFFF_FFFF }

    @inline(__always) static func tag(_ hash: UInt64) -> UInt64 { hash & tagMask }

    /// The position a non-empty slot holds.
    @inline(__always) static func position(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & positionMask) &- 1 }

    var isEmpty: Bool { slots.isEmpty }
    var count: Int { slots.count }
    @inline(__always) var mask: Int { slots.count &- 1 }

    /// The home slot of `hash`, or of the entry a slot holds (its tag is its hash's top bits).
    @inline(__always) func home(_ hash: UInt64) -> Int { Self.home(of: hash, shift: shift) }

    /// The home slot of `hash` in an index of 2^(64 − `shift`) slots.
    @inline(__always) static func home(of hash: UInt64, shift: UInt64) -> Int { Int(truncatingIfNeeded: hash >> shift) }

    @inline(__always) subscript(i: Int) -> UInt64 {
        get { slots[i] }
        set { slots[i] = newValue }
    }

    /// Walks the probe path of `hash` from its home: the slot of the first entry whose tag is the
    /// hash's and whose position `matches` (found), or else the empty slot that ends the path (not
    /// found: where an entry with this hash would go). The index must have slots.
    @inline(__always) func probe(hash: UInt64, matches: (Int) -> Bool) -> (slot: Int, found: Bool) {
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
    @inline(__always) mutating func place(position p: Int, hash: UInt64) {
        place(Self.tag(hash) | UInt64(p &+ 1))
    }

    @inline(__always) private mutating func place(_ slot: UInt64) {
        let mask = self.mask
        var i = home(slot)
        while slots[i] != 0 { i = (i &+ 1) & mask }
        slots[i] = slot
    }

    /// Makes it `capacity` slots (a power of two, from 16 to 2^32, more than it holds) and places
    /// every entry again, in the order of the slots it leaves.
    mutating func resize(to capacity: Int) {
        precondition(capacity.nonzeroBitCount == 1 && capacity >= 16 && capacity <= 1 << 32, "a power of two from 16 to 2^32 slots")
        let old = slots
        slots = Array(repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        for i in 0..<old.count where old[i] != 0 { place(old[i]) }
    }

    mutating func removeAll() {
        slots.removeAll()
        shift = 64
    }

    /// Asks the processor to bring in the home slot of `hash`.
    @inline(__always) func prefetch(hash: UInt64) {
        guard !slots.isEmpty else { return }
        let i = home(hash)
        slots.withUnsafeBufferPointer { stockpile_prefetch($0.baseAddress! + i) }
    }
}

/// Where element `i` of chunk `c` of `chunks` lies (the chunked entries of `CellTable` and `IDTable`),
/// for a hint: the chunk's storage is read as the address its array holds, not as the array, which
/// reading would retain, writing its header, a line the other core's requests write too (a twentieth
/// of `spread`'s time with the release). The elements follow the array storage's 32-byte header
/// (64-bit: the object header, the count and the capacity). `i` may be past the chunk's count (the
/// next element's place); the caller checks that `c` is a chunk.
@inline(__always) func chunkElementAddress<Element>(_ chunks: [[Element]], chunk c: Int, element i: Int) -> UnsafeRawPointer {
    chunks.withUnsafeBufferPointer { outer in
        UnsafeRawPointer(outer.baseAddress! + c).load(as: UnsafeRawPointer.self) + 32 + i * MemoryLayout<Element>.stride
    }
}
