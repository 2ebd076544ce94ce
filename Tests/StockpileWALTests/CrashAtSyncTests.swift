// The simulated storage crashes at the k-th sync, for every k of a run, and keeps, drops or tears
// every write not yet synced. After each crash the log must recover (a torn tail is cut, nothing else
// is refused), every acknowledged record must be there, and every record recovered must be exactly
// the one submitted at its LSN: the log is a prefix of what was handed over, holding all that was
// acknowledged.

import Foundation
import Glibc
import StockpileCore
import Synchronization
import Testing
@testable import StockpileWAL

@Suite("Crash at every sync")
struct CrashAtSyncTests {
    /// What one run handed over and what it had acknowledged when the storage stopped.
    struct Run: Sendable {
        var submitted: [UInt64: WALRecord.Body] = [:]
        var acknowledged: Set<UInt64> = []
        var syncs = 0
    }

    /// Shared by the run's tasks.
    final class RunBox: Sendable {
        let state = Mutex(Run())
    }

    /// Four tasks submit `perTask` records each and wait for each acknowledgement, until the log fails.
    static func run(_ fs: SimulatedFileSystem, crashAt k: Int?, leaving: SimulatedFileSystem.UnsyncedWrites, perTask: Int) async throws -> Run {
        let dir = LogTestSupport.simulatedDirectory
        let recovery = try LogRecovery.recover(directory: dir, fileSystem: fs)
        let writer = try SegmentWriter(directory: dir, recovery: recovery, fileSystem: fs, segmentByteCount: 8 << 10)
        let syncsBefore = fs.syncCount
        if let k { fs.crash(atSync: k, leaving: leaving) }
        let committer = GroupCommitter(writer: writer, policy: .always)
        let run = RunBox()
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for body in LogTestSupport.bodies(count: perTask, seed: UInt64(100 + t)) {
                        guard let lsn = try? committer.submit([body]) else { return }
                        run.state.withLock { $0.submitted[lsn] = body }
                        guard (try? await committer.waitUntilAcknowledged(lsn)) != nil else { return }
                        run.state.withLock { _ = $0.acknowledged.insert(lsn) }
                    }
                }
            }
        }
        // Ends the committer's thread; after a crash it has ended already and this reports the failure.
        try? committer.close()
        var result = run.state.withLock { $0 }
        result.syncs = fs.syncCount - syncsBefore
        return result
    }

    @Test("crashing at the k-th sync, for every k, keeping, dropping or tearing unsynced writes, loses nothing acknowledged", arguments: SimulatedFileSystem.UnsyncedWrites.allCases)
    func everySync(_ leaving: SimulatedFileSystem.UnsyncedWrites) async throws {
        let perTask = 25
        let clean = try await Self.run(LogTestSupport.simulatedFileSystem(), crashAt: nil, leaving: leaving, perTask: perTask)
        #expect(clean.acknowledged.count == 4 * perTask)
        let syncs = clean.syncs
        #expect(syncs > 10, "the run should sync often enough to crash in many places")
        var tornTails = 0
        var crashes = 0
        for k in 1...syncs {
            let fs = LogTestSupport.simulatedFileSystem()
            let run = try await Self.run(fs, crashAt: k, leaving: leaving, perTask: perTask)
            // Batches differ from run to run, so a run may end before its k-th sync: nothing to check.
            guard fs.hasCrashed else { continue }
            crashes += 1
            fs.restart()
            let recovered: LogRecovery.Result
            do {
                recovered = try LogRecovery.recover(directory: LogTestSupport.simulatedDirectory, fileSystem: fs)
            } catch {
                Issue.record("k \(k), \(leaving): recovery refused the log: \(error)")
                continue
            }
            if !recovered.warnings.isEmpty { tornTails += 1 }
            #expect(recovered.records.map(\.lsn) == (0..<UInt64(recovered.records.count)).map { $0 + 1 }, "k \(k), \(leaving): LSNs must be gapless from 1")
            let byLSN = Dictionary(uniqueKeysWithValues: recovered.records.map { ($0.lsn, $0.body) })
            for lsn in run.acknowledged where byLSN[lsn] != run.submitted[lsn] {
                Issue.record("k \(k), \(leaving): acknowledged record \(lsn) lost or changed")
            }
            for r in recovered.records where run.submitted[r.lsn] != r.body {
                Issue.record("k \(k), \(leaving): recovered record \(r.lsn) is not the one submitted")
            }
            // The writer continues on the recovered log as start-up would: a torn tail is cut first.
            _ = try SegmentWriter(directory: LogTestSupport.simulatedDirectory, recovery: recovered, fileSystem: fs, segmentByteCount: 8 << 10)
            #expect(try LogRecovery.recover(directory: LogTestSupport.simulatedDirectory, fileSystem: fs).warnings.isEmpty, "k \(k): the cut must leave no tail")
        }
        print("crash at every sync, \(leaving): \(crashes) crashes of \(syncs) syncs, \(tornTails) torn tails cut")
        #expect(crashes >= syncs / 2, "most k should have crashed the run")
        if leaving == .torn { #expect(tornTails > 0, "tearing should have left torn tails to cut") }
    }
}
