// A table from names (reservation ids, idempotency keys) to values, for the hot path: the caller hashes
// a name once per request and passes the hash however often it looks the name up; the index keeps the
// top 32 bits of each entry's hash as its tag, which a probe compares before it compares a name, and
// from which growing the table finds each entry's home without hashing a name again. An entry is its
// name and value alone: what needs a whole hash again hashes the name (a removal, for the entry moved
// into the gap; `keys(withHash:)`, for each name whose tag matches; a rebuild; the invariant check).
// (The tag's top bits are the home slot's, so it tells apart two names of the same home by its
// other bits: 8 of them at 2^24 slots, which leaves a name compare at one probe in a few hundred.)
// A Swift Dictionary does none of these: it hashes the name on every lookup and insert, compares the
// whole name at every occupied bucket it probes (a `memcmp` for ids longer than 15 bytes), and hashes
// every name again each time it grows.
//
// The hash is `String.hashValue`: Swift's SipHash, seeded per process, so a client cannot choose ids
// that collide (as it could with a fixed hash such as FNV-1a, which would turn every probe into a
// scan). Entries are dense, in chunks of 512 (a removal moves the last entry into the gap; growing
// adds a chunk and never moves an entry, so a table of large entries grows without copying), found through
// one open-addressing index (`TaggedIndex`) with linear probing and backward-shift deletion, so no
// tombstones build up. It keeps true: every entry is in the index exactly once, at a slot on the
// probe path from its hash's home; the index is at most half full, so a probe ends at an empty slot.

import CStockpileLinux
@_spi(Tables) import StockpileCore
import Synchronization

struct IDTable<Value>: Sequence {
    /// An entry keeps no hash: its index slot's tag has the top 32 bits, which a probe compares
    /// before it compares the names, and which say the entry's home when the index grows. (8 bytes
    /// more per reservation, per id in the directory and per KEY, when it kept the whole hash.)
    struct Entry {
        let key: String
        var value: Value
    }

    private static var chunkShift: Int { 9 }
    private static var chunkMask: Int { (1 << chunkShift) &- 1 }
    private var chunks: [[Entry]] = []
    private(set) var count = 0
    /// The count is a power of two (or 0 before the first entry).
    private var index = TaggedIndex()
    /// Where the table publishes its index's `IndexHint` each time the index moves (`IndexHintCell`),
    /// when its owner wants prefetches that take no lock.
    var hintCell: IndexHintCell?

    /// A name's hash (`String.hashValue`) as the index takes it.
    @inline(__always) private static func bits(_ hash: Int) -> UInt64 { UInt64(UInt(bitPattern: hash)) }

    var isEmpty: Bool { count == 0 }

    /// Every entry, in position order.
    var entries: FlattenSequence<[[Entry]]> { chunks.joined() }

    /// The entry at position `p` (`0..<count`; a removal moves the last entry into its gap).
    func entry(at p: Int) -> Entry { chunks[p >> Self.chunkShift][p & Self.chunkMask] }

    /// The slot of the index that holds `key`, or nil.
    @inline(__always) private func slot(of key: String, hash: Int) -> Int? {
        guard !index.isEmpty else { return nil }
        let (s, found) = index.probe(hash: Self.bits(hash)) { isEntry($0, key: key) }
        return found ? s : nil
    }

    /// Whether the entry at `p`, whose tag is `key`'s, is `key`'s (read without copying the entry,
    /// whose value may be large and hold references).
    @inline(__always) private func isEntry(_ p: Int, key: String) -> Bool {
        chunks[p >> Self.chunkShift][p & Self.chunkMask].key == key
    }

    @inline(__always) private func position(atSlot s: Int) -> Int { TaggedIndex.position(index[s]) }

    /// Asks the processor to bring in the index slot where a probe for `hash` starts, for a caller
    /// that knows its next names ahead: a probe for a name that is not there usually reads only that
    /// slot. Mutating only so that a call on a class's stored table borrows it in place instead of
    /// retaining its arrays; it changes nothing.
    @inline(__always) mutating func prefetch(hash: Int) { index.prefetch(hash: Self.bits(hash)) }

    /// Asks the processor for the line the next entry will be written to (a hint for a caller that
    /// is about to insert: the line is a cache miss, written long before, if ever). Mutating for the
    /// reason `prefetch(hash:)` is. An address past the chunk's capacity is still only a hint: a
    /// prefetch never faults.
    @inline(__always) mutating func prefetchNextEntry() {
        let c = count >> Self.chunkShift
        guard c < chunks.count else { return }
        stockpile_prefetch(chunkElementAddress(chunks, chunk: c, element: count & Self.chunkMask))
    }

