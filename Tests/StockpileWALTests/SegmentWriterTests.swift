// The segment writer: files as FORMAT.md §2 says, batches read back exactly, rotation, and the rule
// that a failed write or sync is never retried as if nothing happened.

import Foundation
import Glibc
import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct SegmentWriterTests {
    @Test("records written in batches read back exactly after reopening a real directory")
    func roundTripOnDisk() throws {
        let seed = RandomCommits.seed(default: 0x5E6_0001)
        let bodies = LogTestSupport.bodies(count: 200, seed: seed)
        var random = SplitMix64(seed: seed)
        var batches: [[WALRecord.Body]] = []
        var rest = bodies[...]
        while !rest.isEmpty {
            let n = min(rest.count, Int.random(in: 1...9, using: &random))
            batches.append(Array(rest.prefix(n)))
            rest = rest.dropFirst(n)
        }
        try LogTestSupport.withTemporaryDirectory { dir in
            let fs = SystemFileSystem()
            let writer = try LogTestSupport.writeLog(batches, directory: dir, fileSystem: fs, segmentByteCount: 8 << 20)
            #expect(writer.createdFileNames == ["wal-0000000000000001.log"], "seed \(seed)")
            let names = try fs.listDirectory(dir)
            #expect(names == ["wal-0000000000000001.log"])
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/wal-0000000000000001.log")
            #expect((attributes[.size] as? Int) == 8 << 20, "a segment is fully allocated when named")

            let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
            #expect(LogTestSupport.bodies(of: result) == bodies, "seed \(seed)")
            #expect(result.warnings.isEmpty)
            #expect(result.nextLSN == 201)
            #expect(result.position?.offset == writer.offset)
            #expect(result.position?.dirtyByteCount == 0)
        }
    }

    @Test("a log whose newest segment is version 1 goes on in a new segment of the current version, leaving the old one as it was")
    func olderVersionSegment() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let v1 = try #require(GoldenFileTests.read("v1/segment-every-record.bin"))
        fs.setContents(of: dir + "/wal-0000000000000001.log", to: v1)
        let recovery = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(recovery.nextLSN == 37)
        let writer = try SegmentWriter(directory: dir, recovery: recovery, fileSystem: fs, segmentByteCount: 4096)
        let body = WALRecord.Body.commit(CommitSamples.version2Commits[0])
        #expect(try writer.append([body]) == 37...37)
        try writer.sync()
        try writer.close()
        #expect(fs.contents(of: dir + "/wal-0000000000000001.log") == v1, "the version 1 segment is not written to")
        let newer = try #require(fs.contents(of: dir + "/" + SegmentHeader.fileName(firstLSN: 37)))
        #expect(try SegmentHeader.decode(newer).version == SegmentHeader.formatVersion)
        let reread = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(LogTestSupport.bodies(of: reread).count == 37)
        #expect(LogTestSupport.bodies(of: reread).last == body)
    }

    @Test("a new segment has a valid header, zeros after it, and no tmp file left")
    func segmentLayout() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        fs.setContents(of: dir + "/wal-0000000000000007.log.tmp", to: [1, 2, 3])
        let recovery = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(recovery.temporaryFileNames == ["wal-0000000000000007.log.tmp"])
        let writer = try SegmentWriter(
            directory: dir, recovery: recovery, fileSystem: fs, segmentByteCount: 4096, makeSalt: { 0xABCD_0123 },
            now: { Timestamp(milliseconds: 42) })
        #expect(try fs.listDirectory(dir) == ["wal-0000000000000001.log"])
        let bytes = try #require(fs.contents(of: dir + "/wal-0000000000000001.log"))
        #expect(bytes.count == 4096)
        let header = try SegmentHeader.decode(bytes)
        #expect(header == SegmentHeader(salt: 0xABCD_0123, firstLSN: 1, createdAt: Timestamp(milliseconds: 42)))
        #expect(bytes[SegmentHeader.byteCount...].allSatisfy { $0 == 0 })
        #expect(writer.offset == SegmentHeader.byteCount)
    }

    @Test("rotation spreads records over several small segments, each synced and named by its first LSN")
    func rotation() throws {
        let bodies = LogTestSupport.smallBodies(count: 300)
        try LogTestSupport.withTemporaryDirectory { dir in
            let fs = SystemFileSystem()
            let batches = stride(from: 0, to: bodies.count, by: 7).map { Array(bodies[$0..<min($0 + 7, bodies.count)]) }
            let writer = try LogTestSupport.writeLog(batches, directory: dir, fileSystem: fs, segmentByteCount: 1024)
            #expect(writer.createdFileNames.count >= 5)
            #expect(try fs.listDirectory(dir).sorted() == writer.createdFileNames)
            let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
            #expect(result.segmentFileNames == writer.createdFileNames)
            #expect(LogTestSupport.bodies(of: result) == bodies)
            #expect(result.position?.fileName == writer.createdFileNames.last)
            // A batch moves to the next segment whole: every segment starts at a batch boundary.
            for name in result.segmentFileNames {
                let first = try #require(SegmentHeader.firstLSN(fromFileName: name))
                #expect((first - 1) % 7 == 0, "\(name)")
            }
        }
    }

    @Test("with segments prepared ahead, rotation renames a ready zero-filled file; the log reads back whole and no tmp is left")
    func preparedAhead() throws {
        let bodies = LogTestSupport.smallBodies(count: 300)
        try LogTestSupport.withTemporaryDirectory { dir in
            let fs = SystemFileSystem()
            let writer = try SegmentWriter(
                directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs, segmentByteCount: 2048,
                preparesAhead: true)
            var usedSpare = 0
            for start in stride(from: 0, to: bodies.count, by: 5) {
                let batch = Array(bodies[start..<min(start + 5, bodies.count)])
                // Past half a segment a spare is on its way; wait for it, so that rotations use it.
                if writer.offset > writer.fileByteCount / 2 {
                    var waited = 0
                    while !writer.spareIsReady && waited < 2000 { usleep(1000); waited += 1 }
                    #expect(writer.spareIsReady, "no spare segment was made")
                }
                let before = writer.createdFileNames.count
                let spareWasReady = writer.spareIsReady
                try writer.append(batch)
                try writer.sync()
                if writer.createdFileNames.count > before && spareWasReady { usedSpare += 1 }
            }
            #expect(usedSpare >= 3, "rotations should have used a prepared file")
            try writer.close()
            #expect(try fs.listDirectory(dir).sorted() == writer.createdFileNames, "no .tmp left after close")
            let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
            #expect(LogTestSupport.bodies(of: result) == bodies)
            for name in result.segmentFileNames {
                let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/" + name)
                #expect((attributes[.size] as? Int) == 2048, "\(name) is a whole segment")
            }
        }
    }

    @Test("a batch larger than a fresh segment gets a segment of its own size, replacing an empty one")
    func oversizedBatch() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let big = LogTestSupport.bodies(count: 40, seed: 7)
        let recovery = try LogRecovery.recover(directory: dir, fileSystem: fs)
        let writer = try SegmentWriter(directory: dir, recovery: recovery, fileSystem: fs, segmentByteCount: 512)
        try writer.append(big)  // into the empty first segment: replaced by a larger one of the same name
        try writer.append(LogTestSupport.smallBodies(count: 1))  // does not fit: a new 512-byte segment
        try writer.sync()
        #expect(try fs.listDirectory(dir).sorted() == ["wal-0000000000000001.log", "wal-0000000000000029.log"])
        #expect(try #require(fs.contents(of: dir + "/wal-0000000000000001.log")).count > 512)
        #expect(try #require(fs.contents(of: dir + "/wal-0000000000000029.log")).count == 512)
        let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(LogTestSupport.bodies(of: result) == big + LogTestSupport.smallBodies(count: 1))
    }

    @Test("a failed write refuses every later append and sync with the original error", arguments: [ENOSPC, EIO])
    func failedWrite(errno code: Int32) throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 10)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs,
            segmentByteCount: 4096)
        try writer.append(Array(bodies[0..<4]))
        try writer.sync()
        fs.failWrite(1, errno: code)
        let failed = try #require(throws: WALIOError.self) { try writer.append(Array(bodies[4..<6])) }
        #expect(failed.errno == code)
        #expect(failed.operation == .write)
        #expect(failed.path == dir + "/wal-0000000000000001.log")
        #expect(failed.offset == writer.offset)
        #expect(writer.failure == failed)
        // The next write would succeed on the file system, but the writer refuses it.
        #expect(throws: failed) { try writer.append(Array(bodies[6..<7])) }
        #expect(throws: failed) { try writer.sync() }
        #expect(writer.nextLSN == 5)
        let result = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(LogTestSupport.bodies(of: result) == Array(bodies[0..<4]), "what was acknowledged survives")
    }

    @Test("a failed sync refuses every later append, and unsynced records may be lost but nothing synced is")
    func failedSync() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 6)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs,
            segmentByteCount: 4096)
        try writer.append(Array(bodies[0..<3]))
        try writer.sync()
        try writer.append(Array(bodies[3..<5]))
        fs.failSync(1, errno: EIO)
        let failed = try #require(throws: WALIOError.self) { try writer.sync() }
        #expect(failed.errno == EIO)
        #expect(throws: failed) { try writer.append(Array(bodies[5..<6])) }
        #expect(throws: failed) { try writer.sync() }
        let result = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(LogTestSupport.bodies(of: result) == Array(bodies[0..<3]))
    }

    @Test("a failure while rotating refuses later appends")
    func failedRotation() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 40)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs,
            segmentByteCount: 512)
        var one = ByteWriter()
        RecordCodec.appendCommit(LogTestSupport.smallCommit(0), lsn: 1, salt: 0, into: &one)
        var appended = 0
        var failure: WALIOError?
        // Fail the first write of a new segment (its header and zeros), found by appending until rotation.
        while failure == nil && appended < bodies.count {
            if writer.offset + one.count + 8 > writer.fileByteCount { fs.failWrite(1, errno: ENOSPC) }
            do {
                try writer.append([bodies[appended]])
                try writer.sync()
                appended += 1
            } catch {
                failure = error
            }
        }
        let error = try #require(failure)
        #expect(error.errno == ENOSPC)
        #expect(error.path.hasSuffix(".log.tmp"), "the failure was in creating the next segment: \(error)")
        #expect(throws: error) { try writer.append([bodies[appended]]) }
        let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(LogTestSupport.bodies(of: result) == Array(bodies[0..<appended]))
    }

    /// The bytes `body` takes in a segment.
    static func recordByteCount(_ body: WALRecord.Body) -> Int {
        var bytes = ByteWriter()
        guard case .commit(let commit) = body else { preconditionFailure("small bodies are commits") }
        RecordCodec.appendCommit(commit, lsn: 1, salt: 0, into: &bytes)
        return bytes.count
    }

    /// Waits until the segment prepared ahead has failed (a background thread makes it), at most 10 s.
    static func waitForSpareFailure(_ writer: SegmentWriter) throws -> WALIOError {
        var waited = 0
        while writer.spareFailure == nil && waited < 10_000 { usleep(1000); waited += 1 }
        return try #require(writer.spareFailure, "the preparation of the next segment should have failed")
    }

    @Test("on a full disk the segment prepared ahead fails, not the writes: records go on into the current segment, and writes stop with ENOSPC only when it is full")
    func fullDiskStopsWritesAtRotation() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 400)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs, segmentByteCount: 4096,
            preparesAhead: true)
        fs.setFreeByteCount(0)
        var appended = 0
        while writer.offset <= writer.fileByteCount / 2 {
            try writer.append([bodies[appended]])
            try writer.sync()
            appended += 1
        }
        let spareFailure = try Self.waitForSpareFailure(writer)
        #expect(spareFailure.errno == ENOSPC)
        #expect(writer.failure == nil, "a failed preparation stops nothing")

        var stopped: WALIOError?
        while stopped == nil && appended < bodies.count {
            do {
                try writer.append([bodies[appended]])
                try writer.sync()
                appended += 1
            } catch {
                stopped = error
            }
        }
        let error = try #require(stopped)
        #expect(error.errno == ENOSPC)
        #expect(error.path.hasSuffix(".log.tmp"), "writes stopped when the next segment could not be made: \(error)")
        #expect(error.dataDirectory == dir, "the failure names the data directory")
        #expect(writer.offset + Self.recordByteCount(bodies[appended]) > writer.fileByteCount, "the segment was full")
        #expect(writer.createdFileNames == ["wal-0000000000000001.log"])
        // One try per segment: on a full disk every retry would fill it again.
        #expect(fs.creationCount(ofPathsContaining: "wal-next-") == 1)
        let result = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(LogTestSupport.bodies(of: result) == Array(bodies[0..<appended]), "every synced record is there")
    }

    @Test("space freed after the prepared segment failed: the rotation makes the next segment itself and writes go on")
    func spaceFreedBeforeRotation() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 200)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs, segmentByteCount: 4096,
            preparesAhead: true)
        fs.setFreeByteCount(0)
        var appended = 0
        while writer.offset <= writer.fileByteCount / 2 {
            try writer.append([bodies[appended]])
            appended += 1
        }
        _ = try Self.waitForSpareFailure(writer)
        fs.setFreeByteCount(nil)
        while appended < bodies.count {
            try writer.append([bodies[appended]])
            try writer.sync()
            appended += 1
        }
        #expect(writer.createdFileNames.count >= 3, "rotations went on: \(writer.createdFileNames)")
        try writer.close()
        let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(LogTestSupport.bodies(of: result) == bodies)
    }

    @Test("a rotation waits for the segment being prepared instead of racing it for the last free space")
    func rotationWaitsForPreparation() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.smallBodies(count: 200)
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs, segmentByteCount: 4096,
            preparesAhead: true)
        // Room for one more segment, not two; the prepared one is caught after its zeros, before its sync.
        fs.setFreeByteCount(4096 + 1024)
        fs.holdSyncs(ofPathsContaining: "wal-next-")
        var appended = 0
        while writer.offset <= writer.fileByteCount / 2 {
            try writer.append([bodies[appended]])
            try writer.sync()
            appended += 1
        }
        var waited = 0
        while fs.freeByteCount != 1024 && waited < 10_000 { usleep(1000); waited += 1 }
        try #require(fs.freeByteCount == 1024, "the next segment's zeros should be written")
        // Let it finish a little later, while the rotation below waits for it.
        Thread.detachNewThread {
            usleep(100_000)
            fs.releaseSyncs()
        }
        while writer.createdFileNames.count < 2 {
            try writer.append([bodies[appended]])
            try writer.sync()
            appended += 1
        }
        #expect(writer.createdFileNames == ["wal-0000000000000001.log", SegmentHeader.fileName(firstLSN: writer.header.firstLSN)])
        #expect(fs.freeByteCount == 1024, "the rotation used the prepared file and made no other")
        #expect(fs.creationCount(ofPathsContaining: ".log.tmp") == 1, "the writer made only the first segment itself")
        try writer.close()
        let result = try LogRecovery.recover(directory: dir, fileSystem: fs)
        #expect(LogTestSupport.bodies(of: result) == Array(bodies[0..<appended]))
    }

    @Test("the writer refuses to create a segment over an existing one")
    func noOverwrite() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        try LogTestSupport.writeLog([LogTestSupport.smallBodies(count: 2)], directory: dir, fileSystem: fs)
        // A stale recovery result that says the directory is empty.
        let stale = LogRecovery.Result(
            records: [], segmentFileNames: [], temporaryFileNames: [], warnings: [], position: nil, nextLSN: 1)
        let error = #expect(throws: WALIOError.self) {
            _ = try SegmentWriter(directory: dir, recovery: stale, fileSystem: fs, segmentByteCount: 4096)
        }
        #expect(error?.errno == EEXIST)
        #expect(LogTestSupport.bodies(of: try LogRecovery.recover(directory: dir, fileSystem: fs)) == LogTestSupport.smallBodies(count: 2))
    }

    @Test("WALIOError names the operation, path, offset and strerror text")
    func errorDescription() {
        let e = WALIOError(operation: .write, path: "/data/wal-0000000000000001.log", offset: 4096, errno: ENOSPC)
        #expect(e.description == "write /data/wal-0000000000000001.log at offset 4096 failed: No space left on device (errno 28)")
    }
}
