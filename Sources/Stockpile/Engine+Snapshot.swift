// Snapshots of a durable engine (wal/FORMAT.md §4): the whole state after one LSN, written beside the
// log so that start-up loads it and replays only what follows.
//
// Taking one keeps writes going. Every shard is held only while it hands over its tables: Swift's
// dictionaries are copy-on-write, so that is a few pointer copies per shard, and the ledger's
// position read in the same stretch is the snapshot's LSN — every commit up to it is applied and
// none after. The first write to a shard afterwards copies the part of its tables it touches (cells
// are split in 64, see `CellTable`); `stockpile-bench snapshot` measures the longest pause a writer
// sees. Encoding and writing happen on a thread of their own, at a lower priority.
//
// Keys need one more step. A KEY is settled in its table just after its record is logged, outside
// the shard, so at the capture some keys of records up to the LSN may still be pending. The capture
// waits for every key pending at that moment to settle, then copies the table. A key it picks up
// whose record came after the LSN is harmless, because the snapshot is written only once the log is
// durable up to everything handed to it by the time the keys were copied, and replaying that record
// restores the same key.

import Foundation
import StockpileCore
import StockpileWAL
import Synchronization

/// What writing one snapshot did.
public struct SnapshotReport: Sendable, Hashable {
    public var fileName: String
    public var lsn: UInt64
    public var byteCount: Int
    public var cellCount: Int
    public var reservationCount: Int
    public var keyCount: Int
    /// How long every shard was held at once (writes to all shards waited this long at most).
    public var captureDuration: Duration
    /// From the request to the file's directory entry being synced.
    public var totalDuration: Duration
}

/// Why a snapshot was not written.
public enum SnapshotError: Error, CustomStringConvertible {
    /// An engine in memory has nowhere to write one.
    case inMemory
    /// The log could not be written, so the state is not durable to snapshot.
    case logFailed(WALIOError)
    case io(WALIOError)

    public var description: String {
        switch self {
        case .inMemory: "no data directory: an engine in memory takes no snapshots"
        case .logFailed(let e): "the log could not be written (\(e)); no snapshot of a state that is not durable"
        case .io(let e): "the snapshot could not be written: \(e)"
        }
    }
}

/// The snapshot bookkeeping of an engine: one snapshot at a time, and the LSN of the last one.
struct SnapshotBookkeeping: Sendable {
    var running = false
    var lastLSN: UInt64 = 0
    var last: SnapshotReport?
    /// After a snapshot taken by itself failed (a full disk), the next is not tried before this.
    var retryAfter: ContinuousClock.Instant?
}

extension Engine {
    /// Writes a snapshot of the state now, and removes snapshots older than the one before it.
    /// Waits for a snapshot already being written to finish first, so the one written includes
    /// everything acknowledged before this call.
    public func writeSnapshot() async throws(SnapshotError) -> SnapshotReport {
        guard let directory = dataDirectory, let log = ledger.log else { throw .inMemory }
        while true {
            let started = snapshots.withLock { s -> Bool in
                if s.running { return false }
                s.running = true
                return true
            }
            if started { break }
            try? await Task.sleep(for: .milliseconds(2))
        }
        defer { snapshots.withLock { $0.running = false } }
        let started = ContinuousClock.now
        let (capture, captureDuration) = await captureSnapshot()
        do {
            // Read after the keys were copied: every key in the snapshot has its record durable.
            try await log.waitUntilAcknowledged(ledger.lastLSN)
        } catch {
            throw .logFailed(error)
        }
        // Building, encoding and writing take long at a million cells: off the caller's thread.
        let createdAt = clock.now()
        let retention = configuration.logRetentionByteCount
        let fileSystem = self.fileSystem
        let written: Result<(contents: SnapshotContents, lists: CapturedLists, fileName: String, byteCount: Int), SnapshotError> = await Self.onOwnThread {
            Result { () throws(SnapshotError) in
                let (contents, lists, oldestKeyRecord) = self.snapshotParts(of: capture, createdAt: createdAt)
                do throws(WALIOError) {
                    let written = try SnapshotStore.write(contents, lists: lists, directory: directory, fileSystem: fileSystem)
                    try SnapshotStore.pruneOlder(directory: directory, fileSystem: fileSystem)
                    // The segments that hold the records of the KEYs memory keeps by LSN stay, whatever
                    // the log's retention: a retry reads its reply there.
                    if let retention, let oldestKept = try SnapshotStore.list(directory: directory, fileSystem: fileSystem).last {
                        let keepFrom = min(oldestKept.lsn + 1, oldestKeyRecord)
                        let removed = try SegmentRetention.trim(directory: directory, keepFrom: keepFrom, byteCountMax: retention, fileSystem: fileSystem)
                        self.logReader?.forget(segments: removed)
                    }
                    return (contents, lists, written.fileName, written.byteCount)
                } catch {
                    throw .io(error)
                }
            }
        }
        let (contents, lists, fileName, byteCount) = try written.get()
        let report = SnapshotReport(
            fileName: fileName, lsn: contents.lsn, byteCount: byteCount, cellCount: lists.cellCount,
            reservationCount: lists.reservationCount, keyCount: contents.keys.count + contents.loggedKeys.count, captureDuration: captureDuration,
            totalDuration: ContinuousClock.now - started)
        snapshots.withLock {
            $0.lastLSN = max($0.lastLSN, report.lsn)
            $0.last = report
            $0.retryAfter = nil
        }
        return report
    }

