// Group commit (SPEC §4): every shard hands its numbered records over in a lane of its own; one
// thread of its own takes everything waiting, writes it in LSN order with one pwrite and makes it
// durable with one fdatasync, then wakes every caller that batch covered. The more callers wait, the
// larger the batches, so a disk that syncs in 0.4 ms still acknowledges many records per sync. It
// keeps true: records reach the log in LSN order with no gap (a record waits until every LSN before it
// has come, whichever lane it comes in); a caller hears "durable" only after the fdatasync that
// covered its record returned (`always`), or after its write returned (`interval`, which syncs every
// interval); after a failed write or sync every waiting and every later caller gets that error — the
// failure is never retried as if nothing happened. Blocking calls run on the committer's own thread,
// never on the cooperative pool, or on a thread of the caller's that asks to commit in its place.
//
// A thread that would otherwise wait for the log's thread can commit itself (`WakeDeferral`): an event
// loop's handovers during its turn do not wake the log's thread; when its turn is done and nothing else
// is ready for it, the loop writes and syncs what waits itself, if the log's thread sleeps and no commit
// is under way, and otherwise wakes that thread once. A commit holds `committing`, whichever thread
// makes it, so commits never overlap and write in LSN order as before. At pipeline 1, the log's thread
// woken by a turn's first record wrote that record alone, and the turn's others waited for the next
// sync; and every sync cost a wake-up of that thread and one of the loop back.

import Dispatch
import Foundation
import StockpileCore
import Synchronization

/// When an acknowledged write is safe (SPEC §4).
public enum DurabilityPolicy: Hashable, Sendable {
    /// Acknowledge after fdatasync: nothing acknowledged is lost, even by a power failure.
    case always
    /// Acknowledge after write, fdatasync every interval: a process crash loses nothing, a power loss
    /// at most the interval.
    case interval(Duration)
    /// No log at all: for load tests.
    case none

    /// Parses the spelling of the `--fsync` flag: `always`, `interval=<ms>` (1 ms or more), `none`.
    public init?(parsing text: String) {
        switch text {
        case "always": self = .always
        case "none": self = .none
        default:
            guard text.hasPrefix("interval="), let ms = Int(text.dropFirst("interval=".count)), ms >= 1 else { return nil }
            self = .interval(.milliseconds(ms))
        }
    }

    /// The same spelling back: `always`, `interval=<ms>`, `none`.
    public var flagText: String {
        switch self {
        case .always: "always"
        case .interval(let d): "interval=\(d / .milliseconds(1))"
        case .none: "none"
        }
    }
}

public final class GroupCommitter: Sendable {
    /// What waits in a lane, each kind in LSN order: records handed over as values, and new one-line
    /// reservations staged as bytes (`StagedReservation`), back to back.
    struct LaneRecords {
        /// Optional so that the committer's thread moves each record out (`Taken.run`): a copy retained
        /// each of the record's names, and emptying the lane released them again.
        var bodies: [(lsn: UInt64, record: WALRecord.Body?)] = []
        var staged: [UInt8] = []

        var isEmpty: Bool { bodies.isEmpty && staged.isEmpty }
    }

    /// Records handed over in one lane, in LSN order, waiting for the committer's thread. A lane has
    /// its own lock, taken by the one caller that owns the lane at a time (a shard, holding its own
    /// lock) and by the committer's thread when it takes what waits: callers of different lanes never
    /// wait for each other.
    private final class Lane: Sendable {
        let pending = Mutex<LaneRecords>(LaneRecords())
    }

    /// The records of one write, in LSN order, each where it lies: a staged reservation in `staged`
    /// (copied there from its lane), any other in `bodies`.
    struct Batch {
        /// Per record: its staged bytes' offset in `staged`, or -1 - its index in `bodies`.
        var order: [Int] = []
        var bodies: [WALRecord.Body] = []
        var staged: [UInt8] = []

        var count: Int { order.count }
        var isEmpty: Bool { order.isEmpty }

        mutating func removeAll() {
            order.removeAll(keepingCapacity: true)
            bodies.removeAll(keepingCapacity: true)
            staged.removeAll(keepingCapacity: true)
        }

        mutating func append(_ body: consuming WALRecord.Body) {
            order.append(-1 - bodies.count)
            bodies.append(body)
        }

        mutating func append(staged record: UnsafeRawBufferPointer) {
            order.append(staged.count)
            staged.append(contentsOf: record)
        }
    }

    /// The acknowledgement observer (`observeAcknowledgements`).
    private final class AcknowledgementObserver: Sendable {
        let call: @Sendable (UInt64) -> Void
        init(_ call: @escaping @Sendable (UInt64) -> Void) { self.call = call }
    }

