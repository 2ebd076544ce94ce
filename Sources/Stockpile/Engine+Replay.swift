// Replay of the log at start-up, by shard. A record changes two kinds of state: what the engine keeps
// for all shards (the directory of reservation ids, the ledger's numbering and recent entries, the
// idempotency keys, the catalog, the work due later) and what each shard it touches keeps (its cells,
// the reservations whose home it is, its copy of the catalog, its counters). The first must follow
// the log's order over all records; the second only the log's order over the records of that shard,
// since a shard's state is changed by nothing but its own part of each record (the same `apply` that
// made it, which reads nothing outside the shard).
//
// So a replay is a pipeline of batches: one thread reads, checks and decodes the log; the next does
// each record's first part, in LSN order, and notes for each record the shards it touches and what
// each must do; then one or more appliers each apply
// the shard parts of the shards they own, each in LSN order, every applier at its own pace. Appliers
// share nothing but the batches, which none of them changes. The ledger's ring of recent entries is
// filled by the thread common to all shards once it has prepared the last batch (while the appliers
// finish), from the last batches only: of a long log, all but the ring's worth of
// newest entries would be overwritten as soon as kept (`RecentBatches`). A record that touches
// several shards (a reservation of several lines, a catalog change, a RESET) is applied by each of
// its shards' appliers to that shard alone, as a live commit applies it shard by shard while holding
// them; a new reservation whose id was forgotten while its earlier home was another shard has that
// shard drop the earlier one, at the same place in that shard's order. It keeps true: once the last
// applier is done, the engine is what a replay of every record in LSN order on one thread makes.

import Foundation
import StockpileCore
import StockpileWAL
import Synchronization

/// One shard's part of one record of a `ReplayBatch`.
struct ShardAction: Sendable {
    enum Kind: UInt8, Sendable {
        /// A `reservation` record: its cell's entry and the new reservation (this is its home).
        case reservation
        /// A commit every cell and reservation of which this shard owns.
        case commitOwnsAll
        /// The part of a commit that spans shards that this shard owns.
        case commitPart
        /// Drop the reservation the record's id named before it was forgotten (this was its home).
        case forget
    }

    /// The record's place in its batch.
    var record: Int32
    var kind: Kind
}

/// Records read from the log, their part common to all shards done, and each shard's part in LSN
/// order. Never changed once made.
final class ReplayBatch: Sendable {
    let records: RecoveredBatch
    /// The reservation id of each commit that carries one, hashed; nil for other records (a
    /// `reservation` record carries its hashes).
    let hashedIDs: [HashedID?]
    /// By shard: the actions its applier applies to it, in LSN order.
    let actions: [[ShardAction]]
    /// How many ledger entries the records carry.
    let entryCount: Int

    init(records: RecoveredBatch, hashedIDs: [HashedID?], actions: [[ShardAction]], entryCount: Int) {
        self.records = records
        self.hashedIDs = hashedIDs
        self.actions = actions
        self.entryCount = entryCount
    }
}

/// What an applier keeps from one batch to the next: the place in its shard of each cell a
/// reservation record of the segment being read named, by the number the segment gave the cell (an
/// integer handle: FORMAT.md §3.8), so that the cell's index is probed once per segment, not once per
/// record. A cell keeps its place until a RESET, and belongs to one shard, so to one applier.
struct ReplayCellPlaces {
    private var segment: UInt64 = 0
    /// By cell number: its place, or -1 before it was found.
    private var places: [Int32] = []

    /// Starts `batch`: a batch of another segment starts with no place known.
    mutating func start(_ batch: RecoveredBatch) {
        guard batch.segment != segment else { return }
        segment = batch.segment
        places.removeAll(keepingCapacity: true)
    }

    func place(ofCell n: Int32) -> Int? {
        let i = Int(n)
        return i < places.count && places[i] >= 0 ? Int(places[i]) : nil
    }

