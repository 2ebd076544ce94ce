// A thread that defers waking the log's thread: records it hands over (`GroupCommitter.submit`) wait in
// their lanes without waking the committer's thread, and the thread says when it is done handing over
// (`flush`): then it commits them itself (`GroupCommitter.commitInPlace`), when it may block and the
// committer's thread sleeps, or wakes that thread once. An event loop defers for its whole life and
// flushes at the end of each turn: its turn's records go in one write and sync, started when they are
// all in, and with nothing else ready for it the loop makes that commit itself instead of sleeping
// while the log's thread makes it and wakes the loop back.
//
// It keeps true: a deferring thread flushes before it blocks (otherwise its records would wait for
// another thread's handover to wake the committer), and every committer it noted is flushed.

import Glibc

public final class WakeDeferral: @unchecked Sendable {
    // @unchecked: touched only by the thread it is installed on (`install`).
    private var pending: [GroupCommitter] = []

    public init() {}

    /// The calling thread defers from now on, into this deferral. Call once, on the thread that
    /// flushes it.
    public func install() {
        precondition(pthread_setspecific(Self.key, Unmanaged.passUnretained(self).toOpaque()) == 0, "pthread_setspecific failed")
    }

    /// The calling thread no longer defers; what it deferred is flushed (waking, not committing).
    public func uninstall() {
        flush(committingInPlace: false)
        precondition(pthread_setspecific(Self.key, nil) == 0, "pthread_setspecific failed")
    }

    /// Whether records were handed over since the last flush.
    public var isPending: Bool { !pending.isEmpty }

    /// Ends the deferral of what was handed over so far: with `committingInPlace`, each committer
    /// noted commits on this thread if it can (`GroupCommitter.commitInPlace`: its thread sleeps and no
    /// commit is under way; this thread blocks on the write and sync), and otherwise wakes its thread;
    /// without, each wakes its thread. Returns whether a commit was made here.
    @discardableResult
    public func flush(committingInPlace: Bool) -> Bool {
        guard !pending.isEmpty else { return false }
        var committed = false
        for committer in pending {
            if committingInPlace {
                committed = committer.commitInPlace() || committed
            } else {
                committer.wakeNowIfIdle()
            }
        }
        pending.removeAll(keepingCapacity: true)
        return committed
    }

    /// Notes that `committer` has records handed over on this thread, if the thread defers
    /// (`GroupCommitter.wakeIfIdle`); returns whether it does. The deferral is used where the thread
    /// keeps it, without a retain and release of it per handover: the thread holds it installed.
    @inline(__always)
    static func noteOnCurrentThread(_ committer: GroupCommitter) -> Bool {
        guard let pointer = pthread_getspecific(key) else { return false }
        Unmanaged<WakeDeferral>.fromOpaque(pointer)._withUnsafeGuaranteedRef { $0.note(committer) }
        return true
    }

    @inline(__always)
    private func note(_ committer: GroupCommitter) {
        if !pending.contains(where: { $0 === committer }) { pending.append(committer) }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
}