    /// A caller waiting for its record to be acknowledged (`waitUntilAcknowledged`).
    private typealias Waiter = UnsafeContinuation<Result<Void, WALIOError>, Never>

    private struct State {
        /// The last LSN acknowledged under the policy (written for `interval`, synced for `always`).
        var acknowledgedLSN: UInt64
        /// `relayable`: the waiter's task runs on the cooperative pool (it prefers no executor of its
        /// own), so it may be relayed (`acknowledge`).
        var waiters: [(lsn: UInt64, continuation: Waiter, relayable: Bool)] = []
        /// Acknowledged waiters left for a waiter resumed before them to resume (`resumeRelayed`).
        var relayed: [Waiter] = []
        var failure: WALIOError?
        var stopping = false
        /// `close()` is done: a waiter not acknowledged by now never will be.
        var closed = false
        var syncCount = 0
        var batchCount = 0
        var recordByteCount = 0
        /// Told of every acknowledgement, on the thread that committed, after the waiters it resumes
        /// itself were resumed (the relayed ones may not have run yet).
        /// In a box: a closure taken out of the lock's closure was re-wrapped, an allocation per
        /// acknowledgement; a box is only retained.
        var observer: AcknowledgementObserver?
        /// Told once, of the failure that stopped the log.
        var failureObserver: (@Sendable (WALIOError) -> Void)?
    }

    /// What a commit works with, held (in `committing`) by the thread that commits: the committer's
    /// own, or a caller committing in its place (`commitInPlace`). The lists are kept between commits,
    /// so that a commit allocates nothing.
    private struct Committing: @unchecked Sendable {
        // @unchecked: the writer is touched only under the lock that holds this.
        let writer: SegmentWriter
        var taken: Taken
        var batch = Batch()
        /// The waiters a commit resumes itself (`acknowledge`), emptied after each.
        var direct: [Waiter] = []
        var lastSync = ContinuousClock.now
        /// The writer is closed (`close()`): a commit in place that comes after writes nothing.
        var closed = false

        /// Syncs the writer, noting when.
        mutating func sync() throws(WALIOError) {
            try writer.sync()
            lastSync = ContinuousClock.now
        }
    }

    /// What one commit did (`commit`).
    private enum Committed {
        /// Nothing waited: nothing was written.
        case nothing
        case written
        /// The write or sync failed (`fail` told everyone).
        case failed
    }

    public let policy: DurabilityPolicy
    /// The last LSN of the log when this committer took it over (0 for a new log): what start-up
    /// replayed, and so what the state covers before the first record handed over. The first record
    /// handed over is numbered `baseLSN + 1`.
    public let baseLSN: UInt64
    private let state: Mutex<State>
    private let lanes: [Lane]
    /// The lanes, unretained (`lanes` keeps them for the committer's life): a handover reaches its
    /// lane without a retain and a release, which wrote the lane's header, a line the committer's
    /// thread writes too when it takes what waits (1% of `spread --fsync always`).
    private let laneRefs: [Unmanaged<Lane>]
    /// True while the thread waits for work: the next handover must wake it.
    private let writerIdle = Atomic<Bool>(false)
    /// Set once the log refuses records: a write or sync failed (the failure is in `state`), or
    /// `close()` began. Read first by `checkWritable`, so a healthy log takes no lock to say so.
    private let refusing = Atomic<Bool>(false)
    /// True while `State.relayed` may hold waiters: a hint, read without the lock by every resumed waiter.
    private let hasRelayed = Atomic<Bool>(false)
    /// The next LSN of `submit(_ bodies:)`, for a caller that numbers its records no other way.
    private let ownNumbering: Mutex<UInt64>
    private let committing: Mutex<Committing>
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// The groups of handovers open now (`beginGroup`), and the one the committer's thread waits for.
    private let groups = Mutex(Groups())
    /// Signalled when the groups the committer's thread waits for have all ended.
    private let groupsEnded = DispatchSemaphore(value: 0)
    private let groupWaitMax: DispatchTimeInterval

