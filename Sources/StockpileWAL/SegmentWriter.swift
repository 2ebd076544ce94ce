// Appends records to the log's segments (wal/FORMAT.md §2): creates each segment under a `.tmp` name
// fully zero-filled, syncs, renames and syncs the directory; writes each batch of records with one
// pwrite at the current offset; `sync()` is one fdatasync; rotates to a new segment when a batch would
// not fit. It keeps true: records are written in LSN order with no gap and never past the end of the
// file, so a segment's size never changes after it is named; an older segment is synced before the next
// one is created (so a torn record can only be at the end of the newest, FORMAT.md §5 row 6); and after
// a failed write or sync every later call throws that first error — a failure is never retried as if
// nothing happened, because the kernel may have dropped the dirty pages it could not write.
//
// With `preparesAhead`, a thread of its own zero-fills and syncs the next segment's file (a `.tmp`,
// which start-up removes) once the current one is half full, so that rotating costs a header write,
// a rename and two syncs, instead of every writer waiting while 64 MiB of zeros are written. That
// preparation is only ahead of need: its failure (a full disk) stops nothing. Writes go on into the
// current segment, which is allocated already; the rotation waits for a preparation still under way
// rather than race it for the last free blocks, and makes the segment itself when none was made. Only
// when that fails — a rotation is due and no next segment can be made — do writes stop.

import Foundation
import Glibc
import StockpileCore
import Synchronization

/// Not thread-safe: one thread (the group-commit thread) owns a writer.
public final class SegmentWriter {
    public static let segmentByteCountDefault = 64 << 20

    public let directory: String
    /// `directory` made absolute, for the errors an operator reads (a server's clients do not know its
    /// working directory).
    private let absoluteDirectory: String
    public let fileSystem: any FileSystem
    /// The size of the segments it creates (a batch larger than this gets a segment of its own size).
    public let segmentByteCount: Int
    private let makeSalt: () -> UInt32
    private let now: () -> Timestamp

    private var file: WALFile
    /// The current segment's header and file name.
    public private(set) var header: SegmentHeader
    public private(set) var fileName: String
    public private(set) var fileByteCount: Int
    /// Where the next record goes in the current segment.
    public private(set) var offset: Int
    /// The bytes the current segment has left: a batch longer than this rotates it.
    public var byteCountLeft: Int { fileByteCount - offset }
    /// The LSN of the next record.
    public private(set) var nextLSN: UInt64
    /// The first write or sync that failed: every later call throws it.
    public private(set) var failure: WALIOError?
    /// The segments created by this writer, oldest first.
    public private(set) var createdFileNames: [String] = []
    private var hasUnsyncedWrites = false
    /// The names the current segment has given (FORMAT.md §3.8).
    private var names: SegmentNames
    /// Reused for every batch, so that the writer stops allocating once it has seen its largest batch.
    private var buffer = ByteWriter(capacity: 64 << 10)
    /// Whether the next segment's file is made ahead of time by a background thread.
    public let preparesAhead: Bool
    private let spare = SpareSegment()

    /// The next segment's file, zero-filled and synced ahead of time: shared with the thread that
    /// makes it.
    private final class SpareSegment: Sendable {
        struct State: Sendable {
            var ready: WALFile?
            var preparing = false
            /// Why the last preparation failed. It is not tried again before the next rotation: on a
            /// full disk each try would write zeros until the disk is full again, taking blocks a
            /// snapshot could use, on a new thread for every batch.
            var failure: WALIOError?
        }
        let state = Mutex(State())
    }