    mutating func note(cell n: Int32, at place: Int) {
        let i = Int(n)
        if i >= places.count { places.append(contentsOf: repeatElement(-1, count: i + 1 - places.count)) }
        places[i] = Int32(place)
    }

    /// Forgets every place: a RESET emptied the cells.
    mutating func removeAll() { places.removeAll(keepingCapacity: true) }
}

/// How far a replay is, for its progress lines.
struct ReplayProgress {
    var count = 0
    var nextReport = ContinuousClock.now + .seconds(1)
}

/// Batches handed from one stage of a replay to the next (from the thread that reads the log to the
/// one that prepares its batches, and from that one to the appliers). What waits is bounded by the
/// log's bytes its batches stand for (`logByteCountMax`, and `batchCountMax` batches), so memory
/// holds a few megabytes of the log decoded, not the whole log. Every consumer takes every batch, in
/// order; a batch is let go once all have taken it.
final class BatchHandoff<Batch: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    /// The batches some consumer has not taken yet; `batches[0]` is batch number `firstNumber`.
    private var batches: [Batch] = []
    /// The log's bytes `batches` stand for (`logByteCount`), and the most they stood for at once
    /// so far (for tests).
    private var waitingByteCount = 0
    private var mostWaitingByteCount = 0
    private var firstNumber = 0
    /// By consumer: the number of the next batch it takes.
    private var next: [Int]
    private var result: Result<LogRecovery.Result, LogRecoveryError>?
    private var workDuration = Duration.zero
    /// How long the producer waited for the consumers to take batches (not working).
    private var blockedDuration = Duration.zero
    private let logByteCount: (Batch) -> Int

    /// The most of the log's bytes whose batches wait at a time: 8 MiB, about 170,000 one-line
    /// reservation records (some 40 MB decoded). With eight batches of 1,024 records the stages
    /// waited for each other, and the two cores were a fifth idle through a replay: 2.34-2.53 M
    /// records/s against 2.63-2.87 M with 128.
    static var logByteCountMax: Int { 8 << 20 }
    /// The most batches waiting at a time, whatever their size.
    static var batchCountMax: Int { 1024 }

    /// `logByteCount`: the log's bytes a batch stands for.
    init(consumerCount: Int, logByteCount: @escaping (Batch) -> Int) {
        next = Array(repeating: 0, count: consumerCount)
        self.logByteCount = logByteCount
    }

    /// Producer side: waits while the batches waiting stand for `logByteCountMax` bytes of the log or
    /// more (or number `batchCountMax`). A batch is let in whatever its own size, so at most one
    /// batch's worth waits past the bound.
    func put(_ batch: Batch) {
        let byteCount = logByteCount(batch)
        condition.lock()
        if isFull {
            let blockedFrom = ContinuousClock.now
            while isFull { condition.wait() }
            blockedDuration += ContinuousClock.now - blockedFrom
        }
        batches.append(batch)
        waitingByteCount += byteCount
        mostWaitingByteCount = max(mostWaitingByteCount, waitingByteCount)
        condition.broadcast()
        condition.unlock()
    }

    /// The most of the log's bytes whose batches waited at once so far (for tests).
    var mostWaitingLogByteCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return mostWaitingByteCount
    }

    /// Holding the lock: whether the next batch waits for room.
    private var isFull: Bool {
        !batches.isEmpty && (waitingByteCount >= Self.logByteCountMax || batches.count >= Self.batchCountMax)
    }

    /// Producer side, at the end: what the log's reading ended with, and `elapsed`, the producer's
    /// whole time, waits included.
    func finish(_ result: Result<LogRecovery.Result, LogRecoveryError>, elapsed: Duration) {
        condition.lock()
        self.result = result
        self.workDuration = elapsed - blockedDuration
        condition.broadcast()
        condition.unlock()
    }

    /// Consumer side: consumer `consumer`'s next batch, or nil once the producer finished and it took all.
    func take(consumer: Int) -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while next[consumer] >= firstNumber + batches.count && result == nil { condition.wait() }
        guard next[consumer] < firstNumber + batches.count else { return nil }
        let batch = batches[next[consumer] - firstNumber]
        next[consumer] += 1
        let taken = next.min()! - firstNumber
        if taken > 0 {
            waitingByteCount -= batches[..<taken].reduce(0) { $0 + logByteCount($1) }
            batches.removeFirst(taken)
            firstNumber += taken
            condition.broadcast()
        }
        return batch
    }

    /// What the reading ended with, and the producer's time spent working (without its waits for the
    /// consumers); call after `take` returned nil.
    func outcome() -> (Result<LogRecovery.Result, LogRecoveryError>, Duration) {
        condition.lock()
        defer { condition.unlock() }
        return (result!, workDuration)
    }
}

