// A shard's cells in flat storage: entries in insertion order, in chunks of 1,024, found through one
// open-addressing index (`TaggedIndex`) keyed by a 64-bit FNV-1a hash of the cell's names. A cell keeps its position
// for the life of the table (cells are never removed one by one, only all at once by a reset), so a
// position is a handle. It keeps true: every entry is in the index exactly once, under its own hash;
// the index is at most half full, so a probe ends at an empty slot.
//
// Copy-on-write after a snapshot stays cheap: a snapshot keeps a reference to the table, and the next
// write copies the outer array of chunk references and the one chunk it touches (64 KiB), as a forked
// Redis copies one page at a time. The index is copied only by the first new cell after a snapshot.
// Compared with a Swift Dictionary, a lookup hashes the names once with FNV-1a instead of the seeded
// SipHash, and probes an array of integers before it touches an entry. An entry keeps its cell's
// names as `StoredCellKey` says: a variant of up to 24 bytes in the entry itself, the warehouse as
// its number in the table's list of codes; a cell's `CellKey` is made again from them when asked for.

import CStockpileLinux
@_spi(Tables) import StockpileCore
import Synchronization

struct CellTable: Sequence, Sendable {
    struct Entry: Sendable {
        var key: StoredCellKey
        var slot: CellSlot
    }

    private static let chunkShift = 10
    private static let chunkMask = (1 << chunkShift) - 1
    private var chunks: [[Entry]] = []
    /// The warehouse codes of the table's cells, each once, by the number an entry keeps
    /// (`StoredCellKey.warehouse`), and the numbers by code.
    private var warehouses: [String] = []
    private var warehouseNumbers: [String: UInt32] = [:]
    /// The count is a power of two (or 0 before the first cell).
    private var index = TaggedIndex()
    private(set) var count = 0
    /// A number no other table had, taken again when the table is emptied: with a position, it names
    /// one cell for good (the log's writer numbers cells by it, `CellPlace`).
    private(set) var generation = CellTable.newGeneration()
    /// `IDTable.hintCell`.
    var hintCell: IndexHintCell?

    /// The cell's stable hash (the one routing uses), finished with a mixer so that every bit of the
    /// result depends on every byte: the slot bits must not repeat the bits that chose the shard.
    @inline(__always) static func hash(_ key: CellKey) -> UInt64 { hash(stable: key.stableHash) }

    /// `hash(key)` from the key's `stableHash`, for a caller that has it already (`CellKey.tableHash`).
    @inline(__always) static func hash(stable: UInt64) -> UInt64 { CellKey.tableHash(stable: stable) }

    /// The position of `key`'s entry, or nil. A position stays its cell's until `removeAll`: a shard
    /// names a cell by it where a name would cost a copy (a reservation's line).
    @inline(__always) func position(of key: CellKey, hash: UInt64) -> Int? {
        guard !index.isEmpty else { return nil }
        let packed = StoredCellKey.packed(key.variant)
        let (s, found) = index.probe(hash: hash) { p in
            let stored = chunks[p >> Self.chunkShift][p & Self.chunkMask].key
            return stored.isVariant(key.variant, packed: packed) && warehouses[Int(stored.warehouse)] == key.warehouse
        }
        return found ? TaggedIndex.position(index[s]) : nil
    }

    /// The number of `code` in `warehouses`, added when it has none. A few codes are looked through one
    /// by one (a short code compares as two words, where the dictionary would hash it: a seed of
    /// millions of cells adds a cell at a time); past them, the dictionary is asked.
    private mutating func warehouseNumber(_ code: String) -> UInt32 {
        if warehouses.count <= Self.warehousesScannedMax {
            if let n = warehouses.firstIndex(of: code) { return UInt32(n) }
        } else if let n = warehouseNumbers[code] {
            return n
        }
        let n = UInt32(warehouses.count)
        warehouses.append(code)
        warehouseNumbers[code] = n
        return n
    }

    /// Up to this many warehouse codes are looked through one by one when a cell is added.
    private static var warehousesScannedMax: Int { 8 }

    /// `position(of:hash:)` for a table a class keeps (`ShardState.cells`): mutating only so that the
    /// call borrows the table where it lies. Read as a value, the table was copied, retaining each of
    /// its arrays: a write to their headers, which the other core's requests write too.
    @inline(__always) mutating func positionInPlace(of key: CellKey, hash: UInt64) -> Int? {
        position(of: key, hash: hash)
    }