    /// Opens the log for writing where `recovery` says it continues: at the end of the newest segment
    /// (first overwriting a cut torn tail with zeros, and syncing), or in a new first segment for a new
    /// directory (row 1). Removes the `*.tmp` files recovery found.
    /// - Throws: `WALIOError` from the first call that fails.
    public init(
        directory: String, recovery: LogRecovery.Result, fileSystem: any FileSystem = SystemFileSystem(),
        segmentByteCount: Int = SegmentWriter.segmentByteCountDefault,
        makeSalt: @escaping () -> UInt32 = { UInt32.random(in: .min ... .max) },
        now: @escaping () -> Timestamp = SegmentWriter.systemNow, preparesAhead: Bool = false
    ) throws(WALIOError) {
        self.preparesAhead = preparesAhead
        precondition(segmentByteCount > SegmentHeader.byteCount + WALRecord.headerByteCount, "segments too small for a record")
        self.directory = directory
        absoluteDirectory = directory.hasPrefix("/") ? directory : URL(fileURLWithPath: directory).standardizedFileURL.path
        self.fileSystem = fileSystem
        self.segmentByteCount = segmentByteCount
        self.makeSalt = makeSalt
        self.now = now
        self.nextLSN = recovery.nextLSN

        for name in recovery.temporaryFileNames { try fileSystem.unlink(walPath(directory, name)) }
        if !recovery.temporaryFileNames.isEmpty { try fileSystem.syncDirectory(directory) }

        if let position = recovery.position, let continued = try Self.reopen(position, directory: directory, fileSystem: fileSystem) {
            precondition(position.nextLSN == recovery.nextLSN)
            file = continued
            header = position.header
            fileName = position.fileName
            fileByteCount = position.fileByteCount
            offset = position.offset
            names = position.names
        } else {
            let created = try Self.createSegment(
                directory: directory, fileSystem: fileSystem, firstLSN: recovery.nextLSN,
                byteCount: segmentByteCount, salt: makeSalt(), createdAt: now(), replacing: false)
            (file, header, fileName, fileByteCount) = created
            names = SegmentNames(createdAt: header.createdAt)
            offset = SegmentHeader.byteCount
            createdFileNames.append(fileName)
        }
        checkInvariants()
    }

    /// The newest segment, made ready to go on at `position`: any torn tail cut, the file left open. Nil
    /// (and the file closed) when the segment is of an older format version: it stays as it is, and new
    /// records go into a new segment of this version, so a reader judges every record by the header of
    /// the file it is in.
    private static func reopen(_ position: LogRecovery.WritePosition, directory: String, fileSystem: any FileSystem) throws(WALIOError) -> WALFile? {
        let file = try fileSystem.open(walPath(directory, position.fileName), mode: .readWrite)
        if position.dirtyByteCount > 0 {
            // The cut of FORMAT.md §5 row 5: zeros over the torn bytes, synced before anything new
            // is written, so that the tail cannot come back to be read after the new records.
            try fileSystem.write(file, [UInt8](repeating: 0, count: position.dirtyByteCount), at: position.offset)
            try fileSystem.syncData(file)
        }
        guard position.header.version == SegmentHeader.formatVersion else {
            try fileSystem.close(file)
            return nil
        }
        return file
    }

    /// Milliseconds since the Unix epoch, from CLOCK_REALTIME.
    public static func systemNow() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    /// Bytes of records written by this writer (segment headers and preallocated zeros not counted).
    public private(set) var recordByteCount = 0

    /// Appends `recordCount` records that `frame` writes into the buffer it is given, framed with the
    /// LSNs from `firstLSN` on, the segment's `salt` and its `names` (use `RecordCodec.appendCommit`
    /// and friends). The batch goes to the file in one pwrite; it is durable only after `sync()`.
    ///
    /// `frame` is called again, with the new segment's salt and names, when the batch does not fit in
    /// the current segment and the writer rotates; the names it gave the first time are forgotten.
    /// - Returns: the LSNs of the records.
    /// - Throws: the `WALIOError` of the first failed call, now or at any earlier call.
    @discardableResult
    public func append(
        recordCount: Int, _ frame: (_ firstLSN: UInt64, _ salt: UInt32, _ names: inout SegmentNames, _ buffer: inout ByteWriter) -> Void
    ) throws(WALIOError) -> ClosedRange<UInt64> {
        precondition(recordCount >= 1, "an empty batch")
        if let failure { throw failure }
        let first = nextLSN
        buffer.reset()
        // Framed with the segment's own names, not a copy: a copy of a table of a million names per
        // batch would cost more than the batch. A rotation starts the new segment's names afresh (what
        // the first framing gave is gone with it), and a failed write stops the writer for good.
        frame(first, header.salt, &names, &buffer)
        if buffer.count > byteCountLeft {
            do {
                try rotate(batchByteCount: buffer.count)
            } catch {
                throw stop(error)
            }
            buffer.reset()
            frame(first, header.salt, &names, &buffer)
        }
        assert(Self.isBatch(buffer.bytes, recordCount: recordCount, firstLSN: first, salt: header.salt), "a batch not framed for this segment")
        precondition(offset + buffer.count <= fileByteCount, "a batch larger than a fresh segment")
        do {
            try fileSystem.write(file, buffer.bytes, at: offset)
        } catch {
            throw stop(error)
        }
        offset += buffer.count
        recordByteCount += buffer.count
        if preparesAhead && offset > fileByteCount / 2 { prepareSpareIfNeeded() }
        nextLSN += UInt64(recordCount)
        hasUnsyncedWrites = true
        checkInvariants()
        return first...(nextLSN - 1)
    }

