// A thread that defers the log's wake-ups (an event loop): its handovers wake nothing until it
// flushes; then it commits them in place when the committer's thread sleeps, or wakes that thread;
// a commit in place whose write or sync fails stops the log as one of the thread's own does; close()
// waits for a commit in place under way; and deferring threads, committing in place or not, together
// with ordinary callers, lose no acknowledged record to a crash.

import Foundation
import Glibc
import StockpileCore
import Synchronization
import Testing
@testable import StockpileWAL

@Suite("Deferred wake-ups and commits in place")
struct WakeDeferralTests {
    /// Runs `body` on a thread of its own that defers into a deferral of its own (a cooperative
    /// pool thread must neither block on I/O nor keep a deferral another test's task would find),
    /// and returns what it returns.
    static func onDeferringThread<R: Sendable>(_ body: @escaping @Sendable (WakeDeferral) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            startThread(named: "test-deferring") {
                let deferral = WakeDeferral()
                deferral.install()
                defer { deferral.uninstall() }
                continuation.resume(with: Result { try body(deferral) })
            }
        }
    }

    /// Waits until the committer's thread sleeps (it does once nothing waits): a commit in place needs it to.
    static func untilSleeping(_ committer: GroupCommitter) {
        while !committer.isSleeping { usleep(200) }
    }

    @Test("a deferring thread's handovers wake nothing; flushed, it commits them in place while the committer's thread sleeps")
    func commitsInPlace() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        Self.untilSleeping(committer)
        let syncsBefore = fs.syncCount
        let bodies = LogTestSupport.bodies(count: 3, seed: 11)
        let lsn = try await Self.onDeferringThread { deferral -> UInt64 in
            var last: UInt64 = 0
            for body in bodies { last = try committer.submit([body]) }
            #expect(deferral.isPending)
            #expect(committer.isSleeping, "a deferred handover does not wake the committer's thread")
            #expect(committer.progress.batchCount == 0)
            #expect(deferral.flush(committingInPlace: true), "the committer's thread sleeps: the commit is made here")
            #expect(!deferral.isPending)
            // Made and acknowledged before the flush returned.
            #expect(committer.progress.acknowledgedLSN == last)
            return last
        }
        #expect(lsn == 3)
        #expect(committer.progress.batchCount == 1, "the three records went in one write")
        #expect(fs.syncCount == syncsBefore + 1, "and one sync")
        try await committer.waitUntilAcknowledged(lsn)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.body) == bodies)
    }

    @Test("flushed without committing in place, the deferred records are written by the committer's thread")
    func flushWakes() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        Self.untilSleeping(committer)
        let bodies = LogTestSupport.bodies(count: 4, seed: 12)
        let lsn = try await Self.onDeferringThread { deferral -> UInt64 in
            var last: UInt64 = 0
            for body in bodies { last = try committer.submit([body]) }
            #expect(committer.isSleeping)
            #expect(!deferral.flush(committingInPlace: false))
            return last
        }
        try await committer.waitUntilAcknowledged(lsn)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.body) == bodies)
    }

    /// The step of a commit in place that a test makes fail.
    enum FailingStep: String, CaseIterable, Sendable {
        case write, sync
    }

    @Test(
        "a commit in place whose write or sync fails stops the log: its waiters, later handovers and close all hear of it",
        arguments: FailingStep.allCases, [EIO, ENOSPC])
    func failedCommitInPlace(_ step: FailingStep, _ code: Int32) async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        let first = try committer.submit(LogTestSupport.smallBodies(count: 1))
        try await committer.waitUntilAcknowledged(first)
        Self.untilSleeping(committer)
        switch step {
        case .write: fs.failWrite(1, errno: code)
        case .sync: fs.failSync(1, errno: code)
        }
        let second = try await Self.onDeferringThread { deferral -> UInt64 in
            let lsn = try committer.submit(LogTestSupport.smallBodies(count: 1))
            #expect(deferral.flush(committingInPlace: true), "the failed commit was tried here")
            return lsn
        }
        await #expect(throws: WALIOError.self) { try await committer.waitUntilAcknowledged(second) }
        #expect(committer.progress.acknowledgedLSN == first)
        do {
            _ = try committer.submit(LogTestSupport.smallBodies(count: 1))
            Issue.record("a handover after a failed \(step) must be refused")
        } catch {
            #expect(error.errno == code)
        }
        // The committer's thread saw the failure and ended: close reports it rather than hanging.
        #expect(throws: WALIOError.self) { try committer.close() }
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.lsn).contains(first))
    }

    @Test("close() while a commit in place waits for its sync waits for that commit, whose records are acknowledged and survive a crash")
    func closeDuringCommitInPlace() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        Self.untilSleeping(committer)
        let bodies = LogTestSupport.bodies(count: 2, seed: 13)
        fs.holdSyncs()
        async let inPlace = Self.onDeferringThread { deferral -> (lsn: UInt64, committed: Bool) in
            var last: UInt64 = 0
            for body in bodies { last = try committer.submit([body]) }
            return (last, deferral.flush(committingInPlace: true))
        }
        // The loop's commit has written its records and waits in its sync.
        while fs.heldSyncCount == 0 { usleep(200) }
        let closing = Mutex<Result<Void, WALIOError>?>(nil)
        startThread(named: "test-closing") {
            let result = Result { () throws(WALIOError) in try committer.close() }
            closing.withLock { $0 = result }
        }
        // close() cannot finish while the commit holds the lock: nothing is acknowledged yet.
        usleep(20_000)
        #expect(closing.withLock { $0 } == nil, "close() returned while a commit in place was under way")
        #expect(committer.progress.acknowledgedLSN == 0)
        fs.releaseSyncs()
        let (lsn, committed) = try await inPlace
        #expect(committed, "the commit was made in place")
        while closing.withLock({ $0 }) == nil { usleep(200) }
        #expect(throws: Never.self) { try closing.withLock { $0 }!.get() }
        #expect(committer.progress.acknowledgedLSN == lsn)
        try await committer.waitUntilAcknowledged(lsn)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.body) == bodies)
    }

    @Test("near a segment's end a commit in place is left to the committer's thread, which rotates the segment; in the next one loops commit in place again")
    func noRotationInPlace() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        let segmentByteCount = 64 << 10
        let room = GroupCommitter.inPlaceRoomMinimum(segmentByteCount: segmentByteCount)
        var bodies: [WALRecord.Body] = []
        /// Hands records over from an ordinary caller until `done` says the log has written enough.
        func fill(until done: () -> Bool) async throws {
            while !done() {
                let body = LogTestSupport.smallBodies(count: 1)[0]
                bodies.append(body)
                try await committer.waitUntilAcknowledged(try committer.submit([body]))
            }
        }
        // Less room left in the first segment than a commit in place needs.
        try await fill { SegmentHeader.byteCount + committer.progress.recordByteCount > segmentByteCount - room }
        Self.untilSleeping(committer)
        let nearEnd = LogTestSupport.smallBodies(count: 1)[0]
        let (lsn, committed) = try await Self.onDeferringThread { deferral -> (UInt64, Bool) in
            let lsn = try committer.submit([nearEnd])
            return (lsn, deferral.flush(committingInPlace: true))
        }
        bodies.append(nearEnd)
        #expect(!committed, "a commit this near the segment's end is the committer's thread's")
        try await committer.waitUntilAcknowledged(lsn)
        // Past the first segment: in the second, a loop commits in place again.
        let written = committer.progress.recordByteCount
        try await fill { committer.progress.recordByteCount > written + room }
        Self.untilSleeping(committer)
        let later = LogTestSupport.smallBodies(count: 1)[0]
        let committedLater = try await Self.onDeferringThread { deferral -> Bool in
            _ = try committer.submit([later])
            return deferral.flush(committingInPlace: true)
        }
        bodies.append(later)
        #expect(committedLater, "a fresh segment has room for a commit in place")
        try committer.close()
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.body) == bodies)
    }

    @Test("deferring threads that commit in place or wake, beside ordinary callers: every acknowledged record survives a crash in LSN order")
    func deferringBesideOrdinaryCallers() async throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("deferred wake-ups, seed \(seed)")
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always)
        let perThread = 120
        let acknowledged = try await withThrowingTaskGroup(of: [(UInt64, WALRecord.Body)].self) { group in
            // Three deferring threads: each hands over a turn of one to five records, flushes (in
            // place or not, at random) and waits for its turn's records before the next, as a loop's
            // turn replies only once its records are safe.
            for t in 0..<3 {
                group.addTask {
                    try await Self.onDeferringThread { deferral in
                        var rng = SplitMix64(seed: seed &+ UInt64(t))
                        let bodies = LogTestSupport.bodies(count: perThread, seed: seed &+ UInt64(t))
                        var mine: [(UInt64, WALRecord.Body)] = []
                        var i = 0
                        while i < bodies.count {
                            let turn = min(bodies.count - i, 1 + Int(rng.next() % 5))
                            var last: UInt64 = 0
                            for body in bodies[i..<(i + turn)] {
                                last = try committer.submit([body])
                                mine.append((last, body))
                            }
                            i += turn
                            deferral.flush(committingInPlace: rng.next() % 2 == 0)
                            while committer.progress.acknowledgedLSN < last {
                                if let failure = committer.failure { throw failure }
                                usleep(50)
                            }
                        }
                        return mine
                    }
                }
            }
            // And two ordinary callers, whose handovers wake the committer's thread.
            for t in 3..<5 {
                group.addTask {
                    var mine: [(UInt64, WALRecord.Body)] = []
                    for body in LogTestSupport.bodies(count: perThread, seed: seed &+ UInt64(t)) {
                        let lsn = try committer.submit([body])
                        try await committer.waitUntilAcknowledged(lsn)
                        mine.append((lsn, body))
                    }
                    return mine
                }
            }
            return try await GroupCommitterTests.merged(&group)
        }
        #expect(acknowledged.count == 5 * perThread)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.lsn) == Array(1...UInt64(recovered.count)), "LSNs must be gapless from 1")
        let byLSN = Dictionary(uniqueKeysWithValues: recovered.map { ($0.lsn, $0.body) })
        for (lsn, body) in acknowledged { #expect(byLSN[lsn] == body, "acknowledged record \(lsn) lost or changed by the crash (seed \(seed))") }
    }
}

