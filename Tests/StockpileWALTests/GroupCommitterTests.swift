// The group committer: what it acknowledges survives a crash, in LSN order with no gap; a failed
// write or sync reaches every waiter and every later caller; and on a real directory the log it
// writes recovers whole.

import Foundation
import Glibc
import StockpileCore
import Synchronization
import Testing
@testable import StockpileWAL

@Suite("Group commit")
struct GroupCommitterTests {
    /// Submits `perTask` records from each of `tasks` concurrent tasks, each waiting for its
    /// acknowledgement, and returns the bodies by acknowledged LSN.
    static func submitConcurrently(_ committer: GroupCommitter, tasks: Int, perTask: Int) async throws -> [UInt64: WALRecord.Body] {
        try await withThrowingTaskGroup(of: [(UInt64, WALRecord.Body)].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var acknowledged: [(UInt64, WALRecord.Body)] = []
                    for (i, body) in LogTestSupport.bodies(count: perTask, seed: UInt64(t)).enumerated() {
                        let lsn = try committer.submit([body])
                        try await committer.waitUntilAcknowledged(lsn)
                        acknowledged.append((lsn, body))
                        if i % 7 == 0 { await Task.yield() }
                    }
                    return acknowledged
                }
            }
            return try await Self.merged(&group)
        }
    }

    /// The acknowledged records the tasks of `group` return, by LSN.
    static func merged(_ group: inout ThrowingTaskGroup<[(UInt64, WALRecord.Body)], any Error>) async throws -> [UInt64: WALRecord.Body] {
        var all: [UInt64: WALRecord.Body] = [:]
        for try await part in group { for (lsn, body) in part { all[lsn] = body } }
        return all
    }

    /// A committer over a fresh log on the simulated file system, with small segments so rotation happens.
    static func simulatedCommitter(
        policy: DurabilityPolicy, laneCount: Int = 1, groupWaitMax: Duration = GroupCommitter.groupWaitMaxDefault
    ) throws -> (SimulatedFileSystem, String, GroupCommitter) {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let recovery = try LogRecovery.recover(directory: dir, fileSystem: fs)
        let writer = try SegmentWriter(directory: dir, recovery: recovery, fileSystem: fs, segmentByteCount: 64 << 10)
        return (fs, dir, GroupCommitter(writer: writer, policy: policy, laneCount: laneCount, groupWaitMax: groupWaitMax))
    }

    @Test("every record acknowledged under always survives a crash, in LSN order with no gap")
    func acknowledgedSurvivesCrash() async throws {
        let (fs, dir, committer) = try Self.simulatedCommitter(policy: .always)
        let syncsBefore = fs.syncCount
        let acknowledged = try await Self.submitConcurrently(committer, tasks: 16, perTask: 60)
        let progress = committer.progress
        print("group commit: \(acknowledged.count) records in \(progress.batchCount) batches, \(fs.syncCount - syncsBefore) syncs")

        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.map(\.lsn) == Array(1...UInt64(recovered.records.count)), "LSNs must be gapless from 1")
        let byLSN = Dictionary(uniqueKeysWithValues: recovered.records.map { ($0.lsn, $0.body) })
        #expect(acknowledged.count == 16 * 60)
        for (lsn, body) in acknowledged {
            #expect(byLSN[lsn] == body, "acknowledged record \(lsn) lost or changed by the crash")
        }
        #expect(progress.syncCount <= progress.batchCount, "one sync per batch at most")
        // The committer's thread is left waiting: after the simulated crash its file is gone.
    }

    @Test("a failed fdatasync fails every waiter and every later handover", arguments: [EIO, ENOSPC])
    func failedSync(_ code: Int32) async throws {
        let (fs, dir, committer) = try Self.simulatedCommitter(policy: .always)
        let first = try committer.submit(LogTestSupport.smallBodies(count: 1))
        try await committer.waitUntilAcknowledged(first)
        fs.failSync(1, errno: code)
        let second = try committer.submit(LogTestSupport.smallBodies(count: 1))
        await #expect(throws: WALIOError.self) { try await committer.waitUntilAcknowledged(second) }
        do {
            _ = try committer.submit(LogTestSupport.smallBodies(count: 1))
            Issue.record("a handover after a failed sync must be refused")
        } catch {
            #expect(error.errno == code)
        }
        // What was acknowledged before the failure is still durable.
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.map(\.lsn).contains(first))
        #expect(throws: WALIOError.self) { try committer.close() }
    }

    @Test("a failed write is reported to the waiter and never retried")
    func failedWrite() async throws {
        let (fs, _, committer) = try Self.simulatedCommitter(policy: .always)
        fs.failWrite(1, errno: ENOSPC)
        let lsn = try committer.submit(LogTestSupport.smallBodies(count: 3))
        await #expect(throws: WALIOError.self) { try await committer.waitUntilAcknowledged(lsn) }
        #expect(committer.progress.acknowledgedLSN == 0)
        #expect(throws: WALIOError.self) { try committer.submit(LogTestSupport.smallBodies(count: 1)) }
        #expect(throws: WALIOError.self) { try committer.close() }
    }

    @Test("under interval, records are acknowledged when written and synced by close")
    func interval() async throws {
        let (fs, dir, committer) = try Self.simulatedCommitter(policy: .interval(.milliseconds(20)))
        let acknowledged = try await Self.submitConcurrently(committer, tasks: 4, perTask: 25)
        try committer.close()
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.count == acknowledged.count)
        for r in recovered.records { #expect(acknowledged[r.lsn] == r.body) }
    }

    @Test("on a real directory the committed log recovers whole")
    func realDirectory() async throws {
        var template = Array("/tmp/stockpile-commit-test-XXXXXX".utf8CString)
        let made = try #require(mkdtemp(&template))
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try SegmentWriter(directory: dir, recovery: try LogRecovery.recover(directory: dir), segmentByteCount: 256 << 10)
        let committer = GroupCommitter(writer: writer, policy: .always)
        let acknowledged = try await Self.submitConcurrently(committer, tasks: 8, perTask: 40)
        try committer.close()
        let recovered = try LogRecovery.recover(directory: dir)
        #expect(recovered.records.count == acknowledged.count)
        for r in recovered.records { #expect(acknowledged[r.lsn] == r.body) }
    }

    @Test("records handed over in lanes, out of LSN order between lanes, are written in LSN order, and none past a gap is acknowledged")
    func lanesOutOfOrder() async throws {
        let (fs, dir, committer) = try Self.simulatedCommitter(policy: .always, laneCount: 2)
        let bodies = LogTestSupport.bodies(count: 5, seed: 7)
        // LSNs 2 and 3 come first, in lane 1; 1 is still on its way to lane 0.
        committer.submit(bodies[1], lsn: 2, lane: 1)
        committer.submit(bodies[2], lsn: 3, lane: 1)
        try await Task.sleep(for: .milliseconds(50))
        #expect(committer.progress.acknowledgedLSN == 0, "nothing is acknowledged while LSN 1 has not come")
        committer.submit(bodies[0], lsn: 1, lane: 0)
        try await committer.waitUntilAcknowledged(3)
        committer.submit(bodies[4], lsn: 5, lane: 1)
        committer.submit(bodies[3], lsn: 4, lane: 0)
        try await committer.waitUntilAcknowledged(5)
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.map(\.lsn) == [1, 2, 3, 4, 5])
        #expect(recovered.records.map(\.body) == bodies)
    }

    @Test("lanes numbered from one counter by concurrent owners: every acknowledged record survives a crash under its own LSN")
    func concurrentLanes() async throws {
        let lanes = 4
        let (fs, dir, committer) = try Self.simulatedCommitter(policy: .always, laneCount: lanes)
        // Each lane has an owner lock, as a shard's lock owns its lane; the LSN is taken from a counter
        // common to all while the owner holds its lane, so lanes interleave in any order.
        final class Owner: Sendable { let lock = Mutex<UInt64>(0) }
        let counter = Owner()
        counter.lock.withLock { $0 = 1 }
        let owners = (0..<lanes).map { _ in Owner() }
        let perTask = 50
        let acknowledged = try await withThrowingTaskGroup(of: [(UInt64, WALRecord.Body)].self) { group in
            for t in 0..<(lanes * 3) {
                group.addTask {
                    var mine: [(UInt64, WALRecord.Body)] = []
                    for (i, body) in LogTestSupport.bodies(count: perTask, seed: UInt64(100 + t)).enumerated() {
                        let lane = (t + i) % lanes
                        let lsn = owners[lane].lock.withLock { _ in
                            let lsn = counter.lock.withLock { n in
                                defer { n += 1 }
                                return n
                            }
                            committer.submit(body, lsn: lsn, lane: lane)
                            return lsn
                        }
                        try await committer.waitUntilAcknowledged(lsn)
                        mine.append((lsn, body))
                    }
                    return mine
                }
            }
            return try await Self.merged(&group)
        }
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.map(\.lsn) == Array(1...UInt64(lanes * 3 * perTask)))
        for r in recovered.records { #expect(acknowledged[r.lsn] == r.body, "record \(r.lsn) is not the one handed over with it") }
    }

    @Test("after close, a handover is refused and a waiter for a record not written hears that the log closed")
    func afterClose() async throws {
        let (_, _, committer) = try Self.simulatedCommitter(policy: .always, laneCount: 2)
        committer.submit(LogTestSupport.smallBodies(count: 1)[0], lsn: 1, lane: 0)
        try await committer.waitUntilAcknowledged(1)
        // LSN 3 comes, 2 never does: at close, 3 cannot be written.
        committer.submit(LogTestSupport.smallBodies(count: 1)[0], lsn: 3, lane: 1)
        try committer.close()
        #expect(throws: GroupCommitter.closedError) { try committer.checkWritable() }
        await #expect(throws: GroupCommitter.closedError) { try await committer.waitUntilAcknowledged(3) }
        try await committer.waitUntilAcknowledged(1)
    }
}