    /// Appends one record per body, in one pwrite (see the other overload).
    @discardableResult
    public func append(_ bodies: [WALRecord.Body]) throws(WALIOError) -> ClosedRange<UInt64> {
        try append(recordCount: bodies.count) { first, salt, names, buffer in
            for (i, body) in bodies.enumerated() {
                RecordCodec.appendBody(body, lsn: first + UInt64(i), salt: salt, names: &names, into: &buffer)
            }
        }
    }

    /// How many records ahead `append(_ batch:)` asks for the line of a cell's number.
    static let placeLookahead = 4

    /// Appends what a group committer was handed, in one pwrite: a staged reservation as its
    /// `reservation` record (`StagedReservation.frame`), a body as `append(_ bodies:)` writes it.
    /// `batch` is left as it was. Each body is moved out of the list while it is framed and moved back
    /// after: read in the list, by its subscript or through the list's buffer, it was copied (a retain
    /// and a release of each of its names), since the framing writes memory the compiler cannot tell
    /// apart from the list's.
    @discardableResult
    func append(_ batch: inout GroupCommitter.Batch) throws(WALIOError) -> ClosedRange<UInt64> {
        let count = batch.count
        let order = batch.order
        return try batch.staged.withUnsafeBufferPointer { stagedBytes throws(WALIOError) in
            let staged = UnsafeRawPointer(stagedBytes.baseAddress)
            return try batch.bodies.withUnsafeMutableBufferPointer { list throws(WALIOError) in
                let base = list.baseAddress
                return try append(recordCount: count) { first, salt, names, buffer in
                    for i in 0..<count {
                        if i + Self.placeLookahead < count, order[i + Self.placeLookahead] >= 0,
                            let place = StagedReservation.View(staged! + order[i + Self.placeLookahead]).place
                        {
                            names.prefetchNumber(at: place)
                        }
                        let k = order[i]
                        if k >= 0 {
                            assert(StagedReservation.View(staged! + k).lsn == first + UInt64(i), "a staged record out of LSN order")
                            StagedReservation.frame(staged! + k, salt: salt, names: &names, into: &buffer)
                        } else {
                            // Framing cannot throw or stop between the move out and the move back, so the
                            // slot is uninitialised only while this record is framed, and read by no one.
                            let slot = base! + (-1 - k)
                            let record = slot.move()
                            RecordCodec.appendBody(record, lsn: first + UInt64(i), salt: salt, names: &names, into: &buffer)
                            slot.initialize(to: consume record)
                        }
                    }
                }
            }
        }
    }

    /// Makes every record appended so far durable: one fdatasync (the segment's size never changes, so
    /// it has only data to flush).
    /// - Throws: the first failure; after one, the writer refuses everything.
    public func sync() throws(WALIOError) {
        if let failure { throw failure }
        guard hasUnsyncedWrites else { return }
        do {
            try fileSystem.syncData(file)
        } catch {
            throw stop(error)
        }
        hasUnsyncedWrites = false
    }

    /// Records the failure that stops this writer, naming the data directory for the operator.
    private func stop(_ error: WALIOError) -> WALIOError {
        var stopped = error
        stopped.dataDirectory = absoluteDirectory
        failure = stopped
        return stopped
    }

    /// Closes the current segment without syncing it.
    public func close() throws(WALIOError) {
        // A spare being made is waited for, then removed with any made already: a `.tmp` left
        // behind would only be removed at the next start.
        while spare.state.withLock({ $0.preparing }) { usleep(1000) }
        if let ready = spare.state.withLock({ s -> WALFile? in
            defer { s.ready = nil }
            return s.ready
        }) {
            try? fileSystem.close(ready)
            try? fileSystem.unlink(ready.path)
        }
        try fileSystem.close(file)
    }

