// Reading records back by LSN (`LogRecordReader`), as a KEY's retry does: every record of a log of
// several segments reads back as written, in any order (so walks start from checkpoints noted by
// earlier ones, in segments walked in part); an LSN past the end or before the first kept segment is
// missing; a damaged record is reported, not decoded. Seeded (STOCKPILE_SEED).

import Foundation
import StockpileCore
import Testing

@testable import StockpileWAL

@Suite("Reading a record back by its LSN")
struct LogRecordReaderTests {
    @Test("every record of a log of several segments reads back as written, in random order")
    func readsBackAsWritten() throws {
        let seed = RandomCommits.seed(default: 7070)
        var rng = SplitMix64(seed: seed)
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        // Batches of mixed sizes over segments of 64 KiB: a few thousand records, many segments,
        // more than `checkpointEvery` records in some.
        let bodies = LogTestSupport.bodies(count: 1_500, seed: seed) + LogTestSupport.smallBodies(count: 1_500)
        var batches: [[WALRecord.Body]] = []
        var i = 0
        while i < bodies.count {
            let n = min(bodies.count - i, 1 + Int(rng.next() % 40))
            batches.append(Array(bodies[i..<i + n]))
            i += n
        }
        try LogTestSupport.writeLog(batches, directory: dir, fileSystem: fs, segmentByteCount: 64 << 10)
        let segmentCount = try fs.listDirectory(dir).filter { SegmentHeader.firstLSN(fromFileName: $0) != nil }.count
        #expect(segmentCount > 3, "the log should span several segments (seed \(seed))")

        let reader = LogRecordReader(directory: dir, fileSystem: fs)
        var order = Array(1...UInt64(bodies.count))
        order.shuffle(using: &rng)
        // A new one-line reservation without a KEY is written as a `reservation` record, which needs
        // its segment's names: it is refused, never misread.
        func check(_ lsn: UInt64) {
            let written = bodies[Int(lsn) - 1]
            let read = Result { () throws(LogReadError) in try reader.body(at: lsn) }
            switch read {
            case .success(let body):
                #expect(body == written, "record \(lsn) (seed \(seed))")
            case .failure(let error):
                guard case .notStandalone(let refused) = error, case .commit(let c) = written else {
                    Issue.record("record \(lsn): \(error) (seed \(seed))")
                    return
                }
                #expect(refused == lsn && c.keyedCommand == nil && c.reservation?.lines.count == 1, "record \(lsn) (seed \(seed))")
            }
        }
        for lsn in order { check(lsn) }
        // Read again, now from checkpoints noted on the first reads.
        for lsn in order.prefix(300) { check(lsn) }
        #expect(throws: LogReadError.missing(lsn: UInt64(bodies.count) + 1)) { try reader.body(at: UInt64(bodies.count) + 1) }
    }

    @Test("a record whose bytes changed is reported damaged, and one in a removed segment missing")
    func damagedAndMissing() throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let bodies = LogTestSupport.bodies(count: 400, seed: 11)
        try LogTestSupport.writeLog(stride(from: 0, to: 400, by: 20).map { Array(bodies[$0..<$0 + 20]) }, directory: dir, fileSystem: fs, segmentByteCount: 64 << 10)
        let names = try fs.listDirectory(dir).filter { SegmentHeader.firstLSN(fromFileName: $0) != nil }.sorted()
        #expect(names.count >= 2)
        let reader = LogRecordReader(directory: dir, fileSystem: fs)

        // Flip a byte inside the payload of the second segment's first record.
        let second = dir + "/" + names[1]
        let firstOfSecond = SegmentHeader.firstLSN(fromFileName: names[1])!
        var bytes = try #require(fs.contents(of: second))
        bytes[SegmentHeader.byteCount + WALRecord.headerByteCount + 2] ^= 0xFF
        fs.setContents(of: second, to: bytes)
        do {
            _ = try reader.body(at: firstOfSecond)
            Issue.record("a damaged record was decoded")
        } catch {
            guard case .damaged(let lsn, let name, _, _) = error else { Issue.record("\(error)"); return }
            #expect(lsn == firstOfSecond && name == names[1])
        }
        // The record after it is still read: the walk checks headers only.
        #expect(try reader.body(at: firstOfSecond + 1) == bodies[Int(firstOfSecond)])

        // The first segment removed: its records are missing.
        try fs.unlink(dir + "/" + names[0])
        #expect(throws: LogReadError.missing(lsn: 1)) { try reader.body(at: 1) }
    }
}
