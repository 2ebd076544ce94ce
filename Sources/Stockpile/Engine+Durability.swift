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
            replayThreadCount: engine.replayApplierCount, totalDuration: ContinuousClock.now - started)
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
    /// never acknowledged, so a durable view leaves them out. The log is replayed by shard
    /// (`replayLog`): read, checked and decoded on a thread of its own, a batch at a time, while a
    /// second does each record's part common to all shards and appliers (this thread among them) apply
    /// each shard's part of the batches before.
    func loadDurableState(from directory: String, through bound: UInt64? = nil, warn: (String) -> Void) throws(EngineOpenError) -> LoadedState {
        let started = ContinuousClock.now
        var snapshot: (fileName: String, contents: SnapshotContents)?
        var (cellCount, reservationCount) = (0, 0)
        do {
            let passedOver: (SnapshotDamage) -> Void = { damage in warn("\(damage); trying an older snapshot") }
            if bound == nil {
                // The snapshot's cells and reservations go into their shards as they are read
                // (`SnapshotRestorer`), not into lists first; only those of the snapshot loaded are
                // handed over, the cells first.
                let restorer = SnapshotRestorer(self)
                snapshot = try SnapshotStore.loadNewestValid(
                    directory: directory, fileSystem: fileSystem,
                    cells: { count in
                        cellCount = count
                        return restorer.cells(count)
                    },
                    reservations: { count in
                        reservationCount = count
                        return restorer.reservations(count)
                    },
                    passedOver: passedOver)
            } else {
                // A durable view leaves out a snapshot past its bound (written after the last record
                // it may show): gathered into lists, it is dropped without undoing anything.
                snapshot = try SnapshotStore.loadNewestValid(directory: directory, fileSystem: fileSystem, passedOver: passedOver)
                if let bound, let s = snapshot, s.contents.lsn > bound { snapshot = nil }
                (cellCount, reservationCount) = (snapshot?.contents.cells.count ?? 0, snapshot?.contents.reservations.count ?? 0)
            }
        } catch {
            throw .io(error)
        }
        if let snapshot {
            warn("loaded \(snapshot.fileName): \(cellCount) cells, \(reservationCount) reservations, "
                + "LSN \(snapshot.contents.lsn) (\(Self.seconds(since: started)))")
            restore(snapshot.contents)
        }
        let snapshotLoaded = ContinuousClock.now

        let replayed = replayLog(directory: directory, after: snapshot?.contents.lsn ?? 0, through: bound, warn: warn)
        let (outcome, readDuration) = (replayed.outcome, replayed.readDuration)
        let recovery: LogRecovery.Result
        do { recovery = try outcome.get() } catch { throw .recovery(error) }
        return LoadedState(
            snapshotFileName: snapshot?.fileName, snapshotCellCount: cellCount, snapshotLoaded: snapshotLoaded,
            recovery: recovery, recordsReplayed: replayed.recordsReplayed, readDuration: readDuration)
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

    /// Remembers KEY `key` as `record` says (start-up: a snapshot's key, or a record replayed), until
    /// the window after its use.
    func restoreKey(_ key: String, _ record: KeyRecord) {
        keys.restore(key, record)
        dueWork.schedule(DueItem(deadline: record.usedAt!.advanced(by: configuration.retention), kind: .forgetKey, name: key))
    }

    /// The command and reply of KEY `key`'s use: decoded from memory, or read back from the log's
    /// record that used it once the log has acknowledged that record (a retry can come while its
    /// original still waits for the log).
    func keyUse(of record: KeyRecord, key: String) async throws -> KeyUse {
        if let use = record.keptUse { return use }
        guard let lsn = record.loggedLSN else { preconditionFailure("KEY \(key) is not settled") }
        if let log = ledger.log { try await log.waitUntilAcknowledged(lsn) }
        return try loggedKeyUse(lsn, key: key)
    }

    /// The use of KEY `key` that the log's record `lsn` carries, read back now (the record must be
    /// acknowledged).
    func loggedKeyUse(_ lsn: UInt64, key: String) throws(LogReadError) -> KeyUse {
        guard let logReader else { throw .missing(lsn: lsn) }
        switch try logReader.body(at: lsn) {
        case .keyUse(let use) where use.command.key == key:
            return use
        case .commit(let commit) where commit.keyedCommand?.key == key:
            return KeyUse(time: commit.time, command: commit.keyedCommand!, reply: commit.reply())
        default:
            throw .unexpected(lsn: lsn, reason: "carries no use of KEY \(key)")
        }
    }
}

/// How a durable engine started: the snapshot it loaded and the log it replayed after it.
public struct StartupReport: Sendable, Hashable {
    public var snapshotFileName: String?
    public var snapshotCellCount: Int
    /// Reading, decoding and loading the snapshot.
    public var snapshotLoadDuration: Duration
    /// Reading, checking and decoding the log after the snapshot (on a thread of its own, while the
    /// threads after it in the replay work on what it read before), without the time it waited for them.
    public var logReadDuration: Duration
    public var recordsReplayed: Int
    /// From the snapshot loaded to the last record applied: the log read and its replay, overlapped.
    public var replayDuration: Duration
    /// How many threads applied the shards' parts of the log (`EngineConfiguration.replayThreadCount`,
    /// at most one per shard).
    public var replayThreadCount: Int
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