    /// The last snapshot written by this process, if any.
    public var lastSnapshot: SnapshotReport? { snapshots.withLock { $0.last } }

    /// Starts a snapshot in the background when `snapshotEveryRecords` records were logged since the
    /// last one (and none is being written). The engine's timer calls it.
    func snapshotIfDue() {
        let every = configuration.snapshotEveryRecords
        guard every > 0, dataDirectory != nil else { return }
        let last = ledger.lastLSN
        let now = ContinuousClock.now
        let due = snapshots.withLock { s -> Bool in
            guard !s.running, last >= s.lastLSN + every, s.retryAfter.map({ now >= $0 }) ?? true else { return false }
            // Not tried again for 30 s unless this one succeeds (which clears it).
            s.retryAfter = now + .seconds(30)
            return true
        }
        guard due else { return }
        Task.detached(priority: .utility) { [weak self] in
            do {
                _ = try await self?.writeSnapshot()
            } catch {
                FileHandle.standardError.write(Data("stockpile: \(error); the next snapshot is tried in 30 s\n".utf8))
            }
        }
    }

    /// What a snapshot copies while every shard is held: each shard's tables (copy-on-write), the
    /// catalog and the ledger's position; then the keys, once those pending then have settled.
    struct SnapshotCapture: Sendable {
        var shards: [(cells: CellTable, reservations: ReservationTable, counters: StockCounters)]
        var catalog: Catalog
        var position: (lastLSN: UInt64, nextSeq: UInt64)
        var keys: [(String, KeyRecord)] = []
    }

    /// The state at one LSN, with how long every shard was held. Returns once every key pending at
    /// that moment has settled.
    func captureSnapshot() async -> (SnapshotCapture, Duration) {
        let clock = ContinuousClock()
        let heldFrom = clock.now
        let (capture, pendingKeys) = holdingShards(allShards) {
            (
                SnapshotCapture(
                    shards: shards.map { shard in shard.withHeldState { ($0.cells, $0.reservations, $0.counters) } },
                    catalog: shards[0].withHeldState { $0.catalog }, position: ledger.position),
                keys.pendingNames()
            )
        }
        let captureDuration = clock.now - heldFrom
        for name in pendingKeys { _ = await keys.lookup(name) }
        var settled = capture
        settled.keys = keys.all()
        return (settled, captureDuration)
    }

    /// The snapshot of a capture, its cells and reservations gathered into lists (in the codec's
    /// order), as a start-up would load it; with the LSN of the oldest record a KEY of the capture is
    /// kept by, as `snapshotParts` gives it.
    func contents(of capture: SnapshotCapture, createdAt: Timestamp) -> (contents: SnapshotContents, oldestKeyRecord: UInt64) {
        var (contents, lists, oldestKeyRecord) = snapshotParts(of: capture, createdAt: createdAt)
        contents.cells.reserveCapacity(lists.cellCount)
        contents.reservations.reserveCapacity(lists.reservationCount)
        do throws(WALIOError) {
            try lists.forEachCell { contents.cells.append($0) }
            try lists.forEachReservation { contents.reservations.append($0.reservation) }
        } catch {
            preconditionFailure("gathering into lists throws nothing")
        }
        return (contents, oldestKeyRecord)
    }

