// Reading one record of the log back by its LSN, for what memory keeps only as an LSN: a used KEY,
// whose original reply the record carries (a `commit` with its keyed command and after-values, or a
// `keyUse`). Retries are rare, so nothing on the writer's path pays for this: the segment is found
// by its file name (the LSN of its first record), and the record by walking the segment's record
// headers from the nearest checkpoint, a (LSN, offset) pair this reader noted on an earlier walk
// every `checkpointEvery` records. The first look into a segment reads it up to the record (a few
// milliseconds for a full 64 MiB segment, from the page cache); later looks start at most
// `checkpointEvery` records before theirs. The walk trusts only what it checks: each header's LSN
// follows the one before, and the record found is checked whole (CRC, salt, LSN) and decoded.
//
// The caller reads only records the log has acknowledged (written; synced under `always`): a
// record still in the committer's hands is not in the file yet.

import StockpileCore
import Synchronization

/// Why a record could not be read back.
public enum LogReadError: Error, Hashable, Sendable, CustomStringConvertible {
    case io(WALIOError)
    /// No segment of the directory holds the LSN (removed by retention, or never written).
    case missing(lsn: UInt64)
    /// The segment's bytes are not what the writer wrote there.
    case damaged(lsn: UInt64, fileName: String, offset: Int, reason: String)
    /// A `reservation` record, which needs its segment's names and never carries a KEY.
    case notStandalone(lsn: UInt64)
    /// The record is whole but not what the caller looked for (`reason` says what it is not).
    case unexpected(lsn: UInt64, reason: String)

    public var description: String {
        switch self {
        case .io(let e): "\(e)"
        case .missing(let lsn): "no segment holds record \(lsn)"
        case .damaged(let lsn, let name, let offset, let reason): "record \(lsn) in \(name) at offset \(offset): \(reason)"
        case .notStandalone(let lsn): "record \(lsn) is a reservation record, which carries no KEY"
        case .unexpected(let lsn, let reason): "record \(lsn) \(reason)"
        }
    }
}

public final class LogRecordReader: Sendable {
    public let directory: String
    private let fileSystem: any FileSystem
    /// Noted positions of every `checkpointEvery`-th record of each segment walked, by file name, in
    /// LSN order.
    private let checkpoints = Mutex<[String: [(lsn: UInt64, offset: Int)]]>([:])
    public static let checkpointEvery: UInt64 = 256
    /// Bytes read from the file at a time.
    private static let chunkByteCount = 64 << 10

    public init(directory: String, fileSystem: any FileSystem = SystemFileSystem()) {
        self.directory = directory
        self.fileSystem = fileSystem
    }

