// `stockpile wal verify|dump|repair` as an operator runs them: the executable, started as a child
// process on a data directory whose log was written by a durable engine and then damaged on purpose
// (a byte changed in the middle of the log, or the last record torn). Each command's exit status and
// the lines an operator acts on are checked, and so is what repair leaves on disk: a backup of what it
// changed, a log start-up accepts, and nothing at all changed without --yes.

import Foundation
import Stockpile
import StockpileWAL
import Testing

@Suite("stockpile wal")
struct WalToolTests {
    static let segmentName = "wal-0000000000000001.log"
    static let recordCount = 8

    /// A directory holding a data directory `data` (repair puts its backup next to it, inside this one).
    struct Workspace {
        let root: String
        var data: String { root + "/data" }
        var segment: String { data + "/" + WalToolTests.segmentName }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-wal-tool-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }

        /// Every file under the workspace and its bytes, by path relative to the root.
        func files() throws -> [String: [UInt8]] {
            var files: [String: [UInt8]] = [:]
            let enumerator = try #require(FileManager.default.enumerator(atPath: root))
            while let relative = enumerator.nextObject() as? String {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
                files[relative] = try #require(FileManager.default.contents(atPath: root + "/" + relative)).map { $0 }
            }
            return files
        }
    }

    /// Writes `recordCount` commits through a durable engine (one segment of 64 KiB), then a snapshot
    /// when asked, and returns where each record starts and ends in the segment, read back with the
    /// record codec.
    static func writeLog(in workspace: Workspace, snapshot: Bool = false) async throws -> [Range<Int>] {
        let engine = try Engine.open(dataDirectory: workspace.data, durability: .always, segmentByteCount: 1 << 16, warn: { _ in })
        for i in 0..<recordCount {
            let receipt = await engine.adjust(variant: "SKU-\(i)", warehouse: "MAIN", by: Quantity(Int64(10 + i)), reason: .received)
            guard case .ok = receipt else { throw WALIOError(operation: .write, path: workspace.data, errno: EIO) }
        }
        if snapshot { #expect(try await engine.writeSnapshot().lsn == UInt64(recordCount)) }
        try engine.close()
        let bytes = try #require(FileManager.default.contents(atPath: workspace.segment)).map { $0 }
        let salt = try SegmentHeader.decode(bytes).salt
        var records: [Range<Int>] = []
        var offset = SegmentHeader.byteCount
        while case .valid(let record) = RecordCodec.decodeRecord(bytes, at: offset, salt: salt, expectedLSN: UInt64(records.count + 1)) {
            records.append(offset..<record.endOffset)
            offset = record.endOffset
        }
        #expect(records.count == recordCount, "the log holds one record per adjustment")
        return records
    }

    /// Replaces the bytes of `path` in `range` by `transform` of them.
    static func modify(_ path: String, _ range: Range<Int>, _ transform: (UInt8) -> UInt8) throws {
        var bytes = try #require(FileManager.default.contents(atPath: path)).map { $0 }
        for i in range { bytes[i] = transform(bytes[i]) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try ChildProcess.run(path: try ServeProcess.executable.path, arguments: arguments)
    }

    /// The backup directories repair made next to the data directory.
    static func backups(in workspace: Workspace) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: workspace.root).filter { $0.hasPrefix("data.backup-") }.sorted()
    }

    @Test("damage in the middle of the log: verify and dump name the file, the offset and the repair; repair without --yes changes nothing; with --yes it backs up, cuts, and the log verifies")
    func damageInTheMiddle() async throws {
        let workspace = try Workspace()
        defer { workspace.remove() }
        let records = try await Self.writeLog(in: workspace)
        // A byte inside the payload of the third record: its checksum fails, and valid records follow it.
        let damaged = records[2]
        try Self.modify(workspace.segment, (damaged.lowerBound + 20)..<(damaged.lowerBound + 21)) { $0 ^ 0x40 }
        let where_ = "\(Self.segmentName) offset \(damaged.lowerBound)"

        let verify = try Self.run(["wal", "verify", workspace.data])
        #expect(verify.status == 1, "\(verify)")
        #expect(verify.output.contains("the log is damaged at \(where_)"), "\(verify.output)")
        #expect(verify.output.contains("stockpile wal repair \(workspace.data)"), "the repair command is named: \(verify.output)")
        #expect(verify.output.contains("read before the damage: 2 record(s), LSN 1–2"), "\(verify.output)")

        let dump = try Self.run(["wal", "dump", workspace.data])
        #expect(dump.status == 1, "\(dump)")
        let lines = dump.output.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("lsn ") }.count == 2, "one line per record before the damage: \(dump.output)")
        #expect(lines.first?.hasPrefix("lsn 1  commit") == true && lines.first?.contains("SKU-0/MAIN Δon_hand 10") == true, "\(dump.output)")
        #expect(dump.output.contains("the log is damaged at \(where_)"), "\(dump.output)")

        let before = try workspace.files()
        let dryRun = try Self.run(["wal", "repair", workspace.data])
        #expect(dryRun.status == 1, "\(dryRun)")
        #expect(dryRun.output.contains("damaged: \(where_)"), "\(dryRun.output)")
        #expect(dryRun.output.contains("cut \(Self.segmentName) at offset \(damaged.lowerBound)"), "\(dryRun.output)")
        #expect(dryRun.output.contains("the log will end at LSN 2"), "\(dryRun.output)")
        #expect(dryRun.output.contains("run again with --yes"), "\(dryRun.output)")
        #expect(try workspace.files() == before, "repair without --yes changes no byte and makes no backup")

        let repair = try Self.run(["wal", "repair", workspace.data, "--yes"])
        #expect(repair.status == 0, "\(repair)")
        let backups = try Self.backups(in: workspace)
        try #require(backups.count == 1, "one backup directory: \(backups)")
        let backup = backups[0]
        #expect(backup.range(of: #"^data\.backup-\d{4}-\d{2}-\d{2}T\d{6}Z$"#, options: .regularExpression) != nil, "named by UTC time: \(backup)")
        #expect(repair.output.contains("backup \(workspace.root)/\(backup)/\(Self.segmentName)"), "\(repair.output)")
        let after = try workspace.files()
        #expect(after["\(backup)/\(Self.segmentName)"] == before["data/\(Self.segmentName)"], "the backup is the segment as it was before the cut")
        let cut = try #require(after["data/\(Self.segmentName)"])
        let original = try #require(before["data/\(Self.segmentName)"])
        #expect(cut.count == original.count, "a segment keeps its size")
        #expect(cut[..<damaged.lowerBound] == original[..<damaged.lowerBound], "the records before the damage are kept as they were")
        #expect(cut[damaged.lowerBound...].allSatisfy { $0 == 0 }, "zeros from the cut on")
        #expect(repair.output.contains("ok: 2 record(s) in 1 segment(s), LSN 1–2"), "repair ends with the verdict of verify: \(repair.output)")

        let verified = try Self.run(["wal", "verify", workspace.data])
        #expect(verified.status == 0, "\(verified)")
        #expect(verified.output.contains("ok: 2 record(s)"), "\(verified.output)")
        // The repaired directory starts, with the two records before the cut.
        let engine = try Engine.open(dataDirectory: workspace.data, durability: .always, segmentByteCount: 1 << 16, warn: { _ in })
        #expect(await engine.cell(variant: "SKU-1", warehouse: "MAIN").value?.onHand == Quantity(11))
        #expect(await engine.cell(variant: "SKU-2", warehouse: "MAIN").value?.onHand == Quantity(0))
        try engine.close()
    }

    @Test("a torn last record: verify accepts the log and warns of the cut start-up makes; repair has nothing to do and changes nothing")
    func tornTail() async throws {
        let workspace = try Workspace()
        defer { workspace.remove() }
        let records = try await Self.writeLog(in: workspace)
        // The second half of the last record never reached the disk.
        let last = try #require(records.last)
        try Self.modify(workspace.segment, (last.lowerBound + last.count / 2)..<last.upperBound) { _ in 0 }

        let verify = try Self.run(["wal", "verify", workspace.data])
        #expect(verify.status == 0, "\(verify)")
        #expect(verify.output.contains("cut a torn record at the end of the log: \(Self.segmentName) offset \(last.lowerBound)"), "\(verify.output)")
        #expect(verify.output.contains("ok: \(Self.recordCount - 1) record(s) in 1 segment(s), LSN 1–\(Self.recordCount - 1)"), "\(verify.output)")

        let dump = try Self.run(["wal", "dump", workspace.data])
        #expect(dump.status == 0, "\(dump)")
        #expect(dump.output.split(separator: "\n").filter { $0.hasPrefix("lsn ") }.count == Self.recordCount - 1, "\(dump.output)")

        let before = try workspace.files()
        for arguments in [["wal", "repair", workspace.data], ["wal", "repair", workspace.data, "--yes"]] {
            let repair = try Self.run(arguments)
            #expect(repair.status == 0, "\(arguments): \(repair)")
            #expect(repair.output.contains("nothing to cut"), "\(repair.output)")
            #expect(repair.output.contains("ok: \(Self.recordCount - 1) record(s)"), "\(repair.output)")
        }
        #expect(try workspace.files() == before, "a torn tail is start-up's to cut: repair changes no byte and makes no backup")
    }

    @Test("a snapshot past the end of the log: repair cuts nothing and says start-up refuses, instead of promising a start")
    func logEndsBeforeSnapshot() async throws {
        let workspace = try Workspace()
        defer { workspace.remove() }
        let records = try await Self.writeLog(in: workspace, snapshot: true)
        // The last record gone as if its file had been lost: the log ends cleanly one record before the
        // snapshot's LSN (FORMAT.md §5 row 11).
        let last = try #require(records.last)
        try Self.modify(workspace.segment, last) { _ in 0 }

        let verify = try Self.run(["wal", "verify", workspace.data])
        #expect(verify.status == 1, "\(verify)")
        #expect(verify.output.contains("the log ends at LSN \(Self.recordCount - 1), before the snapshot's LSN \(Self.recordCount)"), "\(verify.output)")
        let before = try workspace.files()
        let repair = try Self.run(["wal", "repair", workspace.data, "--yes"])
        #expect(repair.status == 1, "start-up still refuses this directory: \(repair)")
        #expect(!repair.output.contains("start-up accepts"), "\(repair.output)")
        #expect(repair.output.contains("nothing to cut") && repair.output.contains("before the snapshot's LSN"), "\(repair.output)")
        #expect(try workspace.files() == before)
    }

    @Test("wal refuses a missing directory and unknown arguments, and repair refuses while a server holds the directory")
    func refusals() async throws {
        let workspace = try Workspace()
        defer { workspace.remove() }
        let records = try await Self.writeLog(in: workspace)
        try Self.modify(workspace.segment, (records[2].lowerBound + 20)..<(records[2].lowerBound + 21)) { $0 ^ 0x40 }

        let missing = try Self.run(["wal", "verify", workspace.root + "/nothing"])
        #expect(missing.status != 0 && missing.errors.contains("does not exist"), "\(missing)")
        let extra = try Self.run(["wal", "verify", workspace.data, "--yes"])
        #expect(extra.status != 0 && extra.errors.contains("unexpected arguments --yes"), "\(extra)")

        // An engine holding the directory stands in for a running server: the same lock.
        let holder = try DirectoryLock(directory: workspace.data)
        let before = try workspace.files()
        let refused = try Self.run(["wal", "repair", workspace.data, "--yes"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.output.contains("cannot repair"), "\(refused.output)")
        #expect(try workspace.files() == before, "a refused repair changes nothing and makes no backup")
        holder.release()
    }
}