    /// The snapshot of a capture as the codec writes it: its cells and reservations as lists read
    /// from the captured tables as they are written (`CapturedLists`), everything else in `contents`
    /// (whose cells and reservations are left empty): keys, catalog and counters, and the recent
    /// entries memory still keeps below the capture's next seq. With the LSN of the oldest record a
    /// KEY of the capture is kept by (`UInt64.max` for none), which the log's retention keeps.
    func snapshotParts(of capture: SnapshotCapture, createdAt: Timestamp) -> (contents: SnapshotContents, lists: CapturedLists, oldestKeyRecord: UInt64) {
        let counters = capture.shards.reduce(StockCounters()) { $0 + $1.counters }
        // A key the log keeps is written with its record's LSN, which the log keeps for it (retention
        // trims from the oldest); one kept in memory with its command and reply. The keys are copied
        // after the shards were let go: one whose record comes after the snapshot's LSN is left to
        // the replay of that record (a log cut after the snapshot's LSN would leave it pointing at a
        // record that is not its own).
        var keyUses: [KeyUse] = []
        var loggedKeys: [LoggedKey] = []
        var oldestKeyRecord = UInt64.max
        for (key, record) in capture.keys {
            if let lsn = record.loggedLSN, let usedAt = record.usedAt {
                oldestKeyRecord = min(oldestKeyRecord, lsn)
                if lsn <= capture.position.lastLSN { loggedKeys.append(LoggedKey(key: key, usedAt: usedAt, lsn: lsn)) }
            } else if let use = record.keptUse {
                keyUses.append(use)
            }
        }
        let contents = SnapshotContents(
            lsn: capture.position.lastLSN, createdAt: createdAt, nextSeq: capture.position.nextSeq,
            warehouses: Array(capture.catalog.warehouses.values), policies: Array(capture.catalog.policies.values), cells: [],
            reservations: [], keys: keyUses, loggedKeys: loggedKeys, counters: counters, recentEntries: ledger.recentEntries(below: capture.position.nextSeq))
        return (contents, CapturedLists(capture.shards.map { ($0.cells, $0.reservations) }), oldestKeyRecord)
    }

    /// Puts a snapshot's cells and reservations into their shards, in a new engine, before `restore`
    /// puts in the rest: as a start-up decodes them (`loadDurableState`, handing over the functions
    /// `cells` and `reservations` return), or from the lists a snapshot was gathered into (`restore`).
    /// Cells go in a shard's 1,024 at a time under one hold of its lock (a hold for each cost as much
    /// as the rest of its insertion), each cell's name hashed once for its shard and its table; every
    /// cell is in before the first reservation, whose line finds its cell's place.
    final class SnapshotRestorer {
        private let engine: Engine
        private var waiting: [[(key: CellKey, hash: UInt64, slot: CellSlot)]]
        private static let batchCount = 1024

        init(_ engine: Engine) {
            self.engine = engine
            waiting = Array(repeating: [], count: engine.shards.count)
        }

        /// What takes the snapshot's `count` cells, one at a time: each shard's table is made room
        /// for its share first (`Engine.share`).
        func cells(_ count: Int) -> (SnapshotCell) -> Void {
            let perShard = engine.share(of: count)
            for shard in engine.shards { shard.withState { $0.cells.reserveCapacity(perShard) } }
            return take
        }

        /// What takes the snapshot's `count` reservations, one at a time, once every cell was taken:
        /// into its home shard, with its place in the directory and its due work.
        func reservations(_ count: Int) -> (Reservation) -> Void {
            for s in waiting.indices where !waiting[s].isEmpty { put(s) }
            let perShard = engine.share(of: count)
            for shard in engine.shards { shard.withState { $0.reservations.reserveCapacity(perShard) } }
            return { [engine] r in
                engine.withShard(engine.router.home(of: r)) { shard in shard.withState { $0.store(r) } }
                engine.restoreFollowUps(of: r)
            }
        }

        private func take(_ c: SnapshotCell) {
            let key = CellKey(variant: c.variant, warehouse: c.warehouse)
            let stable = key.stableHash
            let s = engine.router.shard(forStableHash: stable)
            if waiting[s].isEmpty { waiting[s].reserveCapacity(Self.batchCount) }
            waiting[s].append((key, CellTable.hash(stable: stable), CellSlot(state: c.state, belowZeroAllowed: c.belowZeroAllowed)))
            if waiting[s].count == Self.batchCount { put(s) }
        }