    /// Asks the processor for the entry at position `p` (`0..<count`), which will only be read: a hint
    /// for a caller that walks entries in an order of its own (a snapshot's, by name).
    @inline(__always) func prefetchEntry(at p: Int) {
        guard p < count else { return }
        stockpile_prefetch_read(chunkElementAddress(chunks, chunk: p >> Self.chunkShift, element: p & Self.chunkMask))
    }

    /// Asks the processor for the first bytes of the key at position `p` (`0..<count`) when its string
    /// keeps them in an object of its own (more than 15 bytes), for a caller that asked for the entry
    /// earlier. Read through the string, the key would be retained, and the retain would wait for the
    /// object's line, the very miss being asked about; so the object's address is read from the
    /// string's bits as the standard library lays them out on 64-bit platforms: its second word holds
    /// the address in its low 56 bits and, in bit 61, whether the string is small (its bytes then in
    /// the entry), and the bytes begin 32 past the address. A prefetch never faults, so were that
    /// layout ever different, the cost would be a hint for the wrong line, never a wrong result.
    @inline(__always) func prefetchKeyBytes(at p: Int) {
        guard p < count, let keyOffset = MemoryLayout<Entry>.offset(of: \Entry.key) else { return }
        let entry = chunkElementAddress(chunks, chunk: p >> Self.chunkShift, element: p & Self.chunkMask)
        let objectBits = entry.load(fromByteOffset: keyOffset + 8, as: UInt64.self)
        guard objectBits & (1 << 61) == 0, let bytes = UnsafeRawPointer(bitPattern: UInt(objectBits & 0x00FF_FFFF_FFFF_FFFF) &+ 32) else { return }
        stockpile_prefetch_read(bytes)
    }

    /// Calls `body` with the key (as UTF-8 bytes) and the entry at position `p` (`0..<count`), read
    /// where the table keeps it: nothing is copied (a copy is a retain and a release of each reference
    /// it holds, at each of the millions of entries a snapshot's walk reads). The pointer is valid
    /// only inside `body`.
    @inline(__always) func withEntryInPlace<R, E: Error>(
        at p: Int, _ body: (_ key: UnsafeRawBufferPointer, _ entry: UnsafePointer<Entry>) throws(E) -> R
    ) throws(E) -> R {
        precondition(p >= 0 && p < count, "a position of the table")
        let entry = chunkElementAddress(chunks, chunk: p >> Self.chunkShift, element: p & Self.chunkMask).assumingMemoryBound(to: Entry.self)
        return try withUTF8Bytes(of: entry.pointee.key) { (key) throws(E) -> R in try body(key, entry) }
    }

    /// The value at position `p` (`0..<count`), read in place: no copy of the entry's key.
    @inline(__always) func value(at p: Int) -> Value { chunks[p >> Self.chunkShift][p & Self.chunkMask].value }

    /// The keys whose hash is `hash`: those on its probe path whose tag is its tag, hashed again to
    /// tell the whole hash (for a caller that kept only the hash; usually one key, or none).
    /// `lowMask`: bits of the hash left out of the comparison, below the 32 of the index's tag (the
    /// directory's tags leave out the low 7).
    func keys(withHash hash: Int, ignoring lowMask: UInt64 = 0) -> [String] {
        guard !index.isEmpty else { return [] }
        precondition(lowMask & TaggedIndex.tagMask == 0, "the index's tag is compared whole")
        var found: [String] = []
        // The probe walks the whole path: every candidate is noted and none is taken as the end.
        _ = index.probe(hash: Self.bits(hash)) { p in
            let key = chunks[p >> Self.chunkShift][p & Self.chunkMask].key
            if (Self.bits(key.hashValue) ^ Self.bits(hash)) & ~lowMask == 0 { found.append(key) }
            return false
        }
        return found
    }

    /// Whether `key` is there, without copying its value.
    func contains(_ key: String, hash: Int) -> Bool { slot(of: key, hash: hash) != nil }

    /// The value of `key`, whose hash (`key.hashValue`) the caller has.
    subscript(key: String, hash hash: Int) -> Value? {
        get {
            guard let s = slot(of: key, hash: hash) else { return nil }
            let p = position(atSlot: s)
            return chunks[p >> Self.chunkShift][p & Self.chunkMask].value
        }
        set {
            if let s = slot(of: key, hash: hash) {
                if let newValue {
                    let p = position(atSlot: s)
                    chunks[p >> Self.chunkShift][p & Self.chunkMask].value = newValue
                } else {
                    remove(atSlot: s)
                }
            } else if let newValue {
                insert(Entry(key: key, value: newValue), hash: hash)
            }
        }
    }

    subscript(key: String) -> Value? {
        get { self[key, hash: key.hashValue] }
        set { self[key, hash: key.hashValue] = newValue }
    }

    /// Sets `key` to `value` and returns what it held.
    mutating func updateValue(_ value: Value, forKey key: String, hash: Int) -> Value? {
        exchange(key, hash: hash, with: value)
    }

