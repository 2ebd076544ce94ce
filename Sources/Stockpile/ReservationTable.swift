// The reservations whose home is one shard, by id. Most reservations are one line whose request named
// that line (variant, warehouse, quantity): such a one is kept compact, as one fixed-size entry of the
// id's table: its line's cell as a position in the shard's cell table (a shard's cells move only
// when all of them go, with every reservation, at a RESET), its figures and times as integers, and no
// array for its line: a new one is made without one (`OneLineReservation`), so keeping it allocates
// nothing, and the entry alone is what the retention window keeps once it is closed. Any other
// reservation (several lines, a line the engine placed, a cell the shard has no figures for, a
// backordered part, a TTL finer than a millisecond, a line of more than `UInt16.max` units, an expiry
// or a closing more than 49 days after it was made) is kept whole, behind one reference. Reading a reservation builds the `Reservation` value back, equal to
// the one stored.

@_spi(Tables) import StockpileCore
import StockpileWAL

/// One reservation as its shard keeps it: 48 bytes (a test holds it to that).
///
/// The fields are declared in the order that packs them: the body's case byte follows its 16 bytes,
/// and the one-byte fields fill the rest of that word.
struct StoredReservation: Sendable {
    /// The customer of a compact reservation, or the whole reservation, when it is not kept compact
    /// (the other fields are then unused): one case or the other, in 17 bytes.
    enum Body {
        case compact(customer: String?)
        case whole(Boxed<Reservation>)
    }

    var body: Body
    var status: ReservationStatus = .active
    var strategy: PlacementStrategy = .priority
    var endedByExpiry = false
    /// The position of its line's cell in the shard's cell table.
    var cell: UInt32 = 0
    var createdAt: Int64 = 0
    /// Milliseconds after `createdAt`: while open, when it expires (`Self.none`: never); once closed,
    /// when it closed. A reservation has no expiry once it is closed, so one field holds either. One
    /// that expires or closes more than 49 days after it was made (or, by a clock set back, before)
    /// is kept whole.
    var deadline: UInt32 = 0
    /// The request's TTL in milliseconds, or `Self.noTTL`.
    var requestTTL: UInt32 = 0
    /// Its line's figures: a line of more than `UInt16.max` units is kept whole (fulfilled and
    /// released units are parts of the quantity). A flash sale's lines are a few units; an order of
    /// tens of thousands of one item pays for a whole reservation.
    var quantity: UInt16 = 0
    var fulfilled: UInt16 = 0
    var released: UInt16 = 0
    var tracked = false

    static let none = UInt32.max
    static let noTTL = UInt32.max

    init(whole r: Reservation) { body = .whole(Boxed(r)) }

    /// The reservation in `box`, kept whole.
    init(whole box: Boxed<Reservation>) { body = .whole(box) }

    /// The whole reservation, when it is not kept compact.
    var whole: Boxed<Reservation>? {
        if case .whole(let box) = body { return box }
        return nil
    }

    /// `r` kept compact, when it can be: one line, on the cell at `cellPosition`, which its request named.
    init?(compacting r: Reservation, cellPosition: Int?) {
        guard r.lines.count == 1, let cellPosition, r.fingerprintLinesAreOwnLines, r.requestCustomer == r.customer else { return nil }
        let line = r.lines[0]
        self.init(
            quantity: line.quantity, fulfilled: line.fulfilled, released: line.released, backordered: line.backordered, tracked: line.tracked,
            cellPosition: cellPosition, customer: r.customer, createdAt: r.createdAt, expiresAt: r.expiresAt, closedAt: r.closedAt,
            requestTTL: r.requestTTL, status: r.status, strategy: r.strategy, endedByExpiry: r.endedByExpiry)
    }