@Suite("Groups of handovers")
struct HandoverGroupTests {
    static func committer(groupWaitMax: Duration) throws -> GroupCommitter {
        try GroupCommitterTests.simulatedCommitter(policy: .always, groupWaitMax: groupWaitMax).2
    }

    /// Whether `condition` holds within `limit` (looked at every millisecond), without waiting on the
    /// committer: one that never gets there fails the test instead of hanging it.
    static func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + limit
        while !condition() && ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(1)) }
        return condition()
    }

    /// Whether `lsn` is acknowledged within `limit`.
    static func acknowledged(_ committer: GroupCommitter, _ lsn: UInt64, within limit: Duration) async throws -> Bool {
        try await eventually(within: limit) { committer.progress.acknowledgedLSN >= lsn }
    }

    /// Whether the committer's thread began waiting for open groups `count` times within `limit`: a
    /// test that opens a group after that knows the write waits for the groups open before it,
    /// however slowly the machine runs the committer's thread.
    static func waitsBegun(_ committer: GroupCommitter, _ count: Int, within limit: Duration) async throws -> Bool {
        try await eventually(within: limit) { committer.groupWaitCount >= count }
    }

    @Test("a write waits for the group open when it would start, and takes the group's records with it")
    func writeWaitsForOpenGroup() async throws {
        // A bound no wait here can reach, however long the test's own steps are held up by a busy
        // machine (the whole suite at once held a 50 ms sleep for over a minute).
        let committer = try Self.committer(groupWaitMax: .seconds(24 * 3600))
        let bodies = LogTestSupport.bodies(count: 3, seed: 11)
        let group = committer.beginGroup()
        committer.submit(bodies[0], lsn: 1, lane: 0)
        // Without the group, the first record would be written and acknowledged alone.
        #expect(try await Self.waitsBegun(committer, 1, within: .seconds(60)), "the write waits for the open group")
        #expect(committer.progress.acknowledgedLSN == 0, "nothing is written while the group is open")
        committer.submit(bodies[1], lsn: 2, lane: 0)
        committer.submit(bodies[2], lsn: 3, lane: 0)
        committer.endGroup(group)
        #expect(try await Self.acknowledged(committer, 3, within: .seconds(60)), "the group's end lets the write go")
        #expect(committer.progress.batchCount == 1, "the group's records go in one write")
        #expect(committer.progress.syncCount == 1)
        try committer.close()
    }

    @Test("a group opened after a write began waiting is not waited for")
    func laterGroupNotAwaited() async throws {
        // Waiting for the later group too would take the whole bound, 30 s.
        let committer = try Self.committer(groupWaitMax: .seconds(30))
        let bodies = LogTestSupport.bodies(count: 1, seed: 12)
        let first = committer.beginGroup()
        committer.submit(bodies[0], lsn: 1, lane: 0)
        #expect(try await Self.waitsBegun(committer, 1, within: .seconds(20)), "the write waits for the first group")
        let later = committer.beginGroup()
        committer.endGroup(first)
        #expect(try await Self.acknowledged(committer, 1, within: .seconds(5)), "acknowledged once the group it waited for ended")
        committer.endGroup(later)
        try await committer.waitUntilAcknowledged(1)
        try committer.close()
    }

    @Test("a group that never ends holds a write back no longer than the bound")
    func openGroupBounded() async throws {
        let committer = try Self.committer(groupWaitMax: .milliseconds(20))
        let bodies = LogTestSupport.bodies(count: 2, seed: 13)
        let group = committer.beginGroup()
        committer.submit(bodies[0], lsn: 1, lane: 0)
        #expect(try await Self.acknowledged(committer, 1, within: .seconds(5)))
        // The next write waits the bound again (the group is still open), and then goes.
        committer.submit(bodies[1], lsn: 2, lane: 0)
        #expect(try await Self.acknowledged(committer, 2, within: .seconds(5)))
        committer.endGroup(group)
        try await committer.waitUntilAcknowledged(2)
        try committer.close()
    }
}

