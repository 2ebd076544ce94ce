// The golden files of wal/golden (wal/FORMAT.md §6): segments written once and kept, so that a change
// to the format or the codec that would make old data directories unreadable fails here. wal/golden/v1
// and wal/golden/v2 keep the older versions' files, which the current reader must still decode. One test
// decodes each file and compares it with the records built in the tests; another requires today's
// encoder to produce the same bytes, and rewrites the files only when STOCKPILE_WRITE_GOLDEN=1.

import Foundation
import StockpileCore
import Testing
@testable import StockpileWAL

// Serialized so that, when STOCKPILE_WRITE_GOLDEN=1 rewrites the files, the decoding tests read the new ones.
@Suite(.serialized) struct GoldenFileTests {
    /// wal/golden, found from this file's path: Tests/StockpileWALTests/GoldenFileTests.swift.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("wal").appendingPathComponent("golden")

    static let names = [
        "segment-every-record.bin", "segment-empty.bin", "segment-torn-tail.bin", "segment-torn-tail-preallocated.bin",
        "snapshot.bin",
    ]

    static var everyRecord: [TestSegments.Item] {
        CommitSamples.commits.map { .commit($0) } + CommitSamples.keyUses.map { .keyUse($0) }
    }

    /// The two whole records of the torn-tail files, and the record that was being written when the tail tore.
    static let tornWhole: [TestSegments.Item] = [.commit(CommitSamples.commits[4]), .commit(CommitSamples.commits[24])]
    static let tornRecord: TestSegments.Item = .keyUse(CommitSamples.keyUses[0])

    /// What each file holds, as the encoder writes it today.
    static func encoded(_ name: String) -> [UInt8] {
        switch name {
        case "segment-every-record.bin":
            return TestSegments.segment(firstLSN: 1, items: everyRecord, zeros: 64)
        case "segment-empty.bin":
            return TestSegments.segment(firstLSN: 1, items: [])
        case "segment-torn-tail.bin":
            let whole = TestSegments.segment(firstLSN: 100, items: tornWhole + [tornRecord])
            let third = TestSegments.segment(firstLSN: 100, items: tornWhole)
            // The file ends 30 bytes into the third record: its header and a few payload bytes.
            return Array(whole[0..<third.count + 30])
        case "segment-torn-tail-preallocated.bin":
            var bytes = TestSegments.segment(firstLSN: 100, items: tornWhole + [tornRecord], zeros: 32)
            let thirdOffset = TestSegments.segment(firstLSN: 100, items: tornWhole).count
            // Header and 10 payload bytes reached the disk; the rest of the record is still preallocated zeros.
            let unwritten = thirdOffset + WALRecord.headerByteCount + 10..<bytes.count
            bytes.replaceSubrange(unwritten, with: repeatElement(0, count: unwritten.count))
            return bytes
        case "snapshot.bin":
            return SnapshotCodec.encode(SnapshotSamples.contents)
        default:
            preconditionFailure("no golden file \(name)")
        }
    }

    static func read(_ name: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else { return nil }
        return [UInt8](data)
    }

    @Test("golden files are what the encoder writes today (STOCKPILE_WRITE_GOLDEN=1 rewrites them)", arguments: names)
    func encoderMatchesGoldenFile(name: String) throws {
        let bytes = Self.encoded(name)
        if ProcessInfo.processInfo.environment["STOCKPILE_WRITE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: Self.directory.appendingPathComponent(name), options: .atomic)
            return
        }
        guard let golden = Self.read(name) else {
            Issue.record("wal/golden/\(name) is missing; write it with STOCKPILE_WRITE_GOLDEN=1 swift test --filter Golden")
            return
        }
        let firstDifference = zip(golden, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(golden == bytes, "the encoder no longer writes wal/golden/\(name): first difference at byte \(firstDifference ?? min(golden.count, bytes.count))")
    }

    @Test("the every-record segment decodes to every sample commit and key use, then preallocated zeros")
    func everyRecordSegment() throws {
        let bytes = try #require(Self.read("segment-every-record.bin"))
        let scan = try TestSegments.scan(bytes)
        #expect(scan.header == SegmentHeader(salt: 0x5A17_5EED, firstLSN: 1, createdAt: Timestamp(milliseconds: 1_700_000_000_000)))
        #expect(scan.bodies == Self.everyRecord.map(\.body))
        #expect(scan.records.map(\.lsn) == Array(1...UInt64(Self.everyRecord.count)))
        // The version 3 samples are new one-line reservations: `reservation` records; every other
        // commit is not one, and keeps the generic record.
        let generic = CommitSamples.commits.count - CommitSamples.version3Commits.count
        #expect(scan.records.map(\.type) == Array(repeating: .commit, count: generic) + Array(repeating: .reservation, count: CommitSamples.version3Commits.count)
            + Array(repeating: .keyUse, count: CommitSamples.keyUses.count))
        #expect(scan.end == .zero)
        #expect(scan.endOffset == bytes.count - 64)
        #expect(scan.payloadError == nil)
    }

    @Test("the empty segment is a header and nothing else")
    func emptySegment() throws {
        let bytes = try #require(Self.read("segment-empty.bin"))
        #expect(bytes.count == 40)
        let scan = try TestSegments.scan(bytes)
        #expect(scan.header.firstLSN == 1)
        #expect(scan.records.isEmpty)
        #expect(scan.end == .zero)
        #expect(scan.endOffset == 40)
    }