    /// `r` kept compact, when its fields fit (see below); its line's cell is at `cellPosition`.
    init?(_ r: borrowing OneLineReservation, cellPosition: Int) {
        // Its line's figures, read where the reservation keeps them (passing the line would copy it).
        self.init(
            quantity: r.line.quantity, fulfilled: r.line.fulfilled, released: r.line.released, backordered: r.line.backordered,
            tracked: r.line.tracked, cellPosition: cellPosition, customer: r.customer, createdAt: r.createdAt, expiresAt: r.expiresAt,
            closedAt: r.closedAt, requestTTL: r.requestTTL, status: r.status, strategy: r.strategy, endedByExpiry: r.endedByExpiry)
    }

    /// A new one-line reservation as a `reservation` record of the log carries it (its cell at
    /// `cellPosition`), kept compact when its fields fit: read from the record's fields where the
    /// record is kept (a copy of them would copy every name), without building the reservation or its
    /// line.
    init?(new fields: UnsafePointer<CompactReservation>, cellPosition: Int) {
        self.init(
            quantity: fields.pointee.quantity, fulfilled: .zero, released: .zero, backordered: fields.pointee.backordered,
            tracked: fields.pointee.tracked, cellPosition: cellPosition, customer: fields.pointee.customer, createdAt: fields.pointee.time,
            expiresAt: fields.pointee.expiresAt, closedAt: nil, requestTTL: fields.pointee.ttl, status: .active, strategy: fields.pointee.strategy,
            endedByExpiry: false)
    }

    /// The compact entry from a one-line reservation's figures (those of its line: `quantity` …
    /// `tracked`) and fields, when they fit: its request named its line's cell (at `cellPosition`),
    /// with `customer` and `requestTTL`; nothing of it is backordered; an open one has no closing time
    /// and a closed one no expiry.
    private init?(
        quantity: Quantity, fulfilled: Quantity, released: Quantity, backordered: Quantity, tracked: Bool, cellPosition: Int, customer: String?,
        createdAt: Timestamp, expiresAt: Timestamp?, closedAt: Timestamp?, requestTTL: Duration?, status: ReservationStatus,
        strategy: PlacementStrategy, endedByExpiry: Bool
    ) {
        guard backordered == .zero, cellPosition <= Int(UInt32.max), let ttl = Self.milliseconds(requestTTL),
            let quantity = UInt16(exactly: quantity.units), let fulfilled = UInt16(exactly: fulfilled.units), let released = UInt16(exactly: released.units)
        else { return nil }
        if status.isOpen {
            guard closedAt == nil else { return nil }
            if let expiresAt {
                guard let offset = Self.offset(of: expiresAt, after: createdAt) else { return nil }
                deadline = offset
            } else {
                deadline = Self.none
            }
        } else {
            guard expiresAt == nil, let closedAt, let offset = Self.offset(of: closedAt, after: createdAt) else { return nil }
            deadline = offset
        }
        body = .compact(customer: customer)
        self.quantity = quantity
        self.fulfilled = fulfilled
        self.released = released
        self.tracked = tracked
        self.createdAt = createdAt.milliseconds
        self.requestTTL = ttl
        cell = UInt32(cellPosition)
        self.status = status
        self.strategy = strategy
        // As `Reservation` keeps it: only an expired or a fulfilled one can have ended by expiry.
        self.endedByExpiry = status == .expired || (status == .fulfilled && endedByExpiry)
    }

    /// `time` in milliseconds after `start`, when that fits a deadline (`none` excluded).
    private static func offset(of time: Timestamp, after start: Timestamp) -> UInt32? {
        let (difference, overflow) = time.milliseconds.subtractingReportingOverflow(start.milliseconds)
        guard !overflow, difference >= 0, difference < Int64(Self.none) else { return nil }
        return UInt32(difference)
    }

    /// A TTL in whole milliseconds (`noTTL` for no TTL); nil when it is finer or too long to say so.
    private static func milliseconds(_ ttl: Duration?) -> UInt32? {
        guard let ttl else { return Self.noTTL }
        let (seconds, attoseconds) = ttl.components
        guard attoseconds % 1_000_000_000_000_000 == 0, seconds >= 0, seconds < Int64(Self.noTTL / 1000) else { return nil }
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return total >= 0 && total < Int64(Self.noTTL) ? UInt32(total) : nil
    }