/// A task executor that runs its jobs on a queue of its own until it is frozen, and then keeps them
/// until it is thawed: a stand-in for an event loop that stopped with jobs enqueued.
final class FreezableExecutor: TaskExecutor, @unchecked Sendable {
    private let state = Mutex<(frozen: Bool, held: [UnownedJob])>((false, []))
    private let queue = DispatchQueue(label: "freezable-executor")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let runNow = state.withLock { s -> Bool in
            if s.frozen { s.held.append(job) }
            return !s.frozen
        }
        if runNow { run(job) }
    }

    private func run(_ job: UnownedJob) {
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    func freeze() { state.withLock { $0.frozen = true } }

    func thaw() {
        let held = state.withLock { s -> [UnownedJob] in
            s.frozen = false
            defer { s.held = [] }
            return s.held
        }
        for job in held { run(job) }
    }
}

@Suite("Relayed resumptions")
struct RelayedResumptionTests {
    @Test("waiters relayed to waiters that never run are resumed by the log's thread")
    func relayedToStoppedExecutor() async throws {
        let (_, _, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always, groupWaitMax: .seconds(24 * 3600))
        // The write waits for the open group, so every waiter below is in before the commit.
        let group = committer.beginGroup()
        committer.submit(LogTestSupport.smallBodies(count: 1)[0], lsn: 1, lane: 0)
        // The first waiters, those the commit resumes on its own thread, are tasks of an executor
        // that stops running jobs once they wait: they never come back to resume the rest.
        let direct = GroupCommitter.directResumeCount
        let stopped = FreezableExecutor()
        let stoppedTasks = (0..<direct).map { _ in Task(executorPreference: stopped) { try await committer.waitUntilAcknowledged(1) } }
        #expect(try await HandoverGroupTests.eventually(within: .seconds(60)) { committer.waitingCount == direct }, "the first waiters wait")
        stopped.freeze()
        // The rest, on the cooperative pool, are relayed.
        let relayedCount = 6
        /// How many of them are done, shared with them.
        final class DoneCount: Sendable { let count = Atomic<Int>(0) }
        let done = DoneCount()
        let relayedTasks = (0..<relayedCount).map { _ in
            Task {
                try await committer.waitUntilAcknowledged(1)
                done.count.add(1, ordering: .relaxed)
            }
        }
        #expect(try await HandoverGroupTests.eventually(within: .seconds(60)) { committer.waitingCount == direct + relayedCount }, "every waiter waits")
        committer.endGroup(group)
        #expect(
            try await HandoverGroupTests.eventually(within: .seconds(60)) { done.count.load(ordering: .relaxed) == relayedCount },
            "the relayed waiters are resumed without the waiters they were relayed to")
        // Thawed first, so that a failure above ends rather than hangs: the waiters resumed directly
        // then run, and resume whatever is still relayed.
        stopped.thaw()
        for task in stoppedTasks { try await task.value }
        for task in relayedTasks { try await task.value }
        try committer.close()
    }
}
