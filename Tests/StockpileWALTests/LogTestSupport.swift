// Helpers shared by the segment writer and recovery tests: a temporary directory under /tmp that is
// removed afterwards, seeded record bodies, and ways to run recovery and see its damage.

import Foundation
import Glibc
import StockpileCore
@testable import StockpileWAL

enum LogTestSupport {
    /// The simulated file system's data directory.
    static let simulatedDirectory = "/sim/data"

    static func simulatedFileSystem() -> SimulatedFileSystem {
        SimulatedFileSystem(directories: [simulatedDirectory])
    }

    /// What a start-up finds in `dir` after the machine crashes now (`SimulatedFileSystem.crash`):
    /// what was synced, no more.
    static func recoveredAfterCrash(_ fs: SimulatedFileSystem, _ dir: String = simulatedDirectory) throws -> LogRecovery.Result {
        fs.crash()
        return try LogRecovery.recover(directory: dir, fileSystem: fs)
    }

    /// Runs `body` with a fresh directory under /tmp, and removes it afterwards.
    static func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
        var template = Array("/tmp/stockpile-wal-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw WALIOError(operation: .open, path: "/tmp", errno: errno) }
        let path = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// `count` record bodies from `seed`: sample commits and key uses first, then random ones.
    static func bodies(count: Int, seed: UInt64) -> [WALRecord.Body] {
        var random = RandomCommits(seed: seed)
        let samples = CommitSamples.commits.map { WALRecord.Body.commit($0) } + CommitSamples.keyUses.map { .keyUse($0) }
        return (0..<count).map { i in
            if i < samples.count && i % 2 == 0 { return samples[i] }
            return random.int(0...3) == 0 ? .keyUse(random.keyUse()) : .commit(random.commit())
        }
    }

    /// Small record bodies (a commit with no entries), for tests that need many records in little space.
    static func smallBodies(count: Int) -> [WALRecord.Body] {
        (0..<count).map { .commit(smallCommit($0)) }
    }

    static func smallCommit(_ i: Int) -> Commit {
        Commit(
            time: Timestamp(milliseconds: 1_700_000_000_000 + Int64(i)), entries: [], reservation: nil,
            warehouse: Warehouse(code: "w\(i)"), policy: nil, replyShape: .warehouse, keyedCommand: nil)
    }

    /// Writes `batches` with a writer opened on a fresh log, syncing after each batch, and closes it.
    @discardableResult
    static func writeLog(
        _ batches: [[WALRecord.Body]], directory: String, fileSystem: any FileSystem, segmentByteCount: Int = 1 << 20
    ) throws -> SegmentWriter {
        let recovery = try LogRecovery.recover(directory: directory, fileSystem: fileSystem)
        let writer = try SegmentWriter(
            directory: directory, recovery: recovery, fileSystem: fileSystem, segmentByteCount: segmentByteCount)
        for batch in batches {
            try writer.append(batch)
            try writer.sync()
        }
        try writer.close()
        return writer
    }

    /// The damage recovery refuses with, nil if it does not refuse for damage.
    static func damage(directory: String, fileSystem: any FileSystem) -> LogDamage? {
        do {
            _ = try LogRecovery.recover(directory: directory, fileSystem: fileSystem)
            return nil
        } catch {
            if case .damaged(let d) = error { return d }
            return nil
        }
    }

    /// The records recovery finds, as bodies in LSN order, after checking the LSNs run from `firstLSN`.
    static func bodies(of result: LogRecovery.Result, firstLSN: UInt64 = 1) -> [WALRecord.Body] {
        precondition(result.records.enumerated().allSatisfy { $0.element.lsn == firstLSN + UInt64($0.offset) }, "LSNs not gapless")
        return result.records.map(\.body)
    }
}