    var isOpen: Bool { whole?.value.isOpen ?? status.isOpen }
    var closedTime: Timestamp? {
        if let whole { return whole.value.closedAt }
        return status.isOpen ? nil : deadlineTime
    }

    /// `deadline` as a time (meaningless for `none`).
    private var deadlineTime: Timestamp { Timestamp(milliseconds: createdAt &+ Int64(deadline)) }

    /// When a compact entry expires: nil once it is closed, or when it never does.
    private var expiryTime: Timestamp? { status.isOpen && deadline != Self.none ? deadlineTime : nil }

    private var customer: String? {
        if case .compact(let customer) = body { return customer }
        return nil
    }

    /// When it was made, its request's TTL and when it closed (nil while open).
    var retentionTimes: (createdAt: Timestamp, ttl: Duration?, closedAt: Timestamp?) {
        if let whole { return (whole.value.createdAt, whole.value.requestTTL, whole.value.closedAt) }
        return (Timestamp(milliseconds: createdAt), requestDuration, closedTime)
    }

    /// `requestTTL` as a duration (nil for none).
    private var requestDuration: Duration? { requestTTL == Self.noTTL ? nil : .milliseconds(Int64(requestTTL)) }

    private func line(cell key: CellKey) -> ReservationLine {
        ReservationLine(
            variant: key.variant, warehouse: key.warehouse, quantity: Quantity(Int64(quantity)), fulfilled: Quantity(Int64(fulfilled)),
            released: Quantity(Int64(released)), tracked: tracked)
    }

    /// The fields of the reservation `id` (its UTF-8 bytes) this compact entry keeps, as a snapshot
    /// writes them, its line's cell's names being `variant` (UTF-8 bytes) and `warehouse`: the
    /// reservation `reservation(id:cells:)` builds, without building it.
    func snapshotFields(id: UnsafeRawBufferPointer, variant: UnsafeRawBufferPointer, warehouse: String) -> SnapshotOneLineReservation {
        assert(whole == nil, "a compact entry")
        return SnapshotOneLineReservation(
            id: id, variant: variant, warehouse: warehouse, quantity: Quantity(Int64(quantity)), fulfilled: Quantity(Int64(fulfilled)),
            released: Quantity(Int64(released)), tracked: tracked, status: status, endedByExpiry: endedByExpiry, expiresAt: expiryTime,
            customer: customer, createdAt: Timestamp(milliseconds: createdAt), closedAt: closedTime, requestTTL: requestDuration, strategy: strategy)
    }

    /// The reservation `id` this entry keeps, its line's cell named from `cells`.
    func reservation(id: String, cells: CellTable) -> Reservation {
        reservation(id: id) { cells.key(at: $0) }
    }

    /// The reservation `id` this entry keeps, its line's cell named by `cell`, given the cell's
    /// position (`self.cell`; asked only of a compact entry).
    func reservation(id: String, cell: (Int) -> CellKey) -> Reservation {
        if let whole { return whole.value }
        return Reservation(
            id: id, lines: [line(cell: cell(Int(self.cell)))], status: status, expiresAt: expiryTime, customer: customer,
            createdAt: Timestamp(milliseconds: createdAt), closedAt: closedTime, endedByExpiry: endedByExpiry, requestTTL: requestDuration,
            requestCustomer: customer, strategy: strategy)
    }
}

/// A shard's reservations by id (see the file header). Ids are hashed by the caller (`String.hashValue`).
struct ReservationTable: Sendable {
    /// Every reservation of a table, built back as it is read.
    typealias All = LazyMapSequence<FlattenSequence<[[IDTable<StoredReservation>.Entry]]>, Reservation>

    private var table = IDTable<StoredReservation>()
    /// How many of the reservations are open, kept as they are stored and removed: STATS reads it
    /// holding the shard, where counting would read every entry.
    private(set) var openCount = 0