/// The last batches of a replay, as many as hold the ledger ring's worth of newest entries: the ring
/// is filled from them once every batch is prepared, so that the entries a long log would overwrite
/// in the ring as fast as it kept them are never kept. Written and read by the thread that prepares
/// batches, which fills the ring after its last batch, while the appliers finish theirs.
final class RecentBatches: @unchecked Sendable {
    private let entryCount: Int
    private var batches: [ReplayBatch] = []
    private var first = 0
    private var total = 0

    /// `entryCount`: how many entries the ring keeps.
    init(entryCount: Int) { self.entryCount = entryCount }

    /// Notes `batch`, the next in LSN order, and lets go of the oldest batches not needed for the
    /// newest `entryCount` entries.
    func note(_ batch: ReplayBatch) {
        batches.append(batch)
        total += batch.entryCount
        while first < batches.count - 1 && total - batches[first].entryCount >= entryCount {
            total -= batches[first].entryCount
            first += 1
        }
        // The array is compacted now and then, not at every batch.
        if first >= 64 && first * 2 >= batches.count {
            batches.removeFirst(first)
            first = 0
        }
    }

    /// Keeps the entries of the noted batches in the ledger's ring, in LSN order (the newest of each
    /// slot stays).
    func keepEntries(in ledger: Ledger) {
        for batch in batches[first...] {
            let records = batch.records
            for item in records.items {
                if let i = item.reservation {
                    ledger.keepReplayed(records.reservations[i].entry)
                } else if case .commit(let commit) = records.others[item.other!].body {
                    for e in commit.entries { ledger.keepReplayed(e) }
                }
            }
        }
        batches.removeAll()
        first = 0
        total = 0
    }
}

extension Engine {
    /// How many threads apply the shards' parts of a replay: `configuration.replayThreadCount`, at
    /// most one per shard.
    var replayApplierCount: Int { max(1, min(configuration.replayThreadCount, shards.count)) }