    /// Starts the committer's thread over `writer`, which the committer owns from now on (a commit
    /// holds it, on whichever thread makes it), with `laneCount` lanes to hand records over in
    /// (`submit(_:lsn:lane:)`).
    /// - Precondition: `policy` is `always` or `interval` (`none` writes no log).
    /// `groupWaitMax`: the longest a write waits for the groups of handovers open when it was about
    /// to start (`beginGroup`).
    public init(writer: SegmentWriter, policy: DurabilityPolicy, laneCount: Int = 1, groupWaitMax: Duration = groupWaitMaxDefault) {
        precondition(policy != .none, "a committer needs a log; with policy none there is none")
        precondition(laneCount >= 1, "a committer needs a lane")
        if case .interval(let d) = policy { precondition(d > .zero, "the sync interval must be positive") }
        self.policy = policy
        self.groupWaitMax = Self.dispatchInterval(groupWaitMax)
        baseLSN = writer.nextLSN - 1
        state = Mutex(State(acknowledgedLSN: writer.nextLSN - 1))
        ownNumbering = Mutex(writer.nextLSN)
        lanes = (0..<laneCount).map { _ in Lane() }
        laneRefs = lanes.map { Unmanaged.passUnretained($0) }
        committing = Mutex(Committing(writer: writer, taken: Taken(laneCount: laneCount)))
        startThread(named: "sp-wal") { [self] in run() }
    }

    /// The number of lanes records are handed over in.
    public var laneCount: Int { lanes.count }

    /// Hands record `lsn` over in `lane`. LSNs are the caller's to give: every LSN from `baseLSN + 1`
    /// on, each once, and within a lane in increasing order (a lane's owner numbers its records while
    /// it owns the lane). Callers of different lanes hand over at once, in any order between them: the
    /// committer's thread writes records in LSN order, each only once every LSN before it has come.
    /// Never blocks on I/O, never fails: after a failure the record is dropped with everything else
    /// unwritten, and whoever waits for it hears of the failure (check `checkWritable()` first, so
    /// that nothing is numbered once the log has failed).
    public func submit(_ record: consuming WALRecord.Body, lsn: UInt64, lane: Int) {
        // Moved into the lane through an optional the closure empties: captured as it is, the record
        // was copied into the lane (a retain of each of its names) and released on return.
        var handed: WALRecord.Body? = consume record
        laneRefs[lane]._withUnsafeGuaranteedRef { $0.pending.withLock { $0.bodies.append((lsn, handed.take())) } }
        wakeIfIdle()
    }

    /// Hands over record `lsn` in `lane`, as `submit(_:lsn:lane:)` does: the `reservation` record of
    /// reservation `id`, made at `time` by `actor` with `hold` (which the record must carry:
    /// `ReservationHold.isCarried`) on `cell`, which it left at `onHandAfter` and `reservedAfter`, for
    /// `customer`, its entry numbered `seq`, its cell kept by the engine at `place` (nil: it does not
    /// say). Staged in the lane as bytes (`StagedReservation`): the record is not moved about as a
    /// value, and its names stay with the thread that made them.
    public func submit(
        reservation id: String, time: Timestamp, seq: UInt64, cell: CellKey, actor: String, hold: ReservationHold, onHandAfter: Quantity,
        reservedAfter: Quantity, customer: String?, place: CellPlace?, lsn: UInt64, lane: Int
    ) {
        laneRefs[lane]._withUnsafeGuaranteedRef { lane in
            lane.pending.withLock {
                StagedReservation.stage(
                    id: id, time: time, seq: seq, cell: cell, actor: actor, hold: hold, onHandAfter: onHandAfter, reservedAfter: reservedAfter,
                    customer: customer, lsn: lsn, place: place, into: &$0.staged)
            }
        }
        wakeIfIdle()
    }

    /// After a record was handed over: wakes the committer's thread if it sleeps, or, on a thread
    /// that defers (`WakeDeferral`), notes that this committer has records of that thread's waiting.
    @inline(__always)
    private func wakeIfIdle() {
        if WakeDeferral.noteOnCurrentThread(self) { return }
        wakeNowIfIdle()
    }

    /// Whether the committer's thread sleeps, waiting for a handover to wake it (for tests).
    var isSleeping: Bool { writerIdle.load(ordering: .sequentiallyConsistent) }