    var count: Int { table.count }

    func contains(_ id: String, hash: Int) -> Bool { table.contains(id, hash: hash) }

    /// The ids whose hash has `hash`'s bits outside `lowMask` (the directory's tag of it). A mask
    /// wider than the low 32 bits (tests, to make tags collide) reads every entry.
    func ids(withTagOf hash: Int, lowMask: UInt64) -> [String] {
        if lowMask & TaggedIndex.tagMask == 0 { return table.keys(withHash: hash, ignoring: lowMask) }
        let tag = ShardSlots.tag(hash, lowMask: lowMask)
        return table.entries.compactMap { ShardSlots.tag($0.key.hashValue, lowMask: lowMask) == tag ? $0.key : nil }
    }

    /// `IDTable.hintCell`.
    var hintCell: IndexHintCell? {
        get { table.hintCell }
        set { table.hintCell = newValue }
    }

    /// `IDTable.prefetch(hash:)`.
    @inline(__always) mutating func prefetch(hash: Int) { table.prefetch(hash: hash) }

    /// `IDTable.prefetchNextEntry()`: the line a new reservation's entry will be written to.
    @inline(__always) mutating func prefetchNextEntry() { table.prefetchNextEntry() }

    /// The entry of `id`; `reservation(id:cells:)` builds the reservation from it.
    func stored(_ id: String, hash: Int) -> StoredReservation? { table[id, hash: hash] }

    /// `stored(_:hash:)` for a table a class keeps (`ShardState.reservations`): mutating only so that
    /// the call borrows the table where it lies, as `CellTable.positionInPlace` does.
    @inline(__always) mutating func storedInPlace(_ id: String, hash: Int) -> StoredReservation? { stored(id, hash: hash) }

    /// `contains(_:hash:)` for a table a class keeps, as `storedInPlace`.
    @inline(__always) mutating func containsInPlace(_ id: String, hash: Int) -> Bool { contains(id, hash: hash) }

    /// Stores `r` (replacing what its id held). `cellPosition`: the position in the shard's cell table
    /// of its line's cell, for a one-line reservation; nil keeps it whole.
    mutating func store(_ r: Reservation, hash: Int, cellPosition: Int?) {
        put(StoredReservation(compacting: r, cellPosition: cellPosition) ?? StoredReservation(whole: r), id: r.id, hash: hash)
    }

    /// Sets `id`'s entry to `value` (or removes it, for nil), counting what is open.
    @inline(__always) private mutating func put(_ value: consuming StoredReservation?, id: String, hash: Int) {
        let opens = value?.isOpen == true ? 1 : 0
        let old = table.exchange(id, hash: hash, with: value)
        openCount += opens - (old?.isOpen == true ? 1 : 0)
    }

    /// Stores a one-line reservation (replacing what its id held), compact when its fields fit, whole
    /// otherwise (`StoredReservation`'s limits). `cellPosition`: its cell's.
    mutating func store(_ r: borrowing OneLineReservation, hash: Int, cellPosition: Int) {
        put(StoredReservation(r, cellPosition: cellPosition) ?? StoredReservation(whole: r.reservation), id: r.id, hash: hash)
    }

    /// Stores the new one-line reservation a `reservation` record of the log carries (replacing what
    /// its id held), compact when its fields fit, whole otherwise. `cellPosition`: its cell's.
    /// `fields`: the record's, where its batch keeps them.
    mutating func store(new fields: UnsafePointer<CompactReservation>, hash: Int, cellPosition: Int) {
        let stored = StoredReservation(new: fields, cellPosition: cellPosition) ?? StoredReservation(whole: fields.pointee.oneLine.reservation)
        put(stored, id: fields.pointee.id, hash: hash)
    }

    /// Stores the reservation in `box` whole (replacing what its id, `id`, held).
    mutating func store(whole box: Boxed<Reservation>, id: String, hash: Int) {
        put(StoredReservation(whole: box), id: id, hash: hash)
    }

