// Recovery's decision table (FORMAT.md §5 rows 1–8): a torn tail at the end of the newest segment is
// cut at every possible truncation point, damage anywhere else refuses with the file, the offset and the
// repair command, and a writer continuing after a cut leaves a log that recovers whole.

import Foundation
import Glibc
import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct LogRecoveryTests {
    static let dir = LogTestSupport.simulatedDirectory
    static let firstSegment = dir + "/wal-0000000000000001.log"

    /// A simulated log of one segment holding `bodies` (synced), and the offsets where each record starts.
    static func log(_ bodies: [WALRecord.Body], segmentByteCount: Int = 1 << 16) throws -> (SimulatedFileSystem, [Int]) {
        let fs = LogTestSupport.simulatedFileSystem()
        let writer = try SegmentWriter(
            directory: dir, recovery: try LogRecovery.recover(directory: dir, fileSystem: fs), fileSystem: fs,
            segmentByteCount: segmentByteCount)
        var offsets: [Int] = []
        for body in bodies {
            offsets.append(writer.offset)
            try writer.append([body])
        }
        offsets.append(writer.offset)
        try writer.sync()
        try writer.close()
        return (fs, offsets)
    }

    @Test("row 1: a directory with no segment is a new log that starts at LSN 1")
    func emptyDirectory() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let result = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
        #expect(result.records.isEmpty && result.position == nil && result.nextLSN == 1)
    }

    @Test("rows 4 and 5: every truncation point of the last record is cut as a torn tail, earlier records intact")
    func everyTruncationPoint() throws {
        let bodies = LogTestSupport.bodies(count: 6, seed: RandomCommits.seed(default: 0x70_2E))
        let (original, offsets) = try Self.log(bodies)
        let bytes = try #require(original.contents(of: Self.firstSegment))
        let lastStart = offsets[offsets.count - 2]
        let lastEnd = offsets[offsets.count - 1]
        let kept = Array(bodies.dropLast())
        for cut in lastStart..<lastEnd {
            // Two shapes of a torn write: the rest of the record still the preallocated zeros, or the
            // file itself ending there (a segment written by something that did not preallocate).
            for preallocated in [true, false] {
                var torn = Array(bytes[..<cut])
                if preallocated { torn += [UInt8](repeating: 0, count: bytes.count - cut) }
                let fs = LogTestSupport.simulatedFileSystem()
                fs.setContents(of: Self.firstSegment, to: torn)
                let context = "cut at \(cut), preallocated \(preallocated)"
                let result = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
                // When the bytes not written are zeros anyway (a payload ending in 0x00), the preallocated
                // file is byte for byte the whole record: nothing was lost, and it is kept.
                if preallocated && bytes[cut..<lastEnd].allSatisfy({ $0 == 0 }) {
                    #expect(LogTestSupport.bodies(of: result) == bodies && result.warnings.isEmpty, "\(context)")
                    continue
                }
                #expect(LogTestSupport.bodies(of: result) == kept, "\(context)")
                let position = try #require(result.position)
                #expect(position.offset == lastStart && position.nextLSN == UInt64(bodies.count), "\(context)")
                let nonZeroTail = bytes[lastStart..<cut].contains { $0 != 0 }
                #expect(result.warnings.count == (nonZeroTail ? 1 : 0), "\(context)")
                if let warning = result.warnings.first {
                    #expect(warning.fileName == "wal-0000000000000001.log" && warning.offset == lastStart, "\(context)")
                    #expect(warning.description.contains("wal-0000000000000001.log offset \(lastStart)"))
                    #expect(warning.byteCount == position.dirtyByteCount && warning.byteCount <= cut - lastStart)
                }
                // A writer continuing there overwrites the torn bytes, and the log recovers whole.
                let writer = try SegmentWriter(directory: Self.dir, recovery: result, fileSystem: fs, segmentByteCount: 1 << 16)
                let more = LogTestSupport.smallBodies(count: 1)
                try writer.append(more)
                try writer.sync()
                let again = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
                #expect(LogTestSupport.bodies(of: again) == kept + more, "\(context)")
                #expect(again.warnings.isEmpty, "\(context)")
                // The new record went after the cut, or (the file too short for it) into a new segment.
                let after = try #require(fs.contents(of: Self.firstSegment))
                let newEnd = writer.fileName == "wal-0000000000000001.log" ? writer.offset : lastStart
                #expect(after[newEnd..<max(newEnd, cut)].allSatisfy { $0 == 0 }, "the torn bytes are zeroed: \(context)")
            }
        }
    }

    @Test("row 8: a flipped byte in any record but the last is an error naming the file, offset and repair command")
    func flippedByteInTheMiddle() throws {
        let bodies = LogTestSupport.bodies(count: 8, seed: RandomCommits.seed(default: 0xF11B))
        let (original, offsets) = try Self.log(bodies)
        let bytes = try #require(original.contents(of: Self.firstSegment))
        for index in 0..<bodies.count - 1 {
            // A byte of the header (the LSN) and a byte of the payload.
            let payloadMiddle: Int = (offsets[index] + 24 + offsets[index + 1]) / 2
            let positions: [Int] = [offsets[index] + 9, payloadMiddle]
            for position in positions {
                var damaged = bytes
                damaged[position] ^= 0x40
                let fs = LogTestSupport.simulatedFileSystem()
                fs.setContents(of: Self.firstSegment, to: damaged)
                let d = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs), "record \(index), byte \(position)")
                #expect(d.row == 8 && d.fileName == "wal-0000000000000001.log" && d.offset == offsets[index])
                #expect(d.lastLSN == UInt64(index))
                #expect(d.description.contains("wal-0000000000000001.log offset \(offsets[index])"))
                #expect(d.description.contains("stockpile wal repair \(Self.dir)"))
            }
        }
        // The same flip in the last record is a torn tail (row 5): indistinguishable, and cut with a warning.
        var damaged = bytes
        damaged[offsets[bodies.count - 1] + 30] ^= 0x40
        let fs = LogTestSupport.simulatedFileSystem()
        fs.setContents(of: Self.firstSegment, to: damaged)
        let result = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
        #expect(result.warnings.map(\.offset) == [offsets[bodies.count - 1]])
        #expect(LogTestSupport.bodies(of: result) == Array(bodies.dropLast()))
    }

    /// A log over several segments on the simulated file system.
    static func rotatedLog() throws -> (SimulatedFileSystem, [String], [WALRecord.Body]) {
        let fs = LogTestSupport.simulatedFileSystem()
        let bodies = LogTestSupport.smallBodies(count: 60)
        let writer = try LogTestSupport.writeLog(
            stride(from: 0, to: 60, by: 3).map { Array(bodies[$0..<$0 + 3]) }, directory: dir, fileSystem: fs,
            segmentByteCount: 512)
        #expect(writer.createdFileNames.count >= 3)
        return (fs, writer.createdFileNames, bodies)
    }

    @Test("rows 6 and 8: damage in an older segment is an error naming that file and offset")
    func damageInOlderSegment() throws {
        let (fs, names, _) = try Self.rotatedLog()
        let path = Self.dir + "/" + names[0]
        let bytes = try #require(fs.contents(of: path))
        let header = try SegmentHeader.decode(bytes)
        var offsets: [Int] = []
        var offset = SegmentHeader.byteCount
        while case .valid(let r) = RecordCodec.decodeRecord(bytes, at: offset, salt: header.salt, expectedLSN: nil) {
            offsets.append(offset)
            offset = r.endOffset
        }
        // The last record of the older segment: would be a torn tail in the newest (row 6).
        var damaged = bytes
        damaged[offsets.last! + 26] ^= 1
        fs.setContents(of: path, to: damaged)
        let last = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs))
        #expect(last.row == 6 && last.fileName == names[0] && last.offset == offsets.last!)
        #expect(last.description.contains("\(names[0]) offset \(offsets.last!)") && last.description.contains("stockpile wal repair"))
        // A middle record of it (row 8).
        damaged = bytes
        damaged[offsets[1] + 26] ^= 1
        fs.setContents(of: path, to: damaged)
        let middle = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs))
        #expect(middle.row == 8 && middle.fileName == names[0] && middle.offset == offsets[1])
        // A torn tail in the newest segment, by contrast, is cut.
        fs.setContents(of: path, to: bytes)
        let newest = Self.dir + "/" + names.last!
        var newestBytes = try #require(fs.contents(of: newest))
        let newestHeader = try SegmentHeader.decode(newestBytes)
        guard case .valid(let first) = RecordCodec.decodeRecord(newestBytes, at: 40, salt: newestHeader.salt, expectedLSN: nil) else {
            Issue.record("no record in the newest segment")
            return
        }
        newestBytes[first.endOffset...].withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        newestBytes[first.endOffset - 3] ^= 0xFF
        fs.setContents(of: newest, to: newestBytes)
        let result = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
        #expect(result.warnings.map(\.fileName) == [names.last!])
        #expect(result.nextLSN == newestHeader.firstLSN)
    }

    @Test("row 2: a segment whose header is not valid, or names another LSN, is refused")
    func invalidHeader() throws {
        let (fs, names, _) = try Self.rotatedLog()
        let path = Self.dir + "/" + names[1]
        let bytes = try #require(fs.contents(of: path))
        var damaged = bytes
        damaged[13] ^= 1  // the salt: a CRC mismatch
        fs.setContents(of: path, to: damaged)
        let d = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs))
        #expect(d.row == 2 && d.fileName == names[1] && d.offset == 0)
        fs.setContents(of: path, to: bytes)
        try fs.rename(Self.dir + "/" + names.last!, to: Self.dir + "/wal-00000000000000ff.log")
        let renamed = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs))
        #expect(renamed.row == 2 && renamed.fileName == "wal-00000000000000ff.log")
    }

    @Test("row 3: a missing segment in the middle is a gap naming both files")
    func gap() throws {
        let (fs, names, _) = try Self.rotatedLog()
        try fs.unlink(Self.dir + "/" + names[1])
        let d = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs))
        #expect(d.row == 3 && d.fileName == names[2])
        #expect(d.description.contains(names[0]) && d.description.contains(names[2]))
    }

    @Test("row 7: a record whose CRC matches but whose salt is another segment's, or whose payload does not decode")
    func foreignRecord() throws {
        let bodies = LogTestSupport.smallBodies(count: 3)
        let (original, offsets) = try Self.log(bodies)
        let bytes = try #require(original.contents(of: Self.firstSegment))
        let salt = try SegmentHeader.decode(bytes).salt
        for (name, frame) in [
            ("salt", { (w: inout ByteWriter) in RecordCodec.appendCommit(Commit.sampleForRecovery, lsn: 4, salt: salt ^ 1, into: &w) }),
            ("payload", { (w: inout ByteWriter) in RecordCodec.encodeRecord(lsn: 4, type: .commit, salt: salt, payload: [0xFF], into: &w) }),
        ] {
            var w = ByteWriter()
            frame(&w)
            var damaged = bytes
            damaged.replaceSubrange(offsets[3]..<offsets[3] + w.count, with: w.bytes)
            let fs = LogTestSupport.simulatedFileSystem()
            fs.setContents(of: Self.firstSegment, to: damaged)
            let d = try #require(LogTestSupport.damage(directory: Self.dir, fileSystem: fs), "\(name)")
            #expect(d.row == 7 && d.offset == offsets[3] && d.lastLSN == 3, "\(name)")
        }
    }

    @Test("a file's contents, read by the system's file system or the simulated one, are its bytes")
    func fileContents() throws {
        try LogTestSupport.withTemporaryDirectory { dir in
            let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for fs in [SystemFileSystem() as any FileSystem, LogTestSupport.simulatedFileSystem()] {
                let base = fs is SimulatedFileSystem ? LogTestSupport.simulatedDirectory : dir
                for (name, content) in [("empty", [UInt8]()), ("full", bytes)] {
                    let file = try fs.open(base + "/" + name, mode: .createNew)
                    if !content.isEmpty { try fs.write(file, content, at: 0) }
                    let contents = try fs.contents(of: file)
                    #expect(Array(contents.bytes) == content, "\(type(of: fs)) \(name)")
                    try fs.close(file)
                }
            }
        }
    }

    @Test("a writer continuing after a cut on a real directory leaves a log that recovers whole")
    func continueOnDisk() throws {
        try LogTestSupport.withTemporaryDirectory { dir in
            let fs = SystemFileSystem()
            let bodies = LogTestSupport.bodies(count: 30, seed: 0xC0_471)
            try LogTestSupport.writeLog([Array(bodies[0..<20])], directory: dir, fileSystem: fs, segmentByteCount: 1 << 20)
            // Plant a torn record: the first 100 bytes of a large record at the end of the log.
            let before = try LogRecovery.recover(directory: dir, fileSystem: fs)
            let position = try #require(before.position)
            var w = ByteWriter()
            RecordCodec.appendCommit(CommitSamples.commits[10], lsn: 21, salt: position.header.salt, into: &w)
            let file = try fs.open(dir + "/" + position.fileName, mode: .readWrite)
            try fs.write(file, Array(w.bytes.prefix(100)), at: position.offset)
            try fs.close(file)

            let cut = try LogRecovery.recover(directory: dir, fileSystem: fs)
            #expect(cut.warnings.map(\.offset) == [position.offset])
            #expect(cut.warnings.first?.byteCount == 100)
            let writer = try SegmentWriter(directory: dir, recovery: cut, fileSystem: fs, segmentByteCount: 1 << 20)
            try writer.append(Array(bodies[20..<25]))
            try writer.sync()
            try writer.close()
            let whole = try LogRecovery.recover(directory: dir, fileSystem: fs)
            #expect(LogTestSupport.bodies(of: whole) == Array(bodies[0..<25]))
            #expect(whole.warnings.isEmpty)
        }
    }
}

extension Commit {
    static var sampleForRecovery: Commit { CommitSamples.commits[0] }
}