    /// Reads the log after `snapshotLSN` (up to `bound`, when given) on a thread of its own; does each
    /// record's part common to all shards on another, in order; applies the shards' parts on this
    /// thread and `replayApplierCount - 1` more. Each stage works on one batch while the next stage
    /// works on the one before. Returns when every record read was applied, with what the reading
    /// ended with and the reader's time spent reading.
    func replayLog(
        directory: String, after snapshotLSN: UInt64, through bound: UInt64?, warn: (String) -> Void
    ) -> (outcome: Result<LogRecovery.Result, LogRecoveryError>, readDuration: Duration, recordsReplayed: Int) {
        let applierCount = replayApplierCount
        let read = BatchHandoff<RecoveredBatch>(consumerCount: 1) { $0.logByteCount }
        let handoff = BatchHandoff<ReplayBatch>(consumerCount: applierCount) { $0.records.logByteCount }
        let fileSystem = self.fileSystem
        startThread(named: "sp-recovery") {
            let readStarted = ContinuousClock.now
            let result = Result { () throws(LogRecoveryError) -> LogRecovery.Result in
                try LogRecovery.recover(directory: directory, after: snapshotLSN, fileSystem: fileSystem) { records in
                    // Records come in LSN order; those past the bound are not durable (written, never synced).
                    let kept = bound.map { records.prefix(through: $0) } ?? records
                    guard !kept.isEmpty else { return }
                    read.put(kept)
                }
            }
            read.finish(result, elapsed: ContinuousClock.now - readStarted)
        }
        let recent = RecentBatches(entryCount: ledger.capacity)
        // Reservations made again whose tag had a slot already, for `reconcile` once every shard has
        // applied every record (usually none).
        let ambiguousAtEnd = Mutex<[(hash: Int, shards: UInt64)]>([])
        startThread(named: "sp-replay") {
            let started = ContinuousClock.now
            var ambiguous: [(hash: Int, shards: UInt64)] = []
            while let records = read.take(consumer: 0) {
                let batch = self.prepareReplay(records, ambiguous: &ambiguous)
                recent.note(batch)
                handoff.put(batch)
            }
            // The ring is filled here, while the appliers finish the last batches: they change only
            // the shards, and the ledger is this thread's until the replay returns.
            recent.keepEntries(in: self.ledger)
            ambiguousAtEnd.withLock { $0 = ambiguous }
            handoff.finish(read.outcome().0, elapsed: ContinuousClock.now - started)
        }
        let helpersDone = DispatchSemaphore(value: 0)
        for a in 1..<applierCount {
            startThread(named: "sp-replay-\(a)") {
                var places = ReplayCellPlaces()
                while let batch = handoff.take(consumer: a) { self.applyReplay(batch, applier: a, places: &places) }
                helpersDone.signal()
            }
        }
        var progress = ReplayProgress()
        var places = ReplayCellPlaces()
        while let batch = handoff.take(consumer: 0) {
            if ContinuousClock.now >= progress.nextReport {
                warn("replaying the log: \(progress.count) records so far")
                progress.nextReport = ContinuousClock.now + .seconds(1)
            }
            applyReplay(batch, applier: 0, places: &places)
            progress.count += batch.records.count
        }
        for _ in 1..<applierCount { helpersDone.wait() }
        // The preparer kept the ring's entries before it finished (which `take` returning nil saw).
        let (outcome, _) = handoff.outcome()
        for a in ambiguousAtEnd.withLock({ $0 }) {
            for s in a.shards.setBitIndexes { self.directory.reconcile(hash: a.hash, shard: s) }
        }
        return (outcome, read.outcome().1, progress.count)
    }

    /// Does the part of each of `records` (in LSN order) that is common to all shards, in order, and
    /// notes each shard's part, for its applier (shard `s` is applier `s % replayApplierCount`'s).
    /// `ambiguous`: where the directory notes the reservations made again whose tag had a slot.
    func prepareReplay(_ records: RecoveredBatch, ambiguous: inout [(hash: Int, shards: UInt64)]) -> ReplayBatch {
        // A reservation record's fields are read where the batch keeps them: a copy would copy them all.
        let (hashedIDs, actions, entryCount) = records.reservations.withUnsafeBufferPointer {
            prepareReplay(records, fields: $0, ambiguous: &ambiguous)
        }
        return ReplayBatch(records: records, hashedIDs: hashedIDs, actions: actions, entryCount: entryCount)
    }