        private func put(_ s: Int) {
            engine.withShard(s) { shard in
                shard.withState { state in
                    // Each cell's index slot is asked for 8 cells ahead, so that the misses of a
                    // table that has left the cache since the shard's last batch overlap.
                    let batch = waiting[s]
                    for i in batch.indices {
                        if i + 8 < batch.count { state.cells.prefetch(hash: batch[i + 8].hash) }
                        state.cells[batch[i].key, hash: batch[i].hash, default: batch[i].slot] = batch[i].slot
                    }
                }
            }
            waiting[s].removeAll(keepingCapacity: true)
        }
    }

    /// A restored reservation's place in the directory, its expiries and its forgetting.
    fileprivate func restoreFollowUps(of r: Reservation) {
        directory.restore(r.id, router.mask(of: r.lines.lazy.map(\.cell)))
        if r.isOpen {
            scheduleExpiry(of: r.id, at: r.expiresAt)
            // Its first deadline, which a confirmation or an EXTEND moved: the item there schedules
            // its forgetting if it closes before then (`expiryThatForgets`).
            if let first = Reservation.firstDeadline(createdAt: r.createdAt, ttl: r.requestTTL), first != r.expiresAt {
                scheduleExpiry(of: r.id, at: first)
            }
        }
        if let closed = r.closedAt { scheduleForget(of: r.id, closedAt: closed) }
    }

    /// Loads a snapshot into a new engine, before the log after it is replayed: cells and
    /// reservations to their shards (those of `s.cells` and `s.reservations`, through a
    /// `SnapshotRestorer`; a start-up hands them to one as it reads them, and leaves these empty),
    /// the catalog to every copy, keys and the directory, the ledger's numbering and recent entries,
    /// and the due work (expiries, forgetting) their times imply.
    func restore(_ s: SnapshotContents) {
        var catalog = Catalog()
        for w in s.warehouses { catalog.apply(w) }
        for p in s.policies { catalog.apply(p) }
        self.catalog.withLock { $0 = catalog }
        for (i, shard) in shards.enumerated() {
            shard.withState { state in
                state.catalog = catalog
                state.counters = i == 0 ? s.counters : StockCounters()
            }
        }
        if !s.cells.isEmpty || !s.reservations.isEmpty {
            let restorer = SnapshotRestorer(self)
            s.cells.forEach(restorer.cells(s.cells.count))
            s.reservations.forEach(restorer.reservations(s.reservations.count))
        }
        for k in s.keys { restoreKey(k.key, KeyRecord(command: k.command, reply: k.reply, usedAt: k.time)) }
        // Their records are in the log: retention kept every segment from the oldest on.
        for k in s.loggedKeys { restoreKey(k.key, KeyRecord(lsn: k.lsn, usedAt: k.usedAt)) }
        ledger.start(nextSeq: s.nextSeq, recent: s.recentEntries)
        snapshots.withLock { $0.lastLSN = s.lsn }
    }

    /// Runs blocking work (encoding, file I/O) on a thread of its own, off the cooperative pool, at a
    /// lower scheduling priority (nice 10): on a busy machine the writers come first.
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            startThread(named: "sp-snapshot") {
                lowerCallingThreadPriority()
                continuation.resume(returning: body())
            }
        }
    }
}

/// The cells and reservations of a snapshot's capture, read from the captured tables in the codec's
/// order as they are written, without being gathered: each shard's cells are sorted by name, and its
/// reservations by id, as positions (4 bytes each; the names are sorted beside them one shard at a
/// time, and let go), and the shards' sorted positions are merged as the encoder asks for the next
/// value. Gathered into lists first, a million cells' snapshot took as much memory again as the
/// state itself. A cell is in one shard and a reservation in its home shard only, so no two values
/// the merge compares are equal.
struct CapturedLists: SnapshotLists {
    // Each shard's tables in an array of their own: read out of an array of pairs, the pair was
    // copied whole (a retain and a release of each of its tables' buffers) at every value.
    private let cells: [CellTable]
    private let reservations: [ReservationTable]
    private let cellOrders: [[Int32]]
    private let reservationOrders: [[Int32]]
    let cellCount: Int
    let reservationCount: Int