    mutating func remove(_ id: String, hash: Int) { put(nil, id: id, hash: hash) }

    /// Removes `id` when it is closed and closed at or before `limit`; returns whether it did.
    mutating func remove(_ id: String, hash: Int, closedNotAfter limit: Timestamp) -> Bool {
        guard let r = table[id, hash: hash], !r.isOpen, let closed = r.closedTime, closed <= limit else { return false }
        put(nil, id: id, hash: hash)
        return true
    }

    mutating func removeAll() {
        table.removeAll()
        openCount = 0
    }

    mutating func reserveCapacity(_ n: Int) { table.reserveCapacity(n) }

    /// Calls `body` with the reservation at position `p` (`0..<count`) as a snapshot writes it: one
    /// kept compact by its fields, read where the tables keep them (`cells`: the shard's, read in place
    /// and never written); any other whole. Neither the entry nor the cell table is copied: each copy was a retain
    /// and a release of every array the table holds, at each of a snapshot's millions of reservations.
    @inline(__always)
    func withSnapshotReservation<R>(
        at p: Int, cells: UnsafeMutablePointer<CellTable>, _ body: (SnapshotReservation) throws(WALIOError) -> R
    ) throws(WALIOError) -> R {
        try table.withEntryInPlace(at: p) { (id, entry) throws(WALIOError) -> R in
            if let whole = entry.pointee.value.whole { return try body(.whole(whole.value)) }
            return try cells.pointee.withNamesInPlace(at: Int(entry.pointee.value.cell)) { (variant, warehouse) throws(WALIOError) -> R in
                try body(.oneLine(entry.pointee.value.snapshotFields(id: id, variant: variant, warehouse: warehouse)))
            }
        }
    }

    /// Calls `body` with the id of the reservation at position `p` (`0..<count`) as UTF-8 bytes, read
    /// where the table keeps it (a snapshot's merge of the shards, by id).
    @inline(__always) func withIDBytes<R>(at p: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        table.withEntryInPlace(at: p) { id, _ in body(id) }
    }

    /// The positions `0..<count` in the order of their reservations' ids: a snapshot's order (by id,
    /// `SnapshotCodec.sortedPositions`). Sorted as `String`s, each of the sort's comparisons read two
    /// ids where their strings keep them (a cache miss each, in lists of millions) and went through
    /// `String`'s comparison; here the sort compares integers, and each id is read at most twice at
    /// each level of `orderByID` it takes part in.
    func positionsByID() -> [Int32] {
        precondition(count <= Int(Int32.max), "a snapshot list holds fewer than 2^31 values")
        var keys = (0..<count).map { IDPrefixKey(high: 0, low: 0, position: Int32($0)) }
        // Sorted through the buffer: a range of the array sorted in place would be copied out and back.
        keys.withUnsafeMutableBufferPointer { orderByID($0, 0..<count, sharing: 0) }
        return keys.map(\.position)
    }