    /// The value of `key`; when it has none, `value` is inserted for it and nil returned. One probe
    /// where a lookup and an insert take two.
    mutating func value(forKey key: String, hash: Int, insertingIfAbsent value: Value) -> Value? {
        guard !index.isEmpty, (count &+ 1) &* 2 <= index.count else {
            // The index grows first: the usual two probes.
            if let existing = self[key, hash: hash] { return existing }
            insert(Entry(key: key, value: value), hash: hash)
            return nil
        }
        let (i, found) = index.probe(hash: Self.bits(hash)) { isEntry($0, key: key) }
        if found {
            let p = position(atSlot: i)
            return chunks[p >> Self.chunkShift][p & Self.chunkMask].value
        }
        // `i` is the empty slot that ended the probe: the new entry's.
        let p = append(Entry(key: key, value: value))
        index[i] = TaggedIndex.tag(Self.bits(hash)) | UInt64(p &+ 1)
        hintCell?.publishIfMoved(index.slots)
        return nil
    }

    /// Sets `key` to `newValue` (removes it when nil) and returns what it held: one probe.
    /// `newValue` is consumed: it moves into the table, where a copy retained its references and the
    /// caller's then released them.
    mutating func exchange(_ key: String, hash: Int, with newValue: consuming Value?) -> Value? {
        guard let s = slot(of: key, hash: hash) else {
            if let newValue = newValue.take() { insert(Entry(key: key, value: newValue), hash: hash) }
            return nil
        }
        let p = position(atSlot: s)
        let old = chunks[p >> Self.chunkShift][p & Self.chunkMask].value
        if let newValue = newValue.take() {
            chunks[p >> Self.chunkShift][p & Self.chunkMask].value = newValue
        } else {
            remove(atSlot: s)
        }
        return old
    }

    /// `hash`: the entry's key's.
    private mutating func insert(_ entry: consuming Entry, hash: Int) {
        // A position takes the low 32 bits of an index slot, and the index at most 2^32 slots.
        precondition(count < 1 << 31, "an id table holds fewer than 2^31 entries")
        if (count &+ 1) &* 2 > index.count { grow(toHold: count &+ 1) }
        let p = append(entry)
        index.place(position: p, hash: Self.bits(hash))
        // The first write after a copy of the table (a snapshot) moved the index without a growth.
        hintCell?.publishIfMoved(index.slots)
    }

    /// Puts `entry` at the next position and returns it; the caller gives it its index slot.
    @inline(__always) private mutating func append(_ entry: consuming Entry) -> Int {
        let p = count
        if p & Self.chunkMask == 0 {
            // The first chunk grows as an array does, so a small table stays small; later ones are whole.
            var chunk: [Entry] = []
            if p > 0 { chunk.reserveCapacity(1 << Self.chunkShift) }
            chunks.append(chunk)
        }
        chunks[p >> Self.chunkShift].append(entry)
        count &+= 1
        return p
    }

    /// Makes the index hold at least `n` entries at most half full (at least 16 slots).
    private mutating func grow(toHold n: Int) {
        index.resize(to: TaggedIndex.slotCount(holding: n, atLeast: Swift.max(16, index.count)))
        hintCell?.publish(index.slots)
    }

    mutating func reserveCapacity(_ n: Int) {
        if n &* 2 > index.count { grow(toHold: n) }
    }

    /// Gives the index's room back as the table empties (`SlotRoom`); the entries' chunks go as they
    /// empty.
    private mutating func shrinkIfSparse() {
        guard let capacity = SlotRoom.shrunk(count: count, slotCount: index.count) else { return }
        index.resize(to: capacity)
        hintCell?.publish(index.slots)
    }

    /// The index's slots (tests).
    var indexCapacity: Int { index.count }

    /// Empties the slot `s` and its entry. The entries after the slot on its probe run move back
    /// into the gap where their probe path allows, so every lookup still ends at the first empty
    /// slot; the last entry of the array moves into the freed position.
    private mutating func remove(atSlot s: Int) {
        let p = position(atSlot: s)
        let mask = index.mask
        var hole = s
        var i = (s &+ 1) & mask
        while index[i] != 0 {
            let home = index.home(index[i])
            // The entry at i may fill the hole when the hole lies on its path from home to i.
            if (hole &- home) & mask < (i &- home) & mask {
                index[hole] = index[i]
                hole = i
            }
            i = (i &+ 1) & mask
        }
        index[hole] = 0
        defer { shrinkIfSparse() }
        let last = count &- 1
        let moved = chunks[last >> Self.chunkShift].removeLast()
        if chunks[last >> Self.chunkShift].isEmpty { chunks.removeLast() }
        count = last
        if p != last {
            // The moved entry's slot, found from its home: its key is hashed again (a removal is rare:
            // a name forgotten after the retention window, or a claim given up).
            var j = index.home(Self.bits(moved.key.hashValue))
            while position(atSlot: j) != last { j = (j &+ 1) & mask }
            index[j] = (index[j] & TaggedIndex.tagMask) | UInt64(p &+ 1)
            chunks[p >> Self.chunkShift][p & Self.chunkMask] = moved
        }
        hintCell?.publishIfMoved(index.slots)
    }

