// Group commit (SPEC §4): every shard hands its records over in commit order; one thread of its own
// takes everything waiting, writes it with one pwrite and makes it durable with one fdatasync, then
// wakes every caller that batch covered. The more callers wait, the larger the batches, so a disk that
// syncs in 0.4 ms still acknowledges many records per sync. It keeps true: records reach the log in the
// order they were handed over (LSN order, no gap); a caller hears "durable" only after the fdatasync
// that covered its record returned (`always`), or after its write returned (`interval`, which syncs
// every interval); after a failed write or sync every waiting and every later caller gets that error —
// the failure is never retried as if nothing happened. Blocking calls run only on the committer's own
// thread, never on the cooperative pool.

import Dispatch
import Foundation
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
    /// A record handed over: a body, or a new one-line reservation as its `reservation` record's
    /// fields (written as that record, with the segment's names).
    enum Handover: Sendable {
        case body(WALRecord.Body)
        case reservation(CompactReservation)
    }

    private struct State {
        var pending: [Handover] = []
        /// The LSN the next record handed over gets.
        var nextLSN: UInt64
        /// The last LSN acknowledged under the policy (written for `interval`, synced for `always`).
        var acknowledgedLSN: UInt64
        var waiters: [(lsn: UInt64, continuation: UnsafeContinuation<Result<Void, WALIOError>, Never>)] = []
        var failure: WALIOError?
        /// True while the thread waits for work: the next handover must wake it.
        var writerIdle = false
        var stopping = false
        var syncCount = 0
        var batchCount = 0
        var recordByteCount = 0
        /// Told of every acknowledgement, on the committer's thread, after the waiters were resumed.
        var observer: (@Sendable (UInt64) -> Void)?
        /// Told once, of the failure that stopped the log.
        var failureObserver: (@Sendable (WALIOError) -> Void)?
    }

    /// The writer belongs to the committer's thread alone; nothing else touches it after `init`.
    private final class WriterBox: @unchecked Sendable {
        let writer: SegmentWriter
        init(_ writer: SegmentWriter) { self.writer = writer }
    }

    public let policy: DurabilityPolicy
    /// The last LSN of the log when this committer took it over (0 for a new log): what start-up
    /// replayed, and so what the state covers before the first record handed over.
    public let baseLSN: UInt64
    private let state: Mutex<State>
    private let writerBox: WriterBox
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the committer's thread over `writer`, which it owns from now on.
    /// - Precondition: `policy` is `always` or `interval` (`none` writes no log).
    public init(writer: SegmentWriter, policy: DurabilityPolicy) {
        precondition(policy != .none, "a committer needs a log; with policy none there is none")
        if case .interval(let d) = policy { precondition(d > .zero, "the sync interval must be positive") }
        self.policy = policy
        baseLSN = writer.nextLSN - 1
        state = Mutex(State(nextLSN: writer.nextLSN, acknowledgedLSN: writer.nextLSN - 1))
        writerBox = WriterBox(writer)
        let thread = Thread { [self] in run() }
        thread.name = "stockpile-wal"
        thread.start()
    }

    /// Hands records over and returns the LSN of the last of them. Call in commit order: under the
    /// lock that orders commits, so LSN order is commit order. Never blocks on I/O.
    /// - Throws: the committer's failure, once a write or sync has failed.
    @discardableResult
    public func submit(_ bodies: [WALRecord.Body]) throws(WALIOError) -> UInt64 {
        precondition(!bodies.isEmpty, "an empty handover")
        return try handOver(bodies.count) { $0 += bodies.lazy.map { .body($0) } }
    }

    /// Hands one record over, like `submit(_:)` with one element but without an array for it.
    @discardableResult
    public func submit(_ body: WALRecord.Body) throws(WALIOError) -> UInt64 {
        try handOver(1) { $0.append(.body(body)) }
    }

    /// Hands over a new one-line reservation as the fields of its `reservation` record (FORMAT.md
    /// §3.8), for a caller that has them without the commit they stand for; as `submit(_:)` otherwise.
    @discardableResult
    public func submit(reservation fields: consuming CompactReservation) throws(WALIOError) -> UInt64 {
        try handOver(1) { $0.append(.reservation(fields)) }
    }

    /// Appends `count` records to what waits (by `append`) and wakes the thread if it sleeps.
    private func handOver(_ count: Int, _ append: (inout [Handover]) -> Void) throws(WALIOError) -> UInt64 {
        let (last, wake): (UInt64, Bool) = try state.withLock { s throws(WALIOError) in
            if let failure = s.failure { throw failure }
            precondition(!s.stopping, "records handed over after close()")
            append(&s.pending)
            s.nextLSN += UInt64(count)
            let wake = s.writerIdle
            s.writerIdle = false
            return (s.nextLSN - 1, wake)
        }
        if wake { wakeUp.signal() }
        return last
    }

    /// Waits until record `lsn` is as safe as the policy promises.
    /// - Throws: the committer's failure, if it failed before `lsn` was acknowledged.
    public func waitUntilAcknowledged(_ lsn: UInt64) async throws(WALIOError) {
        // Already acknowledged (often: a reply waits for everything logged so far): no suspension.
        let settled: Result<Void, WALIOError>? = state.withLock { s in
            if s.acknowledgedLSN >= lsn { return .success(()) }
            if let failure = s.failure { return .failure(failure) }
            return nil
        }
        if let settled { return try settled.get() }
        // Unchecked: each continuation is resumed exactly once, by `acknowledge` or `fail`, under the
        // same lock that queued it; the checked kind costs an allocation per wait.
        let result: Result<Void, WALIOError> = await withUnsafeContinuation { continuation in
            let now: Result<Void, WALIOError>? = state.withLock { s in
                if s.acknowledgedLSN >= lsn { return .success(()) }
                if let failure = s.failure { return .failure(failure) }
                s.waiters.append((lsn, continuation))
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
        try result.get()
    }

    /// Calls `observer` with the last acknowledged LSN after every acknowledgement, on the committer's
    /// thread (keep it short: the next batch waits for it). Set it once, before any record is handed
    /// over. A failure acknowledges nothing, so the observer never hears of a record that was not
    /// made as safe as the policy promises.
    public func observeAcknowledgements(_ observer: @escaping @Sendable (UInt64) -> Void) {
        state.withLock { s in
            precondition(s.observer == nil, "one observer per committer")
            s.observer = observer
        }
    }

    /// Calls `observer` once, on the committer's thread, with the write or sync failure that stopped
    /// the log (an operator must hear of it when it happens, not at the next request).
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
        let wake = state.withLock { s in
            s.stopping = true
            defer { s.writerIdle = false }
            return s.writerIdle
        }
        if wake { wakeUp.signal() }
        finished.wait()
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    // MARK: The committer's thread

    private func run() {
        let writer = writerBox.writer
        var lastSync = ContinuousClock.now
        while true {
            let (batch, stopping) = state.withLock { s in
                let batch = s.pending
                s.pending.removeAll(keepingCapacity: true)
                if batch.isEmpty && !s.stopping { s.writerIdle = true }
                return (batch, s.stopping)
            }
            if batch.isEmpty {
                if stopping {
                    finish(writer)
                    return
                }
                switch policy {
                case .interval(let d):
                    // Sleep at most until the next sync is due, then sync what was written.
                    let due = lastSync + d
                    let wait = max(.zero, due - ContinuousClock.now)
                    let (seconds, attoseconds) = wait.components
                    _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
                    if ContinuousClock.now >= due {
                        if !sync(writer) { return }
                        lastSync = ContinuousClock.now
                    }
                default:
                    wakeUp.wait()
                }
                continue
            }
            do {
                let lsns = try writer.append(batch)
                var synced = false
                if case .interval(let d) = policy, ContinuousClock.now - lastSync < d {
                    // Written is acknowledged under `interval`; the sync waits for its turn.
                } else {
                    try writer.sync()
                    lastSync = ContinuousClock.now
                    synced = true
                }
                acknowledge(through: lsns.upperBound, synced: synced, recordByteCount: writer.recordByteCount)
            } catch {
                fail(error)
                finished.signal()
                return
            }
        }
    }

    /// Syncs the writer for the `interval` policy; false after a failure (the thread then ends).
    private func sync(_ writer: SegmentWriter) -> Bool {
        do {
            try writer.sync()
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

    private func acknowledge(through lsn: UInt64, synced: Bool, recordByteCount: Int) {
        let (ready, observer) = state.withLock { s -> ([UnsafeContinuation<Result<Void, WALIOError>, Never>], (@Sendable (UInt64) -> Void)?) in
            s.acknowledgedLSN = lsn
            s.recordByteCount = recordByteCount
            s.batchCount += 1
            if synced { s.syncCount += 1 }
            var ready: [UnsafeContinuation<Result<Void, WALIOError>, Never>] = []
            s.waiters.removeAll { w in
                guard w.lsn <= lsn else { return false }
                ready.append(w.continuation)
                return true
            }
            return (ready, s.observer)
        }
        for c in ready { c.resume(returning: .success(())) }
        observer?(lsn)
    }

    private func fail(_ error: WALIOError) {
        let (waiting, observer) = state.withLock { s -> ([UnsafeContinuation<Result<Void, WALIOError>, Never>], (@Sendable (WALIOError) -> Void)?) in
            let first = s.failure == nil
            if first { s.failure = error }
            defer { s.waiters.removeAll() }
            return (s.waiters.map(\.continuation), first ? s.failureObserver : nil)
        }
        for c in waiting { c.resume(returning: .failure(error)) }
        observer?(error)
    }
}
