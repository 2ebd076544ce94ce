// A durable engine: `open` reads the write-ahead log of a data directory, replays every commit into
// a new engine (the same `apply` that made them, so the state is exactly what was acknowledged; a
// compact `reservation` record is applied from its fields as `apply` applies the commit it stands
// for), and from then on hands every commit to the group committer before any reply reveals it.
// Forgetting at the end of the retention window is not logged; replay schedules it again from the
// commits' times.

import Foundation
import StockpileCore
import StockpileWAL

/// Why a durable engine could not start.
public enum EngineOpenError: Error, CustomStringConvertible {
    case recovery(LogRecoveryError)
    case io(WALIOError)
    case directory(String)

    public var description: String {
        switch self {
        case .recovery(let e): "\(e)"
        case .io(let e): "\(e)"
        case .directory(let message): message
        }
    }
}

extension Engine {
    /// Opens the engine kept in `dataDirectory` (created if missing): recovers the log, replays it,
    /// and logs every later change under `durability`. With `.none` nothing is read or written.
    /// Recovery warnings (a torn tail that was cut, a snapshot passed over) and the progress lines of a
    /// long start-up go to `warn`. `fileSystem` is where the log and snapshots live: the system's, or
    /// a `SimulatedFileSystem` in tests (the data directory's lock file is always a real one).
    /// - Throws: `EngineOpenError` when the log is damaged (the error names the file, the offset and
    ///   the repair command) or the directory cannot be used.
    public static func open(
        dataDirectory: String, durability: DurabilityPolicy, configuration: EngineConfiguration = EngineConfiguration(),
        clock: any EngineClock = SystemClock(), segmentByteCount: Int = SegmentWriter.segmentByteCountDefault,
        fileSystem: any FileSystem = SystemFileSystem(),
        warn: (String) -> Void = { FileHandle.standardError.write(Data(("stockpile: " + $0 + "\n").utf8)) }
    ) throws(EngineOpenError) -> Engine {
        if durability == .none { return Engine(configuration: configuration, clock: clock) }
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw .directory("cannot create the data directory \(dataDirectory): \(error.localizedDescription)")
        }
        // One writer per directory: a second server would interleave its records with ours.
        let lock: DirectoryLock
        do { lock = try DirectoryLock(directory: dataDirectory) } catch { throw .directory("cannot open \(dataDirectory): \(error)") }
        let started = ContinuousClock.now
        let engine = Engine(configuration: configuration, clock: clock, directoryLock: lock, fileSystem: fileSystem)
        let loaded = try engine.loadDurableState(from: dataDirectory, warn: warn)
        let recovery = loaded.recovery
        for w in recovery.warnings { warn("\(w)") }
        let writer: SegmentWriter
        do {
            // Segment headers take their creation time from the engine's clock, like everything else.
            writer = try SegmentWriter(
                directory: dataDirectory, recovery: recovery, fileSystem: fileSystem, segmentByteCount: segmentByteCount, now: { clock.now() },
                preparesAhead: true)
        } catch {
            throw .io(error)
        }
        // A lane per shard, and one for KEY records (`Ledger.attach`).
        let log = GroupCommitter(writer: writer, policy: durability, laneCount: engine.shards.count + 1)
        // SPEC §6: a line for the operator the moment writes stop, with what to do next.
        log.observeFailure { error in
            FileHandle.standardError.write(Data(("stockpile: " + Refusal.writesStopped(error).message + "\n").utf8))
        }
        engine.ledger.attach(log)
        let report = StartupReport(
            snapshotFileName: loaded.snapshotFileName, snapshotCellCount: loaded.snapshotCellCount,
            snapshotLoadDuration: loaded.snapshotLoaded - started, logReadDuration: loaded.readDuration,
            recordsReplayed: loaded.recordsReplayed, replayDuration: ContinuousClock.now - loaded.snapshotLoaded,
            totalDuration: ContinuousClock.now - started)
        engine.startup.withLock { $0 = report }
        if loaded.snapshotFileName != nil || report.totalDuration >= .seconds(1) {
            warn("started from \(loaded.snapshotFileName ?? "an empty state") and \(loaded.recordsReplayed) log records in \(Self.seconds(since: started))")
        }
        engine.startTimer()
        return engine
    }

    /// What `loadDurableState` loaded.
    struct LoadedState {
        var snapshotFileName: String?
        var snapshotCellCount = 0
        var snapshotLoaded: ContinuousClock.Instant
        /// The log read after the snapshot, and where it goes on.
        var recovery: LogRecovery.Result
        var recordsReplayed: Int
        /// Reading, checking and decoding the log, without the time its thread waited for the replay.
        var readDuration: Duration
    }

    /// Loads into this new engine the newest valid snapshot of `directory` and the log after it
    /// (FORMAT.md §5, rows 9–11), up to LSN `bound` when one is given: records past it were written but
    /// never acknowledged, so a durable view leaves them out. The log is read, checked and decoded on a
    /// thread of its own, a batch of records at a time, while this one applies the batch before: it
    /// takes about the longer of the two, not their sum.
    func loadDurableState(from directory: String, through bound: UInt64? = nil, warn: (String) -> Void) throws(EngineOpenError) -> LoadedState {
        let started = ContinuousClock.now
        var snapshot: (fileName: String, contents: SnapshotContents)?
        do {
            snapshot = try SnapshotStore.loadNewestValid(directory: directory, fileSystem: fileSystem) { damage in
                warn("\(damage); trying an older snapshot")
            }
        } catch {
            throw .io(error)
        }
        if let bound, let s = snapshot, s.contents.lsn > bound { snapshot = nil }
        if let snapshot {
            warn("loaded \(snapshot.fileName): \(snapshot.contents.cells.count) cells, \(snapshot.contents.reservations.count) reservations, "
                + "LSN \(snapshot.contents.lsn) (\(Self.seconds(since: started)))")
            restore(snapshot.contents)
        }
        let snapshotLoaded = ContinuousClock.now

        let segments = SegmentHandoff()
        let (snapshotLSN, fileSystem) = (snapshot?.contents.lsn ?? 0, self.fileSystem)
        let reader = Thread {
            let readStarted = ContinuousClock.now
            let result = Result { () throws(LogRecoveryError) -> LogRecovery.Result in
                try LogRecovery.recover(directory: directory, after: snapshotLSN, fileSystem: fileSystem) { segments.put($0) }
            }
            segments.finish(result, elapsed: ContinuousClock.now - readStarted)
        }
        reader.name = "stockpile-recovery"
        reader.start()
        var progress = ReplayProgress()
        while let records = segments.take() {
            // Records come in LSN order; those past the bound are not durable (written, never synced).
            if let bound {
                replay(Array(records.prefix { $0.lsn <= bound }), progress: &progress, report: warn)
            } else {
                replay(records, progress: &progress, report: warn)
            }
        }
        let (outcome, readDuration) = segments.outcome()
        let recovery: LogRecovery.Result
        do { recovery = try outcome.get() } catch { throw .recovery(error) }
        return LoadedState(
            snapshotFileName: snapshot?.fileName, snapshotCellCount: snapshot?.contents.cells.count ?? 0, snapshotLoaded: snapshotLoaded,
            recovery: recovery, recordsReplayed: progress.count, readDuration: readDuration)
    }

    /// How this engine started, when it was opened from a data directory.
    public var startupReport: StartupReport? { startup.withLock { $0 } }

    /// What INFO's persistence section reports: the policy, how far the log is, and why it stopped.
    public var logStatus: LogStatus {
        guard let log = ledger.log else {
            return LogStatus(policy: .none, lastLSN: 0, acknowledgedLSN: 0, syncCount: 0, batchCount: 0, recordByteCount: 0, failure: nil)
        }
        let p = log.progress
        return LogStatus(
            policy: log.policy, lastLSN: ledger.lastLSN, acknowledgedLSN: p.acknowledgedLSN, syncCount: p.syncCount, batchCount: p.batchCount,
            recordByteCount: p.recordByteCount, failure: log.failure.map { "\($0)" })
    }

    /// Makes everything logged durable, closes the log and lets the data directory go (another
    /// process may open it from then on). Blocks until done: call it once, at shutdown, after the
    /// last request. Nothing to do for an engine in memory.
    public func close() throws(WALIOError) {
        defer { directoryLock?.release() }
        // Due work stops first: an expiry committed after the log closed could not be logged.
        timer.withLock { $0?.cancel() }
        try ledger.log?.close()
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return String(format: "%.2f s", s)
    }

    /// Applies records read from the log, in LSN order, with a progress line every second of a long
    /// replay.
    func replay(_ batch: consuming [RecoveredRecord], progress: inout ReplayProgress, report: (String) -> Void) {
        // Each record is moved out of the batch, not copied (a copy retains every name it holds, and
        // the batch releases them again): the batch is reversed and taken from its end.
        var records = batch
        records.reverse()
        let count = records.count
        // What a record's reservation will be looked up by is asked for this many records ahead: its
        // id's slots in the directory and in its home shard's table, and its cell's slot, so that
        // those cache misses overlap with replaying the records before. A reservation record carries
        // the hashes (computed by the thread that read it); for a commit the id is hashed here and
        // kept for its replay (a ring of `ahead` + 1 entries).
        let ahead = 8
        var hashedIDs = [HashedID?](repeating: nil, count: ahead + 1)
        // `j`: the place in LSN order of a record not yet taken, at records[count - 1 - j].
        func prepare(_ j: Int) {
            let k = count - 1 - j
            hashedIDs[j % hashedIDs.count] = nil
            let idHash: Int
            let cellHash: UInt64?
            if let hashes = records[k].reservationHashes {
                (idHash, cellHash) = (hashes.id, hashes.cell)
            } else {
                guard let (id, cell) = records[k].reservationLookup else { return }
                let hashed = HashedID(id)
                hashedIDs[j % hashedIDs.count] = hashed
                (idHash, cellHash) = (hashed.hash, cell?.stableHash)
            }
            directory.prefetch(hash: idHash)
            guard let stable = cellHash else { return }
            shards[router.shard(forStableHash: stable)].prefetch(idHash: idHash, cellHash: CellTable.hash(stable: stable))
        }
        for j in 0..<min(ahead, count) { prepare(j) }
        var j = 0
        while let record = records.popLast() {
            if j & 0xFFF == 0, ContinuousClock.now >= progress.nextReport {
                report("replaying the log: \(progress.count + j) records so far")
                progress.nextReport = ContinuousClock.now + .seconds(1)
            }
            if j + ahead < count { prepare(j + ahead) }
            if let fields = record.reservation, let hashes = record.reservationHashes {
                replay(fields, hashes: hashes)
            } else {
                switch record.body {
                case .commit(let commit): replay(commit, hashedID: hashedIDs[j % hashedIDs.count])
                case .keyUse(let use): restoreKey(use.key, KeyRecord(command: use.command, reply: use.reply, createdAt: use.time))
                }
            }
            j += 1
        }
        progress.count += count
    }

    /// `hashedID`: the commit's reservation id with its hash, when the caller has it (taken from the
    /// same record, so it is that id: not compared again here).
    private func replay(_ commit: Commit, hashedID: HashedID? = nil) {
        var mask = router.mask(of: commit.entries.lazy.filter(\.touchesCell).map(\.cell))
        // The id is hashed once, for the directory and the home shard's table.
        var hashed: HashedID?
        if let r = commit.reservation {
            let lines = router.mask(of: r.lines.lazy.map(\.cell))
            mask |= lines
            assert(hashedID == nil || hashedID!.id == r.id, "the hashed id given is the reservation's")
            let h = hashedID ?? HashedID(r.id)
            hashed = h
            replaceDirectoryEntry(h, mask: lines, made: commit.entries.first?.type == .reserve)
        }
        if commit.warehouse != nil || commit.policy != nil {
            mask = allShards
        }
        if commit.entries.first?.type == .reset { clearTablesForReset() }
        if mask.nonzeroBitCount == 1 {
            // One shard holds every cell of the commit and is its reservation's home.
            let shard = shards[mask.trailingZeroBitCount]
            shard.withState { $0.replay(commit, ownsAll: true, hashedID: hashed) }
        } else {
            holdingShards(mask) {
                for s in mask.setBitIndexes { shards[s].withHeldState { $0.replay(commit, hashedID: hashed) } }
            }
        }
        ledger.restore(commit.entries)
        if let w = commit.warehouse { catalog.withLock { $0.apply(w) } }
        if let p = commit.policy { catalog.withLock { $0.apply(p) } }
        if commit.reservation != nil { scheduleFollowUps(of: commit) }
        if let command = commit.keyedCommand, let key = command.key {
            restoreKey(key, KeyRecord(command: command, reply: commit.reply(), createdAt: commit.time))
        }
    }

    /// A `reservation` record, applied from its fields as `replay(_ commit:)` applies the commit they
    /// stand for, without building it: one new one-line reservation on one cell, so one shard is its
    /// home and owns its cell.
    /// `hashes`: its id's and its cell's, as the record carries them.
    private func replay(_ fields: CompactReservation, hashes: RecoveredRecord.ReservationHashes) {
        let hashed = HashedID(fields.id, hash: hashes.id)
        let stable = hashes.cell
        assert(stable == fields.cell.stableHash, "the cell's hash is its own")
        let home = router.shard(forStableHash: stable)
        let mask: UInt64 = 1 << UInt64(home)
        replaceDirectoryEntry(hashed, mask: mask, made: true)
        let entry = fields.entry
        shards[home].withState { $0.replay(fields, entry: entry, cellHash: CellTable.hash(stable: stable), idHash: hashed.hash) }
        ledger.restore(entry)
        scheduleExpiry(of: fields.id, at: fields.expiresAt)
    }

    /// Points the directory's entry for a replayed reservation at the shards of its lines (`mask`).
    /// `made`: the record made it. Then an entry already there is one forgotten earlier (forgetting is
    /// not logged): the old reservation is dropped from its home before the new one is applied.
    private func replaceDirectoryEntry(_ hashed: HashedID, mask: UInt64, made: Bool) {
        if let old = directory.replace(hashed.id, hash: hashed.hash, mask), made {
            shards[old.trailingZeroBitCount].withState { $0.reservations.remove(hashed.id, hash: hashed.hash) }
        }
    }

    func restoreKey(_ key: String, _ record: KeyRecord) {
        keys.restore(key, record)
        dueWork.schedule(DueItem(deadline: record.createdAt.advanced(by: configuration.retention), kind: .forgetKey, name: key))
    }
}