    init(_ shards: [(cells: CellTable, reservations: ReservationTable)]) {
        cells = shards.map(\.cells)
        reservations = shards.map(\.reservations)
        cellOrders = cells.map { table in SnapshotCodec.sortedPositions(table.count) { Self.name(table.key(at: $0)) } }
        reservationOrders = reservations.map { $0.positionsByID() }
        cellCount = cells.reduce(0) { $0 + $1.count }
        reservationCount = reservations.reduce(0) { $0 + $1.count }
    }

    /// A cell's names in the order the codec sorts cells by (the merge must follow the format's order).
    private static func name(_ key: CellKey) -> SnapshotCodec.CellName { SnapshotCodec.CellName(key.variant, key.warehouse) }

    /// Calls `body` with each shard and position of `orders` in the order of their names: each time
    /// the shard whose next name is the smallest. The shards are kept in a heap of their numbers, so
    /// that sifting moves integers, not names; the caller keeps each shard's next name where it
    /// likes: `load` is called with a shard and the position whose name is now its next, and `less`
    /// compares two shards' next names.
    /// `ahead` is called with a shard and its next rank each time the shard's next name changes (and
    /// for each shard at the start), so that the caller can ask for what it will read some ranks on:
    /// in name order the entries lie at random places of the tables.
    private static func merge(
        _ orders: [[Int32]], load: (_ shard: Int, _ position: Int) -> Void, less: (_ a: Int, _ b: Int) -> Bool,
        ahead: (_ shard: Int, _ rank: Int) -> Void, _ body: (_ shard: Int, _ position: Int) throws(WALIOError) -> Void
    ) throws(WALIOError) {
        var heap = orders.indices.filter { !orders[$0].isEmpty }
        for s in heap {
            ahead(s, 0)
            load(s, Int(orders[s][0]))
        }
        var ranks = [Int](repeating: 0, count: orders.count)
        func siftDown(_ from: Int) {
            var i = from
            while true {
                let left = 2 * i + 1
                guard left < heap.count else { return }
                var smallest = left
                if left + 1 < heap.count && less(heap[left + 1], heap[left]) { smallest = left + 1 }
                guard less(heap[smallest], heap[i]) else { return }
                heap.swapAt(i, smallest)
                i = smallest
            }
        }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        while let s = heap.first {
            try body(s, Int(orders[s][ranks[s]]))
            ranks[s] += 1
            ahead(s, ranks[s])
            if ranks[s] < orders[s].count {
                load(s, Int(orders[s][ranks[s]]))
            } else {
                heap.swapAt(0, heap.count - 1)
                heap.removeLast()
            }
            siftDown(0)
        }
    }

    /// How many ranks ahead of a shard's next name its entry is asked for (`merge`'s `ahead`); a
    /// reservation's cell, and its id's bytes when its string keeps them apart, are asked for half as
    /// far ahead, read from its entry by then in the cache. (Without the id's bytes asked for, copying
    /// each id for the merge waited for them: 11% of a snapshot's samples, with 41-byte ids.)
    private static let prefetchDistance = 8

    func forEachCell(_ body: (SnapshotCell) throws(WALIOError) -> Void) throws(WALIOError) {
        let d = Self.prefetchDistance
        // Each shard's next name (a shard with none left keeps one it is never compared by).
        var heads = [SnapshotCodec.CellName](repeating: SnapshotCodec.CellName("", ""), count: cells.count)
        try Self.merge(
            cellOrders, load: { s, p in heads[s] = Self.name(cells[s].key(at: p)) }, less: { heads[$0] < heads[$1] },
            ahead: { s, r in if r + d < cellOrders[s].count { cells[s].prefetchEntry(at: Int(cellOrders[s][r + d])) } }
        ) { (s, p) throws(WALIOError) in
            let slot = cells[s][position: p]
            try body(SnapshotCell(variant: heads[s].variant, warehouse: heads[s].warehouse, state: slot.state, belowZeroAllowed: slot.belowZeroAllowed))
        }
    }

