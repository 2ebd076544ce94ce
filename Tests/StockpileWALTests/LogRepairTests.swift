// `wal repair`: a damaged log is cut at its first bad record after a copy of every segment it
// changes or removes, and then reads without damage, holding exactly the records before the cut.

import Foundation
import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct LogRepairTests {
    static let dir = LogTestSupport.simulatedDirectory
    static let backup = "/sim/backup"

    /// A log of `count` small records over several segments, on a simulated file system that also
    /// has the backup directory. Returns the file system and the segment names in LSN order.
    static func log(count: Int) throws -> (SimulatedFileSystem, [String]) {
        let fs = SimulatedFileSystem(directories: [dir, backup])
        try LogTestSupport.writeLog(LogTestSupport.smallBodies(count: count).map { [$0] }, directory: dir, fileSystem: fs, segmentByteCount: 4096)
        let names = try LogRecovery.recover(directory: dir, fileSystem: fs).segmentFileNames
        return (fs, names)
    }

    @Test("a log without damage, or with only a torn tail, needs no repair")
    func nothingToRepair() throws {
        let (fs, names) = try Self.log(count: 300)
        #expect(try LogRepair.plan(directory: Self.dir, fileSystem: fs) == nil)
        // Tear the last record of the newest segment: start-up cuts that by itself.
        let path = Self.dir + "/" + names.last!
        var bytes = fs.contents(of: path)!
        let end = LogRecovery.lastNonZeroOffset(bytes.withUnsafeBytes { $0 })!
        bytes[end] ^= 0xFF
        fs.setContents(of: path, to: bytes)
        #expect(try LogRepair.plan(directory: Self.dir, fileSystem: fs) == nil)
    }

    @Test("damage in an older segment: cut there, later segments removed, backups kept, the rest reads whole")
    func damageInOlderSegment() throws {
        let (fs, names) = try Self.log(count: 300)
        try #require(names.count >= 3, "the log should span several segments")
        let original = try LogRecovery.recover(directory: Self.dir, fileSystem: fs).records
        let victim = Self.dir + "/" + names[0]
        var bytes = fs.contents(of: victim)!
        let flip = SegmentHeader.byteCount + 200  // inside a record in the middle of the first segment
        bytes[flip] ^= 0x40
        fs.setContents(of: victim, to: bytes)
        let before = names.map { fs.contents(of: Self.dir + "/" + $0)! }

        let plan = try #require(try LogRepair.plan(directory: Self.dir, fileSystem: fs))
        #expect(plan.cutFileName == names[0])
        #expect(plan.removedFileNames == Array(names.dropFirst()))
        let backups = try LogRepair.apply(plan, directory: Self.dir, backupDirectory: Self.backup, fileSystem: fs)

        // Every changed or removed segment was copied as it was.
        #expect(backups == names.map { Self.backup + "/" + $0 })
        for (name, bytes) in zip(names, before) { #expect(fs.contents(of: Self.backup + "/" + name) == bytes, "\(name)") }
        // The log now reads without damage and holds exactly the records before the cut.
        let after = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
        #expect(after.segmentFileNames == [names[0]])
        #expect(!after.records.isEmpty && UInt64(after.records.count) == plan.lastKeptLSN)
        #expect(after.records == Array(original.prefix(after.records.count)))
        #expect(try LogRepair.plan(directory: Self.dir, fileSystem: fs) == nil)
    }

    @Test("a segment whose header is damaged is removed whole, with every later one")
    func damagedHeader() throws {
        let (fs, names) = try Self.log(count: 300)
        try #require(names.count >= 3)
        let victim = Self.dir + "/" + names[1]
        var bytes = fs.contents(of: victim)!
        bytes[3] ^= 0x01
        fs.setContents(of: victim, to: bytes)
        let firstSegmentRecords = try LogRecovery.recover(directory: Self.dir, fileSystem: {
            let only = SimulatedFileSystem(directories: [Self.dir])
            only.setContents(of: Self.dir + "/" + names[0], to: fs.contents(of: Self.dir + "/" + names[0])!)
            return only
        }()).records

        let plan = try #require(try LogRepair.plan(directory: Self.dir, fileSystem: fs))
        #expect(plan.cutFileName == nil)
        #expect(plan.removedFileNames == Array(names.dropFirst()))
        try LogRepair.apply(plan, directory: Self.dir, backupDirectory: Self.backup, fileSystem: fs)
        let after = try LogRecovery.recover(directory: Self.dir, fileSystem: fs)
        #expect(after.records == firstSegmentRecords)
    }
}