/// How far a replay is, for its progress lines.
struct ReplayProgress {
    var count = 0
    var nextReport = ContinuousClock.now + .seconds(1)
}

/// Batches of records handed from the thread that reads the log to the one that replays it: at most
/// eight wait at a time, so memory holds a few thousand decoded records, not the whole log.
final class SegmentHandoff: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [[RecoveredRecord]] = []
    private var result: Result<LogRecovery.Result, LogRecoveryError>?
    private var readDuration = Duration.zero
    /// How long the reader waited for the replay to take batches (not reading).
    private var blockedDuration = Duration.zero

    /// Reader side: waits while eight batches are waiting.
    func put(_ records: [RecoveredRecord]) {
        condition.lock()
        if queue.count >= 8 {
            let blockedFrom = ContinuousClock.now
            while queue.count >= 8 { condition.wait() }
            blockedDuration += ContinuousClock.now - blockedFrom
        }
        queue.append(records)
        condition.broadcast()
        condition.unlock()
    }

    /// Reader side, at the end: `elapsed` is the reader's whole time, waits included.
    func finish(_ result: Result<LogRecovery.Result, LogRecoveryError>, elapsed: Duration) {
        condition.lock()
        self.result = result
        self.readDuration = elapsed - blockedDuration
        condition.broadcast()
        condition.unlock()
    }

    /// Replay side: the next segment, or nil once the reader finished and all were taken.
    func take() -> [RecoveredRecord]? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && result == nil { condition.wait() }
        guard !queue.isEmpty else { return nil }
        let records = queue.removeFirst()
        condition.broadcast()
        return records
    }

    /// What the reader ended with, and its time spent reading; call after `take()` returned nil.
    func outcome() -> (Result<LogRecovery.Result, LogRecoveryError>, Duration) {
        condition.lock()
        defer { condition.unlock() }
        return (result!, readDuration)
    }
}