    /// Puts `keys[range]` in the order of their ids, which share their first `shared` bytes: finds
    /// how many more bytes they all share (up to `sharedStartByteCountMax`), reads each id's next 16
    /// bytes as two big-endian integers into its key and sorts the keys; then does the same for each
    /// run of equal keys, whose ids share 16 bytes more. Ids are printable ASCII
    /// (`Identifiers.isValidReservationID`), whose byte order is `String`'s, and have no zero byte: a
    /// shorter id, padded with zeros, is below every id it begins, and ids of equal keys share those
    /// 16 bytes too (a shorter one's zeros match no byte of another), so each run of them is put in
    /// order by what follows, and no run outlasts its ids.
    private func orderByID(_ keys: UnsafeMutableBufferPointer<IDPrefixKey>, _ range: Range<Int>, sharing shared: Int) {
        guard range.count > 1 else { return }
        // How many bytes after `shared` every id shares with the first (each read where it is kept).
        let alike = withIDBytes(at: Int(keys[range.lowerBound].position)) { first in
            let rest = UnsafeRawBufferPointer(rebasing: first.dropFirst(shared))
            var alike = Swift.min(Self.sharedStartByteCountMax, rest.count)
            for i in range.dropFirst() where alike > 0 {
                alike = Swift.min(alike, withIDBytes(at: Int(keys[i].position)) { Self.sharedByteCount(rest, UnsafeRawBufferPointer(rebasing: $0.dropFirst(shared))) })
            }
            return alike
        }
        let skipped = shared + alike
        for i in range {
            let p = Int(keys[i].position)
            keys[i] = withIDBytes(at: p) { IDPrefixKey(UnsafeRawBufferPointer(rebasing: $0.dropFirst(skipped)), position: p) }
        }
        var part = UnsafeMutableBufferPointer(rebasing: keys[range])
        part.sort { IDPrefixKey.precedes($0, $1) }
        var first = range.lowerBound
        while first < range.upperBound {
            var end = first + 1
            while end < range.upperBound && keys[end].high == keys[first].high && keys[end].low == keys[first].low { end += 1 }
            // A key of no bytes is an id that ends where the range's ids share: the one the others
            // begin with. A run of two would be equal ids, which a table does not hold.
            let pastEnd = keys[first].high == 0 && keys[first].low == 0
            assert(end - first == 1 || !pastEnd, "two reservations of one id in a shard's table")
            if end - first > 1 && !pastEnd { orderByID(keys, first..<end, sharing: skipped + 16) }
            first = end
        }
    }

    /// The longest start `orderByID` looks for that its ids share (ids are at most 128 bytes).
    private static let sharedStartByteCountMax = 64

    /// How many bytes `a` and `b` start with alike.
    private static func sharedByteCount(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(a.count, b.count)
        var i = 0
        while i < n && a[i] == b[i] { i += 1 }
        return i
    }

    /// Asks the processor for the entry at position `p`, which will only be read (a snapshot's walk).
    func prefetchEntry(at p: Int) { table.prefetchEntry(at: p) }

    /// Asks the processor for the first bytes of the id at position `p` when its string keeps them in
    /// an object of its own, for a walk that asked for the entry earlier (`IDTable.prefetchKeyBytes`).
    func prefetchID(at p: Int) { table.prefetchKeyBytes(at: p) }

    /// The position in the shard's cell table of the line's cell of the reservation at position `p`,
    /// when it is kept compact (0 otherwise): what a snapshot's walk asks for ahead.
    func cellPosition(at p: Int) -> Int { Int(table.value(at: p).cell) }

    /// The reservation at position `p` (`0..<count`), built back.
    func reservation(at p: Int, cells: CellTable) -> Reservation {
        let e = table.entry(at: p)
        return e.value.reservation(id: e.key, cells: cells)
    }

    func all(cells: CellTable) -> All {
        table.entries.lazy.map { $0.value.reservation(id: $0.key, cells: cells) }
    }
}

/// 16 bytes of an id (those after the start it shares with the ids sorted with it) as two big-endian
/// integers, zeros after a shorter id's last byte, and its reservation's position: what
/// `ReservationTable.positionsByID` sorts.
struct IDPrefixKey {
    var high: UInt64
    var low: UInt64
    var position: Int32

    init(high: UInt64, low: UInt64, position: Int32) {
        self.high = high
        self.low = low
        self.position = position
    }

    /// Whether `a` sorts before `b`: by the integers, then by position.
    @inline(__always) static func precedes(_ a: IDPrefixKey, _ b: IDPrefixKey) -> Bool {
        if a.high != b.high { return a.high < b.high }
        if a.low != b.low { return a.low < b.low }
        return a.position < b.position
    }

    @inline(__always) init(_ id: UnsafeRawBufferPointer, position: Int) {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: id.prefix(16))) }
        high = UInt64(bigEndian: words.0)
        low = UInt64(bigEndian: words.1)
        self.position = Int32(position)
    }
}