    /// Finishes the current segment (synced, closed) and starts the next at `nextLSN`. A segment that
    /// holds no record yet (a batch larger than a fresh segment) is replaced instead, under its own name.
    private func rotate(batchByteCount: Int) throws(WALIOError) {
        if hasUnsyncedWrites {
            try fileSystem.syncData(file)
            hasUnsyncedWrites = false
        }
        let replacing = offset == SegmentHeader.byteCount
        try fileSystem.close(file)
        // Whatever happens below starts a new segment, whose preparation may be tried again.
        defer { spare.state.withLock { $0.failure = nil } }
        if !replacing, SegmentHeader.byteCount + batchByteCount <= segmentByteCount, let ready = takeSpare() {
            // The header, then the name: until the rename the file is a `.tmp` nobody reads.
            let newHeader = SegmentHeader(salt: makeSalt(), firstLSN: nextLSN, createdAt: now())
            var headerBytes = ByteWriter(capacity: SegmentHeader.byteCount)
            newHeader.encode(into: &headerBytes)
            let name = SegmentHeader.fileName(firstLSN: nextLSN)
            let path = walPath(directory, name)
            do throws(WALIOError) {
                if try fileSystem.fileExists(path) { throw WALIOError(operation: .rename, path: ready.path + " -> " + path, errno: EEXIST) }
                try fileSystem.write(ready, headerBytes.bytes, at: 0)
                try fileSystem.syncData(ready)
                try fileSystem.rename(ready.path, to: path)
                try fileSystem.syncDirectory(directory)
            } catch {
                try? fileSystem.close(ready)
                throw error
            }
            (file, header, fileName, fileByteCount) = (WALFile(descriptor: ready.descriptor, path: path), newHeader, name, segmentByteCount)
            retire(&names, for: SegmentNames(createdAt: newHeader.createdAt, cellCapacity: names.cellCount))
            offset = SegmentHeader.byteCount
            createdFileNames.append(fileName)
            return
        }
        let created = try Self.createSegment(
            directory: directory, fileSystem: fileSystem, firstLSN: nextLSN,
            byteCount: max(segmentByteCount, SegmentHeader.byteCount + batchByteCount),
            salt: makeSalt(), createdAt: now(), replacing: replacing)
        (file, header, fileName, fileByteCount) = created
        retire(&names, for: SegmentNames(createdAt: header.createdAt, cellCapacity: names.cellCount))
        offset = SegmentHeader.byteCount
        createdFileNames.append(fileName)
    }

    /// Replaces the names of the segment rotated out with `fresh`, freeing the old ones on another
    /// thread: they can hold a million cells, two strings each, and freeing them here held the log's
    /// thread (and every caller waiting for a sync) for milliseconds at each rotation.
    private func retire(_ names: inout SegmentNames, for fresh: SegmentNames) {
        let retired = names
        names = fresh
        DispatchQueue.global(qos: .utility).async { withExtendedLifetime(retired) {} }
    }

    /// Whether the next segment's file is made and waiting (for tests).
    public var spareIsReady: Bool { spare.state.withLock { $0.ready != nil } }

    /// Why the next segment's file could not be made ahead of time, until the next rotation (for tests).
    public var spareFailure: WALIOError? { spare.state.withLock { $0.failure } }

    /// The next segment's file if one was made, after waiting for one under way: it is nearly done, and
    /// making another beside it could fail for want of the space the first one holds.
    private func takeSpare() -> WALFile? {
        while spare.state.withLock({ $0.preparing }) { usleep(1000) }
        return spare.state.withLock { s in
            defer { s.ready = nil }
            return s.ready
        }
    }