    /// Wakes the committer's thread if it sleeps.
    @inline(__always)
    func wakeNowIfIdle() {
        // The handover is in the lane before the flag is read, and the thread sets the flag before it
        // looks at the lanes a last time: one of the two sees the other (`run`).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if writerIdle.load(ordering: .sequentiallyConsistent), writerIdle.exchange(false, ordering: .sequentiallyConsistent) {
            wakeUp.signal()
        }
    }

    /// Writes (and under `always` syncs) what waits on the calling thread, when the committer's
    /// thread sleeps and no commit is under way; otherwise wakes that thread if it sleeps, so that it
    /// writes what waits. Returns whether this call wrote anything. For a thread that may block on
    /// I/O (an event loop with nothing else to do, never the cooperative pool) and that handed records
    /// over without waking the committer (`WakeDeferral`). Its waiters are resumed, or relayed
    /// (`acknowledge`), before it returns.
    @discardableResult
    public func commitInPlace() -> Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard writerIdle.load(ordering: .sequentiallyConsistent), !refusing.load(ordering: .acquiring) else {
            wakeNowIfIdle()
            return false
        }
        // Not waiting for other callers' open groups: this caller's records are all in, and the
        // committer's thread takes the rest next.
        // nil: a commit is under way (the thread that makes it takes what waits next), or the segment
        // is near its end, where the commit may rotate it (a sync of the old one, the new one's header
        // synced and renamed, the directory synced; or, with no spare segment ready, a new one
        // zero-filled): that is the committer's thread's work, not a loop's.
        let made: Committed? = committing.withLockIfAvailable { c -> Committed? in
            guard c.writer.byteCountLeft >= Self.inPlaceRoomMinimum(segmentByteCount: c.writer.fileByteCount) else { return nil }
            return commit(&c, awaitingGroups: false)
        } ?? nil
        switch made {
        case nil:
            wakeNowIfIdle()
            return false
        case .nothing?:
            return false
        case .written?:
            return true
        case .failed?:
            // The committer's thread ends when it sees the failure.
            wakeNowIfIdle()
            return true
        }
    }

    /// The room a segment of `segmentByteCount` bytes must have left for a commit in place: an eighth
    /// of it, at most 4 MiB, so that a loop's commit does not rotate it (a turn writes kilobytes; only
    /// one of more than that room would).
    static func inPlaceRoomMinimum(segmentByteCount: Int) -> Int { min(4 << 20, segmentByteCount / 8) }

    /// Throws the committer's failure, once a write or sync has failed, or `closedError` once
    /// `close()` began; returns otherwise.
    public func checkWritable() throws(WALIOError) {
        guard refusing.load(ordering: .acquiring) else { return }
        if let failure = state.withLock({ $0.failure ?? ($0.stopping ? Self.closedError : nil) }) { throw failure }
    }

    /// What a handover after `close()` is refused with, and what a waiter for a record handed over
    /// too late to be written hears: the log's file is closed.
    public static let closedError = WALIOError(operation: .write, path: "(the log, closed)", errno: EBADF)

    /// Hands records over, numbered by the committer, and returns the LSN of the last of them: for a
    /// caller that numbers its records no other way (never mixed with `submit(_:lsn:lane:)`). Never
    /// blocks on I/O.
    /// - Throws: the committer's failure, once a write or sync has failed.
    @discardableResult
    public func submit(_ bodies: [WALRecord.Body]) throws(WALIOError) -> UInt64 {
        precondition(!bodies.isEmpty, "an empty handover")
        try checkWritable()
        return ownNumbering.withLock { next in
            for body in bodies {
                submit(body, lsn: next, lane: 0)
                next += 1
            }
            return next - 1
        }
    }

    // MARK: Groups of handovers

    /// The longest a write waits for the groups open when it was about to start, unless told
    /// (`init`): about what a server's turn of a few hundred requests takes to hand its records over.
    /// A group left open (one whose owner waits for the log itself, which owners avoid by ending it
    /// before anything that may wait) holds each write back this long while it stays open, rather
    /// than for ever.
    public static let groupWaitMaxDefault: Duration = .microseconds(500)

    private struct Groups {
        var nextTicket: UInt64 = 1
        /// The tickets of the groups open now: a handful (one per caller that groups, such as an
        /// event loop's turn).
        var open: [UInt64] = []
        /// While the committer's thread waits: the last ticket it waits for; 0 otherwise.
        var awaited: UInt64 = 0
        /// How many times a write began waiting for groups (for tests).
        var waitCount = 0

        var awaitedAreEnded: Bool { !open.contains { $0 <= awaited } }
    }

    /// Opens a group of handovers: records a caller is about to hand over one after another, over a
    /// few microseconds to a millisecond (a server's turn, which replies once all of them are as safe
    /// as the policy promises). A write that would start while the group is open waits for it to end
    /// (`endGroup`), up to `groupWaitMax` of `init`, and takes the group's records with the ones
    /// before: one write and sync for the turn, where starting at its first record took one for that
    /// record and left the rest to wait for the next. Groups opened after a write began waiting are
    /// not waited for, so callers that keep a group open all the time do not hold the log back.
    /// Returns the group's ticket, for `endGroup`.
    public func beginGroup() -> UInt64 {
        groups.withLock { g in
            let ticket = g.nextTicket
            g.nextTicket += 1
            g.open.append(ticket)
            return ticket
        }
    }

    /// How many times a write began waiting for open groups.
    var groupWaitCount: Int { groups.withLock { $0.waitCount } }

    /// Ends the group `ticket` of `beginGroup`: everything it hands over has been handed over.
    public func endGroup(_ ticket: UInt64) {
        let wake = groups.withLock { g -> Bool in
            if let i = g.open.firstIndex(of: ticket) { g.open.swapAt(i, g.open.count - 1); g.open.removeLast() }
            guard g.awaited != 0, g.awaitedAreEnded else { return false }
            g.awaited = 0
            return true
        }
        if wake { groupsEnded.signal() }
    }

    /// On the committer's thread, before a write: waits for the groups open now to end, up to
    /// `groupWaitMax`. Returns whether it waited.
    private func awaitOpenGroups() -> Bool {
        let waits = groups.withLock { g -> Bool in
            guard !g.open.isEmpty else { return false }
            g.awaited = g.nextTicket - 1
            g.waitCount += 1
            return true
        }
        guard waits else { return false }
        if groupsEnded.wait(timeout: .now() + groupWaitMax) == .timedOut {
            // Gave up. A group that ended meanwhile has signalled, or will: take that signal, so
            // that the next wait does not return at once.
            let signalled = groups.withLock { g -> Bool in
                defer { g.awaited = 0 }
                return g.awaited == 0
            }
            if signalled { groupsEnded.wait() }
        }
        return true
    }

    /// Waits until record `lsn` is as safe as the policy promises.
    /// - Throws: the committer's failure, if it failed before `lsn` was acknowledged.
    public func waitUntilAcknowledged(_ lsn: UInt64) async throws(WALIOError) {
        // Already acknowledged (often: a reply waits for everything logged so far): no suspension.
        let settled: Result<Void, WALIOError>? = state.withLock { s in
            if s.acknowledgedLSN >= lsn { return .success(()) }
            if let failure = s.failure { return .failure(failure) }
            if s.closed { return .failure(Self.closedError) }
            return nil
        }
        if let settled { return try settled.get() }
        // Unchecked: each continuation is resumed exactly once: taken out of `waiters` under the lock
        // that queued it (by `acknowledge`, `fail` or `close`), or out of `relayed` by the one
        // `resumeRelayed` that takes the list, and resumed after. The checked kind costs an allocation
        // per wait.
        let relayable = withUnsafeCurrentTask { task in task.map { $0.unownedTaskExecutor == nil } ?? true }
        let result: Result<Void, WALIOError> = await withUnsafeContinuation { (continuation: Waiter) in
            let now: Result<Void, WALIOError>? = state.withLock { s in
                if s.acknowledgedLSN >= lsn { return .success(()) }
                if let failure = s.failure { return .failure(failure) }
                if s.closed { return .failure(Self.closedError) }
                s.waiters.append((lsn, continuation, relayable))
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
        // Whichever waiter comes back first resumes those relayed to it, success or failure.
        resumeRelayed()
        try result.get()
    }

    /// Calls `observer` with the last acknowledged LSN after every acknowledgement, on the thread that
    /// committed: the committer's, or an event loop's committing in its place (keep it short: the next
    /// batch, and that loop, wait for it). Set it once, before any record is handed
    /// over. A failure acknowledges nothing, so the observer never hears of a record that was not
    /// made as safe as the policy promises.
    public func observeAcknowledgements(_ observer: @escaping @Sendable (UInt64) -> Void) {
        state.withLock { s in
            precondition(s.observer == nil, "one observer per committer")
            s.observer = AcknowledgementObserver(observer)
        }
    }

    /// Calls `observer` once, on the thread whose commit failed (the committer's, or a caller's
    /// committing in its place), with the write or sync failure that stopped the log (an operator must
    /// hear of it when it happens, not at the next request).
    public func observeFailure(_ observer: @escaping @Sendable (WALIOError) -> Void) {
        state.withLock { s in
            precondition(s.failureObserver == nil, "one failure observer per committer")
            s.failureObserver = observer
        }
    }

    /// The last LSN acknowledged, and how many syncs and batches it took so far.
    public var progress: (acknowledgedLSN: UInt64, syncCount: Int, batchCount: Int, recordByteCount: Int) {
        state.withLock { ($0.acknowledgedLSN, $0.syncCount, $0.batchCount, $0.recordByteCount) }
    }

    /// The write or sync failure that stopped the log, if one did.
    public var failure: WALIOError? { state.withLock { $0.failure } }

    /// Writes and syncs what was handed over, stops the thread and closes the segment. Blocks until
    /// done: call it at shutdown, off the cooperative pool.
    /// - Throws: the committer's failure, if any.
    public func close() throws(WALIOError) {
        state.withLock { $0.stopping = true }
        // From here `checkWritable()` refuses: nothing more is numbered for this log.
        refusing.store(true, ordering: .releasing)
        if writerIdle.exchange(false, ordering: .sequentiallyConsistent) { wakeUp.signal() }
        finished.wait()
        // A record numbered before the refusal but handed over after the thread's last look is not
        // written: its waiter hears that the log closed, rather than waiting for ever.
        let (failure, waiting) = state.withLock { s in
            s.closed = true
            defer { s.waiters.removeAll() }
            return (s.failure, s.waiters.map(\.continuation))
        }
        for c in waiting { c.resume(returning: .failure(failure ?? Self.closedError)) }
        if let failure { throw failure }
    }

    // MARK: The committer's thread

    /// What the committer's thread has taken from the lanes and not written yet: per lane, its
    /// records in LSN order from `heads[lane]` and its staged reservations from `stagedHeads[lane]` on.
    private struct Taken {
        var lanes: [LaneRecords]
        var heads: [Int]
        /// Byte offsets in each lane's `staged`.
        var stagedHeads: [Int]
        /// Fresh buffers swapped into the lanes, so that taking what waits allocates nothing.
        var spares: [LaneRecords]

        init(laneCount: Int) {
            lanes = Array(repeating: LaneRecords(), count: laneCount)
            heads = Array(repeating: 0, count: laneCount)
            stagedHeads = Array(repeating: 0, count: laneCount)
            spares = Array(repeating: LaneRecords(), count: laneCount)
        }

        /// Takes what waits in `lanes`.
        mutating func take(from refs: [Unmanaged<Lane>]) {
            for i in refs.indices {
                refs[i]._withUnsafeGuaranteedRef { $0.pending.withLock { swap(&$0, &spares[i]) } }
                Self.absorb(&spares[i].bodies, into: &lanes[i].bodies, head: &heads[i]) { list, spare in
                    // Moved one by one: appending the list copied (retained) each record.
                    for k in spare.indices { list.append((spare[k].lsn, spare[k].record.take())) }
                }
                Self.absorb(&spares[i].staged, into: &lanes[i].staged, head: &stagedHeads[i]) { list, spare in list.append(contentsOf: spare) }
            }
        }

        /// Puts what `spare` holds after `list`'s, and empties `spare`, keeping its room: when
        /// everything in `list` before `head` is written already, the two swap; otherwise `appendAll`
        /// moves `spare`'s over.
        private static func absorb<C: RangeReplaceableCollection>(
            _ spare: inout C, into list: inout C, head: inout Int, appendAll: (inout C, inout C) -> Void
        ) {
            guard !spare.isEmpty else { return }
            if head == list.count {
                swap(&list, &spare)
                head = 0
            } else {
                appendAll(&list, &spare)
            }
            spare.removeAll(keepingCapacity: true)
        }

        /// The LSN of the staged reservation at the head of `lane`, if one is there.
        private func stagedHeadLSN(_ lane: Int) -> UInt64? {
            guard stagedHeads[lane] < lanes[lane].staged.count else { return nil }
            return lanes[lane].staged.withUnsafeBytes { StagedReservation.View($0.baseAddress! + stagedHeads[lane]).lsn }
        }

        /// The records numbered `next`, `next + 1`, … taken so far, in that order, as far as they run
        /// without a gap (a record numbered but not yet handed over ends the run).
        mutating func run(from next: UInt64, into batch: inout Batch) {
            var next = next
            var lane = 0
            var misses = 0
            // Each lane is in LSN order, so the next record is at the head of some lane (of its values
            // or of its staged reservations); a lane often holds several in a row, so the search stays
            // at the lane that held the last one.
            while misses < lanes.count {
                if heads[lane] < lanes[lane].bodies.count && lanes[lane].bodies[heads[lane]].lsn == next {
                    batch.append(lanes[lane].bodies[heads[lane]].record.take()!)
                    heads[lane] += 1
                    next += 1
                    misses = 0
                } else if stagedHeadLSN(lane) == next {
                    let head = stagedHeads[lane]
                    let byteCount = lanes[lane].staged.withUnsafeBytes { all in
                        let record = all.baseAddress! + head
                        let n = StagedReservation.View(record).byteCount
                        batch.append(staged: UnsafeRawBufferPointer(start: record, count: n))
                        return n
                    }
                    stagedHeads[lane] += byteCount
                    next += 1
                    misses = 0
                } else {
                    lane = lane + 1 == lanes.count ? 0 : lane + 1
                    misses += 1
                }
            }
            for i in lanes.indices {
                Self.dropWritten(&lanes[i].bodies, head: &heads[i], once: 1024)
                Self.dropWritten(&lanes[i].staged, head: &stagedHeads[i], once: 1 << 16)
            }
        }

        /// Drops what `list` holds before `head` (written already): all of it when all is written, else
        /// once it is `once` or more and half the list (a lane that never drains, a gap now and then).
        private static func dropWritten<C: RangeReplaceableCollection>(_ list: inout C, head: inout Int, once: Int) {
            guard head > 0 else { return }
            if head == list.count {
                list.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= once && head * 2 >= list.count {
                list.removeFirst(head)
                head = 0
            }
        }
    }

    /// One commit under `committing`: takes what waits, writes it in LSN order as far as it runs
    /// without a gap, syncs it (under `interval`, when the sync is due) and resumes its waiters.
    /// `awaitingGroups`: first wait for the groups of handovers open now (`beginGroup`).
    private func commit(_ c: inout Committing, awaitingGroups: Bool) -> Committed {
        // A caller that looked before `close()` refused handovers and took the lock after it.
        if c.closed { return .nothing }
        c.taken.take(from: laneRefs)
        c.batch.removeAll()
        c.taken.run(from: c.writer.nextLSN, into: &c.batch)
        if c.batch.isEmpty { return .nothing }
        // A group being handed over goes in this write with what came before it.
        if awaitingGroups && awaitOpenGroups() {
            c.taken.take(from: laneRefs)
            c.taken.run(from: c.writer.nextLSN + UInt64(c.batch.count), into: &c.batch)
        }
        do {
            let lsns = try c.writer.append(&c.batch)
            var synced = false
            if case .interval(let d) = policy, ContinuousClock.now - c.lastSync < d {
                // Written is acknowledged under `interval`; the sync waits for its turn.
            } else {
                try c.sync()
                synced = true
            }
            acknowledge(through: lsns.upperBound, synced: synced, recordByteCount: c.writer.recordByteCount, direct: &c.direct)
            return .written
        } catch {
            fail(error)
            return .failed
        }
    }

    private func run() {
        while true {
            switch committing.withLock({ commit(&$0, awaitingGroups: true) }) {
            case .written:
                continue
            case .failed:
                finished.signal()
                return
            case .nothing:
                break
            }
            let (stopping, failed) = state.withLock { ($0.stopping, $0.failure != nil) }
            if failed {
                // A caller committing in its place failed: nothing more is written.
                finished.signal()
                return
            }
            if stopping {
                // Callers are done by `close()`; a record past a gap (one numbered but never handed
                // over) is not written, and `close()` tells its waiter so.
                committing.withLock { c in
                    c.closed = true
                    finish(c.writer)
                }
                return
            }
            // Idle from here, unless a handover came meanwhile: it was put in its lane before
            // it read the flag, so either this look finds it or it finds the flag set.
            writerIdle.store(true, ordering: .sequentiallyConsistent)
            if laneRefs.contains(where: { lane in lane._withUnsafeGuaranteedRef { $0.pending.withLock { !$0.isEmpty } } })
                || state.withLock({ $0.stopping || $0.failure != nil })
            {
                if writerIdle.exchange(false, ordering: .sequentiallyConsistent) { continue }
                // A handover cleared the flag and signals: take that signal, then look again.
            }
            // Waiters still relayed: the waiters resumed to resume them may never run (a loop that
            // stopped). The thread sleeps at most `relayedWaitMaximum` then, and resumes what is
            // still relayed once that long has passed.
            let relayedSince = holdsRelayed ? ContinuousClock.now : nil
            switch policy {
            case .interval(let d):
                // Sleep at most until the next sync is due, then sync what was written.
                let due = committing.withLock { $0.lastSync } + d
                var wait = max(.zero, due - ContinuousClock.now)
                if relayedSince != nil { wait = min(wait, Self.relayedWaitMaximum) }
                _ = wakeUp.wait(timeout: .now() + Self.dispatchInterval(wait))
                if ContinuousClock.now >= due {
                    let synced = committing.withLock { c -> Bool in
                        // A caller that committed in the thread's place meanwhile may have synced.
                        guard ContinuousClock.now - c.lastSync >= d else { return true }
                        return sync(&c)
                    }
                    if !synced { return }
                }
            default:
                if relayedSince != nil {
                    _ = wakeUp.wait(timeout: .now() + Self.dispatchInterval(Self.relayedWaitMaximum))
                } else {
                    wakeUp.wait()
                }
            }
            if let since = relayedSince, ContinuousClock.now - since >= Self.relayedWaitMaximum { resumeRelayed() }
            writerIdle.store(false, ordering: .sequentiallyConsistent)
        }
    }

    /// `d` as a semaphore's timeout takes it, to the nanosecond.
    private static func dispatchInterval(_ d: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = d.components
        return .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }

    /// Syncs the writer for the `interval` policy; false after a failure (the thread then ends).
    private func sync(_ c: inout Committing) -> Bool {
        do {
            try c.sync()
            state.withLock { $0.syncCount += 1 }
            return true
        } catch {
            fail(error)
            finished.signal()
            return false
        }
    }

    /// Makes everything written durable and closes the segment: the end of the thread.
    private func finish(_ writer: SegmentWriter) {
        do {
            try writer.sync()
            try writer.close()
        } catch {
            fail(error)
        }
        finished.signal()
    }

    /// Resumes the waiters of records up to `lsn`. The committing thread resumes the first few itself
    /// (`Committing.direct`: `directResumeCount`, so that every thread of the cooperative pool is
    /// woken at once); the rest are relayed: left in `State.relayed` for the first waiter that comes
    /// back out of `waitUntilAcknowledged` to resume (`resumeRelayed`), on its own thread. A
    /// continuation resumed on a thread of the pool enqueues its task with a dispatch continuation
    /// from that thread's cache; resumed on the log's thread (or an event loop's), which runs no
    /// dispatch work and so never refills a cache, each took a `calloc` (freed by the thread that ran
    /// the task): one heap allocation per waiting caller (1.0 per reservation of `spread --fsync
    /// always --tasks 1000`). Only tasks of the pool are relayed: a task that prefers an executor of
    /// its own (a server loop's turn task) is enqueued there with no allocation either way, and is
    /// always resumed here, so that no loop's reply waits for another loop's turn to relay it.
    /// Should the waiters resumed directly never run (a loop that stopped), the log's thread resumes
    /// what is still relayed once it has been idle for `relayedWaitMaximum` (`run`).
    private func acknowledge(through lsn: UInt64, synced: Bool, recordByteCount: Int, direct: inout [Waiter]) {
        let directCount = Self.directResumeCount
        let observer = state.withLock { s -> AcknowledgementObserver? in
            s.acknowledgedLSN = lsn
            s.recordByteCount = recordByteCount
            s.batchCount += 1
            if synced { s.syncCount += 1 }
            s.waiters.removeAll { w in
                guard w.lsn <= lsn else { return false }
                if !w.relayable || direct.count < directCount { direct.append(w.continuation) } else { s.relayed.append(w.continuation) }
                return true
            }
            if !s.relayed.isEmpty { hasRelayed.store(true, ordering: .relaxed) }
            return s.observer
        }
        // After the relayed were put in place: the first one resumed takes them, or a waiter before it.
        for c in direct { c.resume(returning: .success(())) }
        direct.removeAll(keepingCapacity: true)
        observer?.call(lsn)
    }

    /// The waiters a commit resumes on its own thread: one per processor the pool may run on (the
    /// online processors, as dispatch sizes its pool), at most 16.
    public static let directResumeCount = max(1, min(ProcessInfo.processInfo.processorCount, 16))

    /// How long the log's thread, idle, leaves waiters relayed before it resumes them itself.
    static let relayedWaitMaximum: Duration = .milliseconds(10)

    /// Resumes the waiters relayed by `acknowledge`, called by a waiter once it was resumed (and by
    /// the log's thread when they wait too long). Every waiter in `State.relayed` was put there
    /// before a waiter was resumed directly (which calls this when it runs), so none is left behind.
    /// The list is taken whole and its storage given back emptied, for the next commit to relay into
    /// (resuming a few dozen waiters takes microseconds, a sync far longer): it allocates nothing once
    /// the list has room, unless a commit relays while the list is out. A caller that finds the list
    /// taken already takes nothing.
    private func resumeRelayed() {
        guard hasRelayed.load(ordering: .relaxed) else { return }
        var taken: [Waiter] = []
        state.withLock { s in
            hasRelayed.store(false, ordering: .relaxed)
            swap(&taken, &s.relayed)
        }
        guard !taken.isEmpty else { return }
        for i in taken.indices { taken[i].resume(returning: .success(())) }
        taken.removeAll(keepingCapacity: true)
        state.withLock { s in
            if s.relayed.isEmpty && s.relayed.capacity < taken.capacity { swap(&s.relayed, &taken) }
        }
    }

    /// How many callers wait in `waitUntilAcknowledged` for a record not yet acknowledged (for tests).
    var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Whether waiters are relayed and not yet taken.
    private var holdsRelayed: Bool { state.withLock { !$0.relayed.isEmpty } }

    private func fail(_ error: WALIOError) {
        let (waiting, observer) = state.withLock { s -> ([Waiter], (@Sendable (WALIOError) -> Void)?) in
            let first = s.failure == nil
            if first { s.failure = error }
            refusing.store(true, ordering: .releasing)
            defer { s.waiters.removeAll() }
            return (s.waiters.map(\.continuation), first ? s.failureObserver : nil)
        }
        for c in waiting { c.resume(returning: .failure(error)) }
        observer?(error)
    }
}