@Suite("Commits in place: lanes, gaps and interval")
struct CommitInPlaceLaneTests {
    @Test("a commit in place that finds a gap writes nothing past it; the record that fills the gap, handed over by an ordinary caller, is written with them")
    func gapLeftForLater() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always, laneCount: 2)
        WakeDeferralTests.untilSleeping(committer)
        let bodies = LogTestSupport.bodies(count: 3, seed: 21)
        // LSNs 2 and 3 come first, in lane 1, from a deferring thread; 1 is still on its way to lane 0.
        try await WakeDeferralTests.onDeferringThread { deferral in
            committer.submit(bodies[1], lsn: 2, lane: 1)
            committer.submit(bodies[2], lsn: 3, lane: 1)
            #expect(!deferral.flush(committingInPlace: true), "nothing before the gap: nothing written")
            #expect(committer.progress.acknowledgedLSN == 0)
        }
        committer.submit(bodies[0], lsn: 1, lane: 0)
        try await committer.waitUntilAcknowledged(3)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(recovered.map(\.lsn) == [1, 2, 3])
        #expect(recovered.map(\.body) == bodies)
    }

    @Test("under interval a commit in place acknowledges what it wrote without syncing it; close syncs it")
    func intervalCommitInPlace() async throws {
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .interval(.seconds(3600)))
        // Within the hour nothing is synced but by close.
        let first = try committer.submit(LogTestSupport.smallBodies(count: 1))
        try await committer.waitUntilAcknowledged(first)
        WakeDeferralTests.untilSleeping(committer)
        let syncsBefore = fs.syncCount
        let bodies = LogTestSupport.bodies(count: 5, seed: 22)
        let lsn = try await WakeDeferralTests.onDeferringThread { deferral -> UInt64 in
            let lsn = try committer.submit(bodies)
            #expect(deferral.flush(committingInPlace: true))
            return lsn
        }
        #expect(committer.progress.acknowledgedLSN == lsn, "written is acknowledged under interval")
        #expect(fs.syncCount == syncsBefore, "and not synced before its interval")
        try committer.close()
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir).records
        #expect(Array(recovered.map(\.body).suffix(5)) == bodies)
    }
}