    func forEachReservation(_ body: (SnapshotReservation) throws(WALIOError) -> Void) throws(WALIOError) {
        let d = Self.prefetchDistance
        // Each shard's next id, its bytes copied into a slot of `IDHeads` and compared there: kept as
        // a `String`, each was a retain and a release, and each comparison a call through String's
        // comparison (ids are printable ASCII, whose byte order is String's order).
        let heads = IDHeads(shardCount: reservations.count)
        // The shards' tables and orders read through buffers: read out of the arrays, each table was
        // copied (a retain and a release of its storage) at each of millions of calls.
        try reservations.withUnsafeBufferPointer { (reservations) throws(WALIOError) in
            try cells.withUnsafeBufferPointer { (cells) throws(WALIOError) in
                try reservationOrders.withUnsafeBufferPointer { (orders) throws(WALIOError) in
                    try Self.merge(
                        reservationOrders,
                        load: { s, p in
                            if reservations[s].withIDBytes(at: p, { heads.set(s, to: $0) }) { return }
                            heads.lengthenSlots(to: reservations[s].withIDBytes(at: p) { $0.count })
                            _ = reservations[s].withIDBytes(at: p) { heads.set(s, to: $0) }
                        },
                        less: { heads.isLess($0, than: $1) },
                        ahead: { s, r in
                            orders[s].withUnsafeBufferPointer { order in
                                if r + d < order.count { reservations[s].prefetchEntry(at: Int(order[r + d])) }
                                if r + d / 2 < order.count {
                                    let p = Int(order[r + d / 2])
                                    cells[s].prefetchEntry(at: reservations[s].cellPosition(at: p))
                                    reservations[s].prefetchID(at: p)
                                }
                            }
                        }
                    ) { (s, p) throws(WALIOError) in
                        // Read only: the pointer is mutable so that the table is read in place.
                        try reservations[s].withSnapshotReservation(at: p, cells: UnsafeMutablePointer(mutating: cells.baseAddress! + s), body)
                    }
                }
            }
        }
    }
}

/// The next id of each shard in a snapshot's merge of the shards' reservations (`CapturedLists`):
/// its UTF-8 bytes in a slot of its own, compared as bytes. Reservation ids are printable ASCII
/// (`Identifiers.isValidReservationID`), whose byte order is `String`'s order, which the format sorts
/// by. A slot holds `Limits.reservationIDByteCountMax` bytes, what validation lets in; a longer id
/// (none is ever made) makes every slot as long, instead of stopping the snapshot.
final class IDHeads {
    private var slotByteCount = Limits.reservationIDByteCountMax
    private var bytes: UnsafeMutableRawPointer
    private let counts: UnsafeMutablePointer<Int>
    private let shardCount: Int

    init(shardCount: Int) {
        self.shardCount = Swift.max(1, shardCount)
        bytes = .allocate(byteCount: self.shardCount * slotByteCount, alignment: 8)
        counts = .allocate(capacity: self.shardCount)
        counts.initialize(repeating: 0, count: self.shardCount)
    }

    deinit {
        bytes.deallocate()
        counts.deallocate()
    }

    /// Makes `id` shard `shard`'s next id; false, changing nothing, when it is longer than a slot
    /// (then `lengthenSlots` and set it again). It calls nothing: a call made while the caller reads
    /// the id where its table keeps it would have it retain the id's storage for the call.
    @inline(__always) func set(_ shard: Int, to id: UnsafeRawBufferPointer) -> Bool {
        guard id.count <= slotByteCount else { return false }
        if let base = id.baseAddress { (bytes + shard * slotByteCount).copyMemory(from: base, byteCount: id.count) }
        counts[shard] = id.count
        return true
    }

    /// Makes every slot `byteCount` long, keeping what each holds.
    func lengthenSlots(to byteCount: Int) {
        let longer = UnsafeMutableRawPointer.allocate(byteCount: shardCount * byteCount, alignment: 8)
        for s in 0..<shardCount { (longer + s * byteCount).copyMemory(from: bytes + s * slotByteCount, byteCount: counts[s]) }
        bytes.deallocate()
        bytes = longer
        slotByteCount = byteCount
    }

    /// Whether shard `a`'s id sorts before shard `b`'s.
    @inline(__always) func isLess(_ a: Int, than b: Int) -> Bool {
        let n = Swift.min(counts[a], counts[b])
        let order = memcmp(bytes + a * slotByteCount, bytes + b * slotByteCount, n)
        return order != 0 ? order < 0 : counts[a] < counts[b]
    }
}