    /// The body of record `lsn`: a `commit` or a `keyUse`.
    public func body(at lsn: UInt64) throws(LogReadError) -> WALRecord.Body {
        let names: [String]
        do { names = try fileSystem.listDirectory(directory) } catch { throw .io(error) }
        guard let segment = SegmentHeader.segments(among: names).last(where: { $0.firstLSN <= lsn }) else { throw .missing(lsn: lsn) }
        let file: WALFile
        do { file = try fileSystem.open(walPath(directory, segment.name), mode: .readOnly) } catch { throw .io(error) }
        defer { try? fileSystem.close(file) }
        var window = Window(file: file, fileSystem: fileSystem)
        func damaged(_ offset: Int, _ reason: String) -> LogReadError { .damaged(lsn: lsn, fileName: segment.name, offset: offset, reason: reason) }

        let header = try window.withBytes(at: 0, count: SegmentHeader.byteCount) { raw throws(LogReadError) in
            do { return try SegmentHeader.decode(raw) } catch { throw damaged(0, "the segment's header is damaged: \(error)") }
        }
        guard header.firstLSN == segment.firstLSN else { throw damaged(0, "the header's first LSN is \(header.firstLSN)") }

        // Start at the last checkpoint at or before the record, else at the segment's first record.
        var (current, offset) = checkpoints.withLock { all -> (UInt64, Int) in
            all[segment.name]?.last(where: { $0.lsn <= lsn }).map { ($0.lsn, $0.offset) } ?? (header.firstLSN, SegmentHeader.byteCount)
        }
        var noted: [(lsn: UInt64, offset: Int)] = []
        defer {
            if !noted.isEmpty { checkpoints.withLock { Self.note(noted, for: segment.name, in: &$0) } }
        }
        while true {
            let fields = try window.withBytes(at: offset, count: WALRecord.headerByteCount) { raw -> (length: Int, lsn: UInt64)? in
                guard raw.count == WALRecord.headerByteCount else { return nil }
                return (Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))), UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            guard let (length, found) = fields else { throw .missing(lsn: lsn) }
            if found == 0 && length == 0 { throw .missing(lsn: lsn) }
            guard found == current else { throw damaged(offset, "the record here is numbered \(found), where \(current) was due") }
            guard length >= 1 && length <= WALRecord.payloadByteCountMax else { throw damaged(offset, "a length of \(length) bytes") }
            if (current - header.firstLSN) % Self.checkpointEvery == 0 { noted.append((current, offset)) }
            if current == lsn {
                return try window.withBytes(at: offset, count: WALRecord.headerByteCount + length) { raw throws(LogReadError) -> WALRecord.Body in
                    let judged = RecordCodec.decodeRecord(raw, at: 0, salt: header.salt, expectedLSN: lsn)
                    guard case .valid(let record) = judged else { throw damaged(offset, "the record does not check: \(judged)") }
                    guard record.type != .reservation else { throw .notStandalone(lsn: lsn) }
                    var names = SegmentNames(createdAt: header.createdAt)
                    do {
                        return try RecordCodec.decodeBody(of: record, in: raw, baseOffset: offset, names: &names)
                    } catch {
                        throw damaged(offset, "\(error)")
                    }
                }
            }
            offset += WALRecord.headerByteCount + length
            current += 1
        }
    }

    /// Adds `noted` to a segment's checkpoints, keeping them in LSN order without repeats.
    private static func note(_ noted: [(lsn: UInt64, offset: Int)], for name: String, in all: inout [String: [(lsn: UInt64, offset: Int)]]) {
        var list = all[name] ?? []
        let known = Set(list.lazy.map(\.lsn))
        let fresh = noted.filter { !known.contains($0.lsn) }
        guard !fresh.isEmpty else { return }
        list.append(contentsOf: fresh)
        list.sort { $0.lsn < $1.lsn }
        all[name] = list
    }

    /// Forgets the checkpoints of segments `names`, removed (by the log's retention).
    public func forget(segments names: [String]) {
        guard !names.isEmpty else { return }
        checkpoints.withLock { all in
            for name in names { all[name] = nil }
        }
    }

    /// The file read in chunks: a walk over many small headers costs a read per chunk, not per record.
    private struct Window {
        let file: WALFile
        let fileSystem: any FileSystem
        var start = 0
        /// The buffer, reused from one read to the next; its first `filled` bytes are the file's from `start`.
        var buffer: [UInt8] = []
        var filled = 0

        init(file: WALFile, fileSystem: any FileSystem) {
            self.file = file
            self.fileSystem = fileSystem
        }

        /// Calls `body` with the `count` bytes at `offset` (fewer where the file ends), lent from the
        /// window's buffer, which a read refills when they are not all in it.
        mutating func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws(LogReadError) -> R) throws(LogReadError) -> R {
            if offset < start || offset + count > start + filled {
                let size = Swift.max(count, LogRecordReader.chunkByteCount)
                if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
                let (file, fileSystem) = (self.file, self.fileSystem)
                // The file system reads until the buffer is full or the file ends.
                let read: Result<Int, WALIOError> = buffer.withUnsafeMutableBytes { raw in
                    Result { () throws(WALIOError) -> Int in try fileSystem.read(file, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<size]), at: offset) }
                }
                do { filled = try read.get() } catch { throw .io(error) }
                start = offset
            }
            let from = offset - start
            let (start, end) = (from, Swift.min(filled, from + count))
            let result: Result<R, LogReadError> = buffer.withUnsafeBytes { raw in
                Result { () throws(LogReadError) -> R in try body(UnsafeRawBufferPointer(rebasing: raw[start..<end])) }
            }
            return try result.get()
        }
    }
}