    /// Appends a new entry (its key must not be in the table) and returns its position.
    private mutating func insert(_ key: CellKey, _ slot: CellSlot, hash: UInt64) -> Int {
        // A position takes the low 32 bits of an index slot, and the index at most 2^32 slots.
        precondition(count < 1 << 31, "a cell table holds fewer than 2^31 cells")
        if (count &+ 1) &* 2 > index.count { grow() }
        let p = count
        if p & Self.chunkMask == 0 {
            var chunk: [Entry] = []
            chunk.reserveCapacity(1 << Self.chunkShift)
            chunks.append(chunk)
        }
        let stored = StoredCellKey(variant: StoredCellKey.variant(key.variant), warehouse: warehouseNumber(key.warehouse))
        chunks[p >> Self.chunkShift].append(Entry(key: stored, slot: slot))
        count &+= 1
        index.place(position: p, hash: hash)
        // The first write after a copy of the table (a snapshot) moved the index without a growth.
        hintCell?.publishIfMoved(index.slots)
        return p
    }

    /// Doubles the index (at least 64 slots), or more to hold `n` cells at most half full.
    private mutating func grow(toHold n: Int? = nil) {
        index.resize(to: TaggedIndex.slotCount(holding: n ?? 0, atLeast: Swift.max(64, index.count &* 2)))
        hintCell?.publish(index.slots)
    }

    subscript(key: CellKey) -> CellSlot? {
        get { slot(of: key, hash: Self.hash(key)) }
        set {
            guard let newValue else { preconditionFailure("cells are removed only all at once (removeAll)") }
            let h = Self.hash(key)
            if let p = position(of: key, hash: h) {
                chunks[p >> Self.chunkShift][p & Self.chunkMask].slot = newValue
            } else {
                _ = insert(key, newValue, hash: h)
            }
        }
    }

    /// The slot of `key`, whose `CellTable.hash` the caller has already (a bulk load hashes each
    /// name once for both its lookup and its store).
    func slot(of key: CellKey, hash: UInt64) -> CellSlot? {
        guard let p = position(of: key, hash: hash) else { return nil }
        return chunks[p >> Self.chunkShift][p & Self.chunkMask].slot
    }

    /// The slot of `key` (hashed by the caller), added with `value` first when the table has none.
    subscript(key: CellKey, hash h: UInt64, default value: @autoclosure () -> CellSlot) -> CellSlot {
        get { slot(of: key, hash: h) ?? value() }
        _modify {
            let p = position(of: key, hash: h, default: value())
            yield &self[position: p]
        }
    }

    /// The position of `key` (hashed by the caller), added with `value` first when the table has none.
    mutating func position(of key: CellKey, hash h: UInt64, default value: @autoclosure () -> CellSlot) -> Int {
        position(of: key, hash: h) ?? insert(key, value(), hash: h)
    }

    /// Brings in the index slot where a lookup of a cell with `hash` starts (a hint, for bulk loads
    /// that know their next cells ahead). Mutating only so that a call on a class's stored table
    /// borrows it in place instead of retaining its arrays; it changes nothing.
    @inline(__always) mutating func prefetch(hash: UInt64) {
        index.prefetch(hash: hash)
    }

    /// Brings in the entry of the first cell on the probe path of `hash`, found through its index
    /// slot (which `prefetch(hash:)` brought in before): the entry a lookup of that cell reads, unless
    /// another cell came first on its path. A hint; mutating for the reason `prefetch` is.
    @inline(__always) mutating func prefetchEntry(hash: UInt64) {
        guard let p = firstOnPath(hash) else { return }
        stockpile_prefetch(entryAddress(p))
    }

    /// Asks the processor for the entry at position `p`, which will only be read (a snapshot's walk).
    /// A position past the table's cells asks for nothing.
    @inline(__always) func prefetchEntry(at p: Int) {
        guard p < count else { return }
        stockpile_prefetch_read(entryAddress(p))
    }