    mutating func removeAll() {
        chunks.removeAll()
        count = 0
        index.removeAll()
        hintCell?.publish(index.slots)
    }

    /// Removes the entries for which `shouldBeRemoved` is true.
    mutating func removeAll(where shouldBeRemoved: (Entry) -> Bool) {
        let kept = entries.filter { !shouldBeRemoved($0) }
        guard kept.count != count else { return }
        removeAll()
        reserveCapacity(kept.count)
        for e in kept { insert(e, hash: e.key.hashValue) }
    }

    var values: LazyMapSequence<FlattenSequence<[[Entry]]>, Value> { entries.lazy.map(\.value) }

    func makeIterator() -> LazyMapSequence<FlattenSequence<[[Entry]]>, (key: String, value: Value)>.Iterator {
        entries.lazy.map { (key: $0.key, value: $0.value) }.makeIterator()
    }

    #if DEBUG
    /// Checks the invariants of the file header (tests and debug builds).
    func checkInvariants() {
        precondition(index.isEmpty || index.count.nonzeroBitCount == 1, "the index count is a power of two")
        precondition(count * 2 <= index.count || count == 0, "the index is at most half full")
        precondition(index.slots.lazy.filter { $0 != 0 }.count == count, "every entry is in the index once")
        precondition(entries.count == count, "the chunks hold count entries")
        for (p, e) in entries.enumerated() {
            guard let s = slot(of: e.key, hash: e.key.hashValue) else { preconditionFailure("entry \(p) is not found") }
            precondition(position(atSlot: s) == p, "entry \(p) is found at its position")
        }
    }
    #endif
}

extension IDTable: Sendable where Value: Sendable {}
extension IDTable.Entry: Sendable where Value: Sendable {}

/// A table's published `IndexHint`: written by the table, under its owner's lock, each time the
/// index moves (it grows or empties, and the first write after a copy of the table, such as a
/// snapshot's, copies the live table's index); read by anyone, without the lock.
///
/// The hint is padded to a cache line of its own: it is read by every request to its table, from
/// every core, and rarely written, while the small objects allocated beside it (a shard's lock, the
/// other hints) are written all the time; sharing a line with one of them made each read a miss.
final class IndexHintCell: Sendable {
    private let before: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    let value = Atomic<UInt>(0)
    private let after: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)

    func publish(_ index: [UInt64]) { value.store(IndexHint.of(index), ordering: .relaxed) }

    /// `publish`, after a write that may have copied the index: stores only when the hint changed, so
    /// the usual write leaves the line readers hold alone.
    @inline(__always) func publishIfMoved(_ index: [UInt64]) {
        let hint = IndexHint.of(index)
        if value.load(ordering: .relaxed) != hint { value.store(hint, ordering: .relaxed) }
    }

    /// Asks for the slot where a probe for `hash` starts.
    @inline(__always) func prefetch(hash: UInt) { IndexHint.prefetch(value.load(ordering: .relaxed), hash: hash) }
}

/// Where a `TaggedIndex`'s slots (a power-of-two count of them) start, with the
/// base-2 logarithm of its slot count in the top byte, in one word (0 for no index): what a prefetch
/// of a slot needs, which the holder of a table's lock publishes for threads that do not hold it, so
/// that they can ask for a slot before they wait for the lock (or for a miss elsewhere). A hint may
/// name an index the table has since let go: a prefetch never faults, so it is a wasted hint and
/// nothing else.
enum IndexHint {
    static func of(_ index: [UInt64]) -> UInt {
        guard !index.isEmpty else { return 0 }
        let base = index.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress!) }
        // An address that does not fit in 56 bits (a tagged pointer) gets no hint: no prefetch.
        guard base >> 56 == 0 else { return 0 }
        return base | UInt(index.count.trailingZeroBitCount) << 56
    }

    /// Asks for the slot where a probe for `hash` starts in the index `hint` describes: its home,
    /// the top bits of the hash (`TaggedIndex.home`).
    @inline(__always) static func prefetch(_ hint: UInt, hash: UInt) {
        guard hint != 0 else { return }
        let home = TaggedIndex.home(of: UInt64(hash), shift: 64 &- UInt64(hint >> 56))
        let base = hint & ((1 << 56) &- 1)
        stockpile_prefetch(UnsafeRawPointer(bitPattern: base &+ UInt(home) &* 8))
    }
}