    private func prepareReplay(
        _ batch: RecoveredBatch, fields: UnsafeBufferPointer<CompactReservation>, ambiguous: inout [(hash: Int, shards: UInt64)]
    ) -> ([HashedID?], [[ShardAction]], Int) {
        var entryCount = 0
        let count = batch.count
        var actions = [[ShardAction]](repeating: [], count: shards.count)
        for s in actions.indices { actions[s].reserveCapacity(count / shards.count + 16) }
        func add(_ record: Int, shard: Int, _ kind: ShardAction.Kind) {
            actions[shard].append(ShardAction(record: Int32(record), kind: kind))
        }
        // Each commit's reservation id is hashed once, below, for the directory and for its home shard
        // (a `reservation` record carries its hashes).
        var hashedIDs = [HashedID?](repeating: nil, count: count)
        // The directory's part, a segment of records at a time: the ids a segment's records make are
        // set in one call, whose writes overlap (`ReservationDirectory.replace`), each with the mask
        // its record gives it, and the shards that may have kept each before are read back in the
        // loop below. A segment ends with a RESET, which empties the directory when the loop reaches it.
        // Each id's hash, mask and whether its record makes it; its name stays where the record keeps
        // it (`nameAt`): a list of the names retained and released every id, a tenth of this thread's time.
        var names: [(hash: Int, value: UInt64, makes: Bool)] = []
        // The record of each entry of `names`.
        var recordOfName: [Int32] = []
        var nameOf = [Int32](repeating: -1, count: count)
        func nameAt(_ n: Int) -> String {
            let k = Int(recordOfName[n])
            if let i = batch.items[k].reservation { return fields[i].id }
            return hashedIDs[k]!.id
        }
        // The shards that may keep each name's reservation before its record (`ReservationDirectory.replace`).
        var old: [UInt64] = []
        var segmentEnd = 0
        func setDirectory(from start: Int) -> Int {
            names.removeAll(keepingCapacity: true)
            recordOfName.removeAll(keepingCapacity: true)
            var k = start
            while k < count {
                defer { k += 1 }
                if let i = batch.items[k].reservation {
                    nameOf[k] = Int32(names.count)
                    recordOfName.append(Int32(k))
                    names.append((batch.hashes[i].id, 1 << UInt64(router.shard(forStableHash: batch.hashes[i].cell)), true))
                    continue
                }
                guard case .commit(let commit) = batch.others[batch.items[k].other!].body else { continue }
                if let r = commit.reservation {
                    let hashed = HashedID(r.id)
                    hashedIDs[k] = hashed
                    nameOf[k] = Int32(names.count)
                    recordOfName.append(Int32(k))
                    names.append((hashed.hash, router.mask(of: r.lines.lazy.map(\.cell)), commit.entries.first?.type == .reserve))
                }
                if commit.isReset { break }
            }
            names.withUnsafeBufferPointer { directory.replace($0, name: nameAt, shards: &old, ambiguous: &ambiguous) }
            return k
        }
        for k in 0..<count {
            if k == segmentEnd { segmentEnd = setDirectory(from: k) }
            if let i = batch.items[k].reservation {
                // One new one-line reservation: its cell's shard is its home (its mask in the
                // directory, set above) and owns its cell.
                let n = Int(nameOf[k])
                // A reservation already there is one forgotten earlier (forgetting is not logged).
                for s in old[n].setBitIndexes { add(k, shard: s, .forget) }
                add(k, shard: names[n].value.trailingZeroBitCount, .reservation)
                ledger.restoreNumbering(of: 1, from: fields[i].seq)
                entryCount += 1
                if let deadline = fields[i].expiresAt { scheduleExpiry(of: fields[i].id, hash: names[n].hash, at: deadline) }
                continue
            }
            switch batch.others[batch.items[k].other!].body {
            case .commit(let commit):
                var mask = router.mask(of: commit.entries.lazy.filter(\.touchesCell).map(\.cell))
                if nameOf[k] >= 0 {
                    let n = Int(nameOf[k])
                    mask |= names[n].value
                    // Made by this commit, an entry already there is one forgotten earlier.
                    if names[n].makes {
                        for s in old[n].setBitIndexes { add(k, shard: s, .forget) }
                    }
                }
                if commit.warehouse != nil || commit.policy != nil { mask = allShards }
                if commit.isReset { clearTablesForReset() }
                if mask.nonzeroBitCount == 1 {
                    add(k, shard: mask.trailingZeroBitCount, .commitOwnsAll)
                } else {
                    for s in mask.setBitIndexes { add(k, shard: s, .commitPart) }
                }
                if let first = commit.entries.first {
                    for (i, e) in commit.entries.enumerated() { precondition(e.seq == first.seq + UInt64(i), "a commit's entries are numbered in a row") }
                    ledger.restoreNumbering(of: commit.entries.count, from: first.seq)
                    entryCount += commit.entries.count
                }
                if let w = commit.warehouse { catalog.withLock { $0.apply(w) } }
                if let p = commit.policy { catalog.withLock { $0.apply(p) } }
                if commit.reservation != nil { scheduleFollowUps(of: commit) }
                if let command = commit.keyedCommand, let key = command.key {
                    restoreKey(key, KeyRecord(lsn: batch.firstLSN + UInt64(k), usedAt: commit.time))
                }
            case .keyUse(let use):
                restoreKey(use.key, KeyRecord(lsn: batch.firstLSN + UInt64(k), usedAt: use.time))
            }
        }
        return (hashedIDs, actions, entryCount)
    }