    /// Where the entry at position `p` lies, for a hint (`chunkElementAddress`; checked against the
    /// array's own pointer in debug builds, which the tests run).
    @inline(__always) private func entryAddress(_ p: Int) -> UnsafeRawPointer {
        let address = chunkElementAddress(chunks, chunk: p >> Self.chunkShift, element: p & Self.chunkMask)
        assert(
            address == chunks[p >> Self.chunkShift].withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + (p & Self.chunkMask)) },
            "an array's elements start where `chunkElementAddress` says")
        return address
    }

    /// The position of the first cell on the probe path of `hash`, if any: a hint's guess at the
    /// cell a lookup finds.
    @inline(__always) private func firstOnPath(_ hash: UInt64) -> Int? {
        guard !index.isEmpty else { return nil }
        let v = index[index.home(hash)]
        return v == 0 ? nil : TaggedIndex.position(v)
    }

    /// Calls `body` with the names of the cell at `position`: its variant's UTF-8 bytes, read where the
    /// table keeps them, and its warehouse's code.
    @inline(__always) func withNames<R, E: Error>(at position: Int, _ body: (_ variant: UnsafeRawBufferPointer, _ warehouse: String) throws(E) -> R) throws(E) -> R {
        let key = chunks[position >> Self.chunkShift][position & Self.chunkMask].key
        let warehouse = warehouses[Int(key.warehouse)]
        return try key.withVariantBytes { (variant) throws(E) -> R in try body(variant, warehouse) }
    }

    /// `withNames(at:)` for a table read through a pointer (a snapshot's walk), as `positionInPlace`:
    /// called on a pointer's `pointee`, the non-mutating method copied the table at each call.
    @inline(__always) mutating func withNamesInPlace<R, E: Error>(
        at position: Int, _ body: (_ variant: UnsafeRawBufferPointer, _ warehouse: String) throws(E) -> R
    ) throws(E) -> R {
        try withNames(at: position, body)
    }

    /// `key(at:)` for a table a class keeps (`ShardState.cells`), as `positionInPlace`.
    @inline(__always) mutating func keyInPlace(at position: Int) -> CellKey { key(at: position) }

    /// The key of the cell at `position`.
    func key(at position: Int) -> CellKey { chunks[position >> Self.chunkShift][position & Self.chunkMask].key.cellKey(warehouses: warehouses) }

    /// The slot of the cell at `position`.
    subscript(position p: Int) -> CellSlot {
        get { chunks[p >> Self.chunkShift][p & Self.chunkMask].slot }
        _modify { yield &chunks[p >> Self.chunkShift][p & Self.chunkMask].slot }
    }

    subscript(key: CellKey, default value: @autoclosure () -> CellSlot) -> CellSlot {
        get { self[key] ?? value() }
        _modify { yield &self[key, hash: Self.hash(key), default: value()] }
    }

    private static let generations = Atomic<UInt64>(0)

    private static func newGeneration() -> UInt64 { generations.add(1, ordering: .relaxed).newValue }

    mutating func removeAll() {
        generation = Self.newGeneration()
        chunks.removeAll()
        warehouses.removeAll()
        warehouseNumbers.removeAll()
        index.removeAll()
        hintCell?.publish(index.slots)
        count = 0
    }

    mutating func reserveCapacity(_ n: Int) {
        if n &* 2 > index.count { grow(toHold: n) }
    }

    /// Every cell, in the order it was first used.
    func makeIterator() -> LazyMapSequence<FlattenSequence<[[Entry]]>, (key: CellKey, value: CellSlot)>.Iterator {
        let warehouses = warehouses
        return chunks.joined().lazy.map { (key: $0.key.cellKey(warehouses: warehouses), value: $0.slot) }.makeIterator()
    }

    #if DEBUG
    /// Checks the invariants of the file header (tests and debug builds).
    func checkInvariants() {
        precondition(index.isEmpty || index.count.nonzeroBitCount == 1, "the index count is a power of two")
        precondition(count * 2 <= index.count || count == 0, "the index is at most half full")
        precondition(index.slots.lazy.filter { $0 != 0 }.count == count, "every entry is in the index once")
        precondition(Set(warehouses).count == warehouses.count, "a warehouse code has one number")
        precondition(warehouseNumbers.count == warehouses.count && warehouseNumbers.allSatisfy { warehouses[Int($0.value)] == $0.key }, "every code is filed under its number")
        for p in 0..<count {
            let stored = chunks[p >> Self.chunkShift][p & Self.chunkMask].key
            precondition(Int(stored.warehouse) < warehouses.count, "an entry's warehouse number is one the table gave")
            if case .string(let name) = stored.variant { precondition(StoredCellKey.packed(name) == nil, "a name that fits is kept in the entry") }
            let key = key(at: p)
            precondition(position(of: key, hash: Self.hash(key)) == p, "entry \(p) is found at its position")
        }
    }
    #endif
}