/// How a durable engine started: the snapshot it loaded and the log it replayed after it.
public struct StartupReport: Sendable, Hashable {
    public var snapshotFileName: String?
    public var snapshotCellCount: Int
    /// Reading, decoding and loading the snapshot.
    public var snapshotLoadDuration: Duration
    /// Reading, checking and decoding the log after the snapshot (on a thread of its own, while
    /// the replay applies what was read), without the time it waited for the replay.
    public var logReadDuration: Duration
    public var recordsReplayed: Int
    /// From the snapshot loaded to the last record applied: the log read and its replay, overlapped.
    public var replayDuration: Duration
    public var totalDuration: Duration
}

/// The state of the write-ahead log at one moment.
public struct LogStatus: Sendable, Hashable {
    public var policy: DurabilityPolicy
    /// The last LSN handed to the log, and the last one acknowledged under the policy.
    public var lastLSN: UInt64
    public var acknowledgedLSN: UInt64
    public var syncCount: Int
    public var batchCount: Int
    /// Bytes of records this process wrote to the log.
    public var recordByteCount: Int
    /// Why writes are stopped, when they are.
    public var failure: String?
}

extension ShardState {
    /// Applies a `reservation` record's fields as `apply` applies the commit they stand for: its
    /// `entry` to its cell (`cellHash` is the cell's `CellTable.hash`), and the reservation, kept
    /// compact without its line array as a replayed one is (`idHash`: its id's hash).
    func replay(_ fields: CompactReservation, entry: LedgerEntry, cellHash: UInt64, idHash: Int) {
        assert(router.shard(for: fields.cell) == index, "a reservation record replayed in a shard that does not own its cell")
        let p = apply(entry, of: fields.cell, hash: cellHash, backorderAllowed: catalog.policy(of: fields.cell.variant).backorder)
        let line = ReservationLine(
            variant: fields.cell.variant, warehouse: fields.cell.warehouse, quantity: fields.quantity, backordered: fields.backordered,
            tracked: fields.tracked)
        if let stored = StoredReservation(
            line: line, cellPosition: p, customer: fields.customer, createdAt: fields.time, expiresAt: fields.expiresAt, closedAt: nil,
            requestTTL: fields.ttl, status: .active, strategy: fields.strategy, endedByExpiry: false)
        {
            reservations.store(stored, id: fields.id, hash: idHash)
        } else {
            // Fields a compact entry cannot hold (a backordered part, a TTL finer than a millisecond): kept whole.
            reservations.store(fields.commit.reservation!, hash: idHash, cellPosition: nil)
        }
        assert(reservation(fields.id) == fields.commit.reservation, "reservation \(fields.id) reads back as its record says")
    }
}

extension RecoveredRecord {
    /// The id of the reservation the record's commit carries, and its cell when it has one line; nil
    /// when it carries none: what a replay looks the reservation up by, asked for ahead. (A
    /// `reservation` record carries its hashes instead: `reservationHashes`.)
    var reservationLookup: (id: String, cell: CellKey?)? {
        guard case .commit(let commit) = body, let r = commit.reservation else { return nil }
        return (r.id, r.lines.count == 1 ? r.lines[0].cell : nil)
    }
}