    /// Applies the actions of `batch` for applier `applier`'s shards, shard by shard, each shard's in
    /// order (the only order a shard's state depends on); `places` is the applier's own, kept from
    /// batch to batch.
    func applyReplay(_ batch: ReplayBatch, applier: Int, places: inout ReplayCellPlaces) {
        places.start(batch.records)
        let applierCount = replayApplierCount
        batch.records.reservations.withUnsafeBufferPointer { fields in
            for s in stride(from: applier, to: shards.count, by: applierCount) where !batch.actions[s].isEmpty {
                applyReplay(batch.records, fields: fields, hashedIDs: batch.hashedIDs, actions: batch.actions[s], shard: shards[s], places: &places)
            }
        }
    }

    /// Applies `actions`, one shard's, in order, holding the shard once for them all.
    private func applyReplay(
        _ batch: RecoveredBatch, fields: UnsafeBufferPointer<CompactReservation>, hashedIDs: [HashedID?], actions: [ShardAction],
        shard: Shard, places: inout ReplayCellPlaces
    ) {
        // The slots a reservation record 32 actions ahead will be stored and counted in are asked for
        // now, so that those cache misses overlap with the actions before it (8 ahead was too few for
        // tables of millions; 64 gained nothing more).
        let ahead = 32
        func prefetch(_ i: Int) {
            let a = actions[i]
            guard a.kind == .reservation, let r = batch.items[Int(a.record)].reservation else { return }
            let hashes = batch.hashes[r]
            // A cell whose place is known is not looked up in the index.
            if places.place(ofCell: hashes.cellNumber) == nil {
                shard.prefetch(idHash: hashes.id, cellHash: CellTable.hash(stable: hashes.cell))
            } else {
                shard.prefetch(idHash: hashes.id)
            }
        }
        for i in 0..<min(ahead, actions.count) { prefetch(i) }
        shard.withState { state in
            var i = 0
            while i < actions.count {
                let action = actions[i]
                let k = Int(action.record)
                switch action.kind {
                case .reservation:
                    // A run of reservation records, the shard's tables borrowed once for the run: a
                    // class's property is checked for exclusive access at each access.
                    state.withReplayTables { tables in
                        repeat {
                            if i + ahead < actions.count { prefetch(i + ahead) }
                            guard let r = batch.items[Int(actions[i].record)].reservation else { preconditionFailure("not a reservation record") }
                            let hashes = batch.hashes[r]
                            let known = places.place(ofCell: hashes.cellNumber)
                            let place = tables.replay(
                                fields.baseAddress! + r, cellHash: CellTable.hash(stable: hashes.cell), cellPosition: known, idHash: hashes.id)
                            if known == nil { places.note(cell: hashes.cellNumber, at: place) }
                            i += 1
                        } while i < actions.count && actions[i].kind == .reservation
                    }
                    continue
                case .commitOwnsAll, .commitPart:
                    guard let o = batch.items[k].other, case .commit(let commit) = batch.others[o].body else { preconditionFailure("not a commit") }
                    state.replay(commit, ownsAll: action.kind == .commitOwnsAll, hashedID: hashedIDs[k])
                    // A cell's place is its own until a RESET; clearing every applier's cache of
                    // places is always safe (the next lookups probe the index).
                    if commit.isReset { places.removeAll() }
                case .forget:
                    // The id of a reservation record, or of the commit's reservation (hashed when prepared).
                    let hashed: HashedID
                    if let r = batch.items[k].reservation {
                        hashed = HashedID(fields[r].id, hash: batch.hashes[r].id)
                    } else if let h = hashedIDs[k] {
                        hashed = h
                    } else {
                        preconditionFailure("a forget action without an id")
                    }
                    state.reservations.remove(hashed.id, hash: hashed.hash)
                }
                if i + ahead < actions.count { prefetch(i + ahead) }
                i += 1
            }
        }
    }
}