    /// Starts making the next segment's file on a thread of its own, unless one is ready or on its way,
    /// or the last try since the rotation failed. A failure there only leaves no spare: rotation then
    /// creates the segment itself, and reports whatever fails then.
    private func prepareSpareIfNeeded() {
        let start = spare.state.withLock { s -> Bool in
            guard s.ready == nil && !s.preparing && s.failure == nil else { return false }
            s.preparing = true
            return true
        }
        guard start else { return }
        let (fileSystem, byteCount, path) = (fileSystem, segmentByteCount, walPath(directory, "wal-next-\(UInt32.random(in: .min ... .max)).tmp"))
        let spare = self.spare
        startThread(named: "sp-wal-prepare") {
            lowerCallingThreadPriority()
            var made: WALFile?
            var failure: WALIOError?
            do throws(WALIOError) {
                let file = try fileSystem.open(path, mode: .createNew)
                do throws(WALIOError) {
                    // Synced a MiB at a time, like a snapshot: one 64 MiB flush would hold the log's
                    // own fdatasync behind it.
                    let chunk = [UInt8](repeating: 0, count: min(byteCount, 1 << 20))
                    var written = 0
                    while written < byteCount {
                        let n = min(chunk.count, byteCount - written)
                        try fileSystem.write(file, n == chunk.count ? chunk : Array(chunk[0..<n]), at: written)
                        try fileSystem.syncData(file)
                        written += n
                    }
                    made = file
                } catch {
                    try? fileSystem.close(file)
                    try? fileSystem.unlink(path)
                    throw error
                }
            } catch {
                failure = error
            }
            spare.state.withLock { s in
                s.ready = made
                s.failure = failure
                s.preparing = false
            }
        }
    }

    /// FORMAT.md §2: header and zeros under `<name>.tmp`, fdatasync, rename, fsync of the directory.
    /// Returns the file, open for writing under its final name.
    private static func createSegment(
        directory: String, fileSystem: any FileSystem, firstLSN: UInt64, byteCount: Int, salt: UInt32,
        createdAt: Timestamp, replacing: Bool
    ) throws(WALIOError) -> (WALFile, SegmentHeader, String, Int) {
        let name = SegmentHeader.fileName(firstLSN: firstLSN)
        let path = walPath(directory, name)
        let tmpPath = path + ".tmp"
        // Renaming onto an existing segment would lose it: only an empty one of our own may be replaced.
        if !replacing, try fileSystem.fileExists(path) {
            throw WALIOError(operation: .rename, path: tmpPath + " -> " + path, errno: EEXIST)
        }
        // A leftover `.tmp` is never read (FORMAT.md §1): remove it rather than fail.
        if try fileSystem.fileExists(tmpPath) { try fileSystem.unlink(tmpPath) }
        let header = SegmentHeader(salt: salt, firstLSN: firstLSN, createdAt: createdAt)
        let file = try fileSystem.open(tmpPath, mode: .createNew)
        do throws(WALIOError) {
            var headerBytes = ByteWriter(capacity: SegmentHeader.byteCount)
            header.encode(into: &headerBytes)
            let chunkByteCount = min(byteCount, 1 << 20)
            var chunk = [UInt8](repeating: 0, count: chunkByteCount)
            chunk.replaceSubrange(0..<SegmentHeader.byteCount, with: headerBytes.bytes)
            var written = 0
            while written < byteCount {
                let n = min(chunkByteCount, byteCount - written)
                try fileSystem.write(file, n == chunkByteCount ? chunk : Array(chunk[0..<n]), at: written)
                if written == 0 { chunk.replaceSubrange(0..<SegmentHeader.byteCount, with: repeatElement(0, count: SegmentHeader.byteCount)) }
                written += n
            }
            try fileSystem.syncData(file)
            try fileSystem.rename(tmpPath, to: path)
            try fileSystem.syncDirectory(directory)
        } catch {
            try? fileSystem.close(file)
            throw error
        }
        return (WALFile(descriptor: file.descriptor, path: path), header, name, byteCount)
    }

    /// Whether `bytes` are exactly `recordCount` valid records from `firstLSN` with `salt` (debug check
    /// before writing).
    private static func isBatch(_ bytes: [UInt8], recordCount: Int, firstLSN: UInt64, salt: UInt32) -> Bool {
        var offset = 0
        for i in 0..<recordCount {
            guard case .valid(let record) = RecordCodec.decodeRecord(bytes, at: offset, salt: salt, expectedLSN: firstLSN + UInt64(i))
            else { return false }
            offset = record.endOffset
        }
        return offset == bytes.count
    }

    private func checkInvariants() {
        assert(offset >= SegmentHeader.byteCount && offset <= fileByteCount)
        assert(fileName == SegmentHeader.fileName(firstLSN: header.firstLSN))
        assert(nextLSN >= header.firstLSN)
    }
}