    @Test("the torn segment gives its two whole records, then torn where the file ends inside the third")
    func tornTail() throws {
        let bytes = try #require(Self.read("segment-torn-tail.bin"))
        let scan = try TestSegments.scan(bytes)
        #expect(scan.header.firstLSN == 100)
        #expect(scan.bodies == Self.tornWhole.map(\.body))
        #expect(scan.records.map(\.lsn) == [100, 101])
        #expect(scan.end == .torn)
        #expect(scan.endOffset == bytes.count - 30)
        #expect(!TestSegments.anyValidRecord(in: bytes, after: scan.endOffset, salt: scan.header.salt))
    }

    @Test("the torn preallocated segment ends in a CRC mismatch with nothing valid after it: a tail to cut")
    func tornTailPreallocated() throws {
        let bytes = try #require(Self.read("segment-torn-tail-preallocated.bin"))
        let scan = try TestSegments.scan(bytes)
        #expect(scan.bodies == Self.tornWhole.map(\.body))
        #expect(scan.records.map(\.lsn) == [100, 101])
        guard case .corrupt(let damage) = scan.end, case .checksumMismatch = damage else {
            Issue.record("expected a checksum mismatch, got \(scan.end)")
            return
        }
        #expect(damage.couldBeTornWrite)
        #expect(!TestSegments.anyValidRecord(in: bytes, after: scan.endOffset, salt: scan.header.salt))
        // What reached the disk: the header of LSN 102 and 10 bytes of its payload, then zeros to the end.
        let tail = bytes[(scan.endOffset + WALRecord.headerByteCount + 10)...]
        #expect(tail.count > 32 && tail.allSatisfy { $0 == 0 })
        let lsn = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: scan.endOffset + 8, as: UInt64.self)) }
        #expect(lsn == 102)
    }

    @Test("the golden snapshot decodes to the sample state")
    func snapshot() throws {
        let bytes = try #require(Self.read("snapshot.bin"))
        #expect(try SnapshotCodec.decode(bytes, fileName: "snapshot.bin", expectedLSN: 1_234) == SnapshotSamples.sorted)
    }

    // Version 1 files, written by the version 1 encoder and never rewritten: a data directory from
    // before version 2 must still start (every version 1 file is a valid version 2 file).

    @Test("a version 1 segment still decodes to the version 1 samples")
    func version1Segment() throws {
        let bytes = try #require(Self.read("v1/segment-every-record.bin"))
        let scan = try TestSegments.scan(bytes)
        let items = CommitSamples.commits.prefix(CommitSamples.version1CommitCount).map { TestSegments.Item.commit($0) }
            + CommitSamples.keyUses.prefix(CommitSamples.version1KeyUseCount).map { TestSegments.Item.keyUse($0) }
        #expect(bytes[8] == 1, "the file is a version 1 segment")
        #expect(scan.bodies == items.map(\.body))
        #expect(scan.end == .zero)
        #expect(scan.payloadError == nil)
    }

    @Test("a version 1 snapshot still decodes to the version 1 sample state")
    func version1Snapshot() throws {
        let bytes = try #require(Self.read("v1/snapshot.bin"))
        #expect(bytes[8] == 1, "the file is a version 1 snapshot")
        #expect(try SnapshotCodec.decode(bytes, fileName: "snapshot.bin", expectedLSN: 1_234) == SnapshotSamples.version1Sorted)
    }

    // Version 2 files: every version 2 file is a valid version 3 file.

    @Test("a version 2 snapshot still decodes to the version 2 sample state")
    func version2Snapshot() throws {
        let bytes = try #require(Self.read("v2/snapshot.bin"))
        #expect(bytes[8] == 2, "the file is a version 2 snapshot")
        #expect(try SnapshotCodec.decode(bytes, fileName: "snapshot.bin", expectedLSN: 1_234) == SnapshotSamples.version2Sorted)
    }

    @Test("a version 2 segment still decodes to the version 2 samples")
    func version2Segment() throws {
        let bytes = try #require(Self.read("v2/segment-every-record.bin"))
        let scan = try TestSegments.scan(bytes)
        let items = CommitSamples.commits.dropLast(CommitSamples.version3Commits.count).map { TestSegments.Item.commit($0) }
            + CommitSamples.keyUses.map { TestSegments.Item.keyUse($0) }
        #expect(bytes[8] == 2, "the file is a version 2 segment")
        #expect(scan.bodies == items.map(\.body))
        #expect(scan.records.allSatisfy { $0.type != .reservation })
        #expect(scan.end == .zero)
        #expect(scan.payloadError == nil)
    }

    @Test("version 3 segments and version 3 snapshots are what is written, and a version after either is refused")
    func versions() throws {
        #expect(try #require(Self.read("segment-every-record.bin"))[8] == 3)
        #expect(try #require(Self.read("snapshot.bin"))[8] == 3)
        var segment = try #require(Self.read("segment-every-record.bin"))
        segment[8] = 4
        #expect(throws: SegmentHeaderDamage.unsupportedVersion(4)) { try SegmentHeader.decode(segment) }
        var bytes = try #require(Self.read("snapshot.bin"))
        bytes[8] = 4
        #expect(throws: SnapshotDamage.self) { try SnapshotCodec.decode(bytes, fileName: "snapshot.bin", expectedLSN: 1_234) }
    }
}