/// A shard's cells, reservations and counters, moved out of its state together for a run of
/// replayed `reservation` records (`ShardState.withReplayTables`): each of a class's properties is
/// checked for exclusive access at each access, which cost the run's records more than their changes.
struct ReplayTables {
    let shard: Int
    let router: ShardRouter
    let catalog: Catalog
    var cells: CellTable
    var reservations: ReservationTable
    var counters: StockCounters

    /// Applies a `reservation` record's fields (`record`, read where its batch keeps them: a copy of
    /// the fields would copy every name) as `apply` applies the commit they stand for: its one ledger
    /// entry to its cell (`cellHash` is the cell's `CellTable.hash`; at `cellPosition` when the caller
    /// knows it), and the reservation, kept compact as any one-line reservation is (`idHash`: its id's
    /// hash). Returns the cell's position.
    mutating func replay(_ record: UnsafePointer<CompactReservation>, cellHash: UInt64, cellPosition: Int?, idHash: Int) -> Int {
        assert(router.shard(for: record.pointee.cell) == shard, "a reservation record replayed in a shard that does not own its cell")
        assert(cellPosition == nil || cells.key(at: cellPosition!) == record.pointee.cell, "the cell's own position")
        // Its entry applied from the figures the record carries, without building the entry: the
        // ring's entries are kept from the last batches (`RecentBatches`).
        let deltaReserved = record.pointee.tracked ? record.pointee.quantity : .zero
        let after = CellState(onHand: record.pointee.onHandAfter, reserved: record.pointee.reservedAfter)
        let before = CellState(onHand: after.onHand, reserved: after.reserved - deltaReserved)
        let p = applyReservationFigures(
            cells: &cells, counters: &counters, of: record.pointee.cell, hash: cellHash, at: cellPosition, before: before, after: after,
            backorderAllowed: catalog.backorder(of: record.pointee.cell.variant))
        reservations.store(new: record, hash: idHash, cellPosition: p)
        assert(
            reservations.stored(record.pointee.id, hash: idHash)?.reservation(id: record.pointee.id, cells: cells) == record.pointee.commit.reservation,
            "reservation \(record.pointee.id) reads back as its record says")
        return p
    }
}

extension ShardState {
    /// Runs `body` with this shard's tables moved out of the state (not copied: the state holds empty
    /// ones meanwhile, so the run's writes find each table's storage its own) and moved back after.
    func withReplayTables<R>(_ body: (inout ReplayTables) -> R) -> R {
        var tables = ReplayTables(shard: index, router: router, catalog: catalog, cells: cells, reservations: reservations, counters: counters)
        cells = CellTable()
        reservations = ReservationTable()
        defer {
            cells = tables.cells
            reservations = tables.reservations
            counters = tables.counters
        }
        return body(&tables)
    }
}
