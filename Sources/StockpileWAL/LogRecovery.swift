// Start-up's reading of the log (wal/FORMAT.md §5): list the segments of a data directory in LSN order,
// validate each header, scan the records, decode their payloads, and apply the recovery decision table.
// It keeps true: recovery changes nothing on disk (the writer that continues does the cut, see
// `LogRecovery.WritePosition.dirtyByteCount`); it returns records only in gapless LSN order; it accepts
// a non-valid record only at the very end of the newest segment, and only of a kind a torn write can
// produce, with nothing valid after it; every refusal names the file, the offset and the repair command.
//
// Rows of the table and where they are decided:
//   1 `recover`: no segment → `position == nil`, next LSN 1.
//   2 `readSegment`: header not valid, or its first LSN is not the file name's.
//   3 `recover`: first LSN ≠ previous segment's last LSN + 1.
//   4–8 `scan`.
//   9 `SnapshotStore.loadNewestValid` chooses the snapshot; 10 and 11 `recover`, given its LSN:
//     segments wholly before it are not read, records up to it are checked but not kept.

import StockpileCore

/// A decoded record of the log.
public struct RecoveredRecord: Hashable, Sendable {
    public var lsn: UInt64
    /// The record's type on disk: a commit may have been written as a `reservation` record.
    public var type: WALRecordType
    private var payload: Payload

    /// A `reservation` record is kept as its fields (FORMAT.md §3.8): the commit it stands for is built
    /// only when asked for.
    private enum Payload: Sendable {
        indirect case body(WALRecord.Body)
        case reservation(CompactReservation)
    }

    public init(lsn: UInt64, body: WALRecord.Body, type: WALRecordType? = nil) {
        self.lsn = lsn
        self.payload = .body(body)
        switch body {
        case .commit: self.type = type ?? .commit
        case .keyUse: self.type = .keyUse
        }
    }

    /// A `reservation` record, kept as its fields.
    public init(lsn: UInt64, reservation: CompactReservation) {
        self.lsn = lsn
        self.payload = .reservation(reservation)
        self.type = .reservation
    }

    /// What the record carries; for a `reservation` record, the commit its fields stand for (built on
    /// each read).
    public var body: WALRecord.Body {
        switch payload {
        case .body(let body): return body
        case .reservation(let r): return .commit(r.commit)
        }
    }

    /// The fields of a `reservation` record; nil for any other record.
    public var reservation: CompactReservation? {
        guard case .reservation(let r) = payload else { return nil }
        return r
    }

    /// Equal when they carry the same LSN, type and body, however each keeps it.
    public static func == (a: RecoveredRecord, b: RecoveredRecord) -> Bool {
        a.lsn == b.lsn && a.type == b.type && a.body == b.body
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(lsn)
        hasher.combine(type)
        hasher.combine(body)
    }
}

/// A torn tail that recovery cut (row 5): the writer zeroes these bytes before it writes.
public struct RecoveryWarning: Hashable, Sendable, CustomStringConvertible {
    public var fileName: String
    public var offset: Int
    /// Non-zero bytes cut, from `offset` to the last non-zero byte of the file.
    public var byteCount: Int
    /// What was found at `offset`.
    public var found: RecordDecoding
    /// The LSN of the last record kept (0 when none precedes the cut in the whole log).
    public var lastLSN: UInt64

    public var description: String {
        "stockpile: cut a torn record at the end of the log: \(fileName) offset \(offset) (\(found.recoveryDescription)"
            + " after LSN \(lastLSN)), \(byteCount) bytes. It was never acknowledged; the log goes on from there."
    }
}

/// Damage that makes recovery refuse to start (FORMAT.md §5 rows 2, 3, 6, 7, 8).
public struct LogDamage: Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// Row 2.
        case headerInvalid(SegmentHeaderDamage)
        /// Row 2: the header is valid but names another first LSN than the file name.
        case headerLSNMismatch(fileNameLSN: UInt64, headerLSN: UInt64)
        /// Row 3: a gap or an overlap between two segments.
        case lsnGap(previousFileName: String, expected: UInt64, found: UInt64)
        /// Row 6: what would be a torn tail, but in a segment that is not the newest.
        case tornInOlderSegment(RecordDecoding)
        /// Row 7: a record whose CRC matched but whose salt, LSN, type or reserved bytes are wrong.
        case recordInvalid(RecordDamage)
        /// Row 7: the framing is valid but the payload does not decode.
        case payloadUndecodable(WALDecodingError)
        /// Row 8: a record that is not valid, with a valid one after it at `validRecordOffset`.
        case damageBeforeValidRecord(RecordDecoding, validRecordOffset: Int)
        /// Row 10: the log starts after the record following the snapshot.
        case logStartsAfterSnapshot(snapshotLSN: UInt64, firstLSN: UInt64)
        /// Row 11: the log ends before the snapshot's LSN.
        case logEndsBeforeSnapshot(snapshotLSN: UInt64)
    }

    public var directory: String
    public var fileName: String
    public var offset: Int
    /// The LSN of the last valid record before the damage (0 when none).
    public var lastLSN: UInt64
    public var reason: Reason

    /// The row of FORMAT.md §5 that refused.
    public var row: Int {
        switch reason {
        case .headerInvalid, .headerLSNMismatch: 2
        case .lsnGap: 3
        case .tornInOlderSegment: 6
        case .recordInvalid, .payloadUndecodable: 7
        case .damageBeforeValidRecord: 8
        case .logStartsAfterSnapshot: 10
        case .logEndsBeforeSnapshot: 11
        }
    }

    public var reasonDescription: String {
        switch reason {
        case .headerInvalid(let d): "segment header not valid: \(d)"
        case .headerLSNMismatch(let name, let header): "the header's first LSN \(header) is not the file name's \(name)"
        case .lsnGap(let previous, let expected, let found):
            "the segment starts at LSN \(found) but \(previous) ends before LSN \(expected)"
        case .tornInOlderSegment(let found):
            "\(found.recoveryDescription) in the record after LSN \(lastLSN), in a segment that is not the newest"
        case .recordInvalid(let d): "\(d) in the record after LSN \(lastLSN)"
        case .payloadUndecodable(let e): "the payload of LSN \(lastLSN + 1) does not decode: \(e)"
        case .damageBeforeValidRecord(let found, let valid):
            "\(found.recoveryDescription) in the record after LSN \(lastLSN), with a valid record after it at offset \(valid)"
        case .logStartsAfterSnapshot(0, let first):
            "no snapshot was found but the log starts at LSN \(first): records 1–\(first - 1) are missing (removed by --log-retention-mib, or lost)"
        case .logStartsAfterSnapshot(let snapshotLSN, let first):
            "the snapshot covers LSN 1–\(snapshotLSN) but the log starts at LSN \(first): records \(snapshotLSN + 1)–\(first - 1) are missing"
        case .logEndsBeforeSnapshot(let snapshotLSN):
            "the snapshot covers LSN 1–\(snapshotLSN) but the log ends at LSN \(lastLSN): files were lost"
        }
    }

    public var description: String {
        "stockpile: the log is damaged at \(fileName) offset \(offset) (\(reasonDescription)).\n"
            + "Nothing was changed. Run `stockpile wal repair \(directory)` to see the cut it would make, then add --yes "
            + "to make it (it copies what it changes to a backup first)."
    }
}

/// Why recovery could not read the log.
public enum LogRecoveryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The operating system refused a call; nothing is known about the log.
    case io(WALIOError)
    /// The log is damaged; the operator must repair it.
    case damaged(LogDamage)

    public var description: String {
        switch self {
        case .io(let e): "stockpile: cannot read the log: \(e)"
        case .damaged(let d): d.description
        }
    }
}

extension RecordDecoding {
    var recoveryDescription: String {
        switch self {
        case .valid(let r): "a valid record (LSN \(r.lsn))"
        case .torn: "a record cut short by the end of the file"
        case .zero: "zeros"
        case .corrupt(let d): d.description
        }
    }
}

public enum LogRecovery {
    /// Where the writer continues: the newest segment, at the end of its last valid record.
    public struct WritePosition: Hashable, Sendable {
        public var fileName: String
        public var header: SegmentHeader
        /// Where the next record goes.
        public var offset: Int
        public var fileByteCount: Int
        /// Non-zero bytes from `offset` on (a cut torn tail) that the writer must overwrite with zeros,
        /// and sync, before it writes anything: 0 when the segment ended cleanly.
        public var dirtyByteCount: Int
        /// The LSN of the next record.
        public var nextLSN: UInt64
        /// The names the segment has given (FORMAT.md §3.8): the writer goes on numbering from them.
        public var names: SegmentNames
    }

    public struct Result: Hashable, Sendable {
        /// Every record of the log, in LSN order.
        public var records: [RecoveredRecord]
        /// The segments' file names, in LSN order.
        public var segmentFileNames: [String]
        /// `*.tmp` files found (never read; start-up removes them).
        public var temporaryFileNames: [String]
        /// One per torn tail cut (at most one: only the newest segment may have one).
        public var warnings: [RecoveryWarning]
        /// Nil for a directory with no segment (row 1): the writer creates the first one.
        public var position: WritePosition?
        /// The LSN of the next record: 1 for a new directory.
        public var nextLSN: UInt64
    }

    /// Reads the log of `directory`.
    /// - Throws: `LogRecoveryError.damaged` for rows 2, 3, 6, 7 and 8 of FORMAT.md §5, `.io` when a call
    ///   fails. Cost: reads every segment whole, one at a time.
    /// - Parameter snapshotLSN: the LSN of the snapshot start-up loaded (0: none). Segments wholly
    ///   before it are not read, and records up to it are checked but not returned.
    public static func recover(
        directory: String, after snapshotLSN: UInt64 = 0, fileSystem: any FileSystem = SystemFileSystem()
    ) throws(LogRecoveryError) -> Result {
        var result = Result(records: [], segmentFileNames: [], temporaryFileNames: [], warnings: [], position: nil, nextLSN: 1)
        var records: [RecoveredRecord] = []
        try recover(directory: directory, snapshotLSN: snapshotLSN, fileSystem: fileSystem, into: &result) { batch in
            records += batch.records
            return true
        }
        result.records = records
        return result
    }

    /// Reads the log like `recover(directory:after:fileSystem:)`, but hands the records over in
    /// batches of about a thousand, in LSN order, instead of keeping them all: start-up applies one
    /// batch while the next is read. The result's `records` is empty. A damage found in a later segment
    /// throws after earlier segments were delivered (start-up then discards what it built).
    public static func recover(
        directory: String, after snapshotLSN: UInt64 = 0, fileSystem: any FileSystem = SystemFileSystem(),
        deliver: (RecoveredBatch) -> Void
    ) throws(LogRecoveryError) -> Result {
        var result = Result(records: [], segmentFileNames: [], temporaryFileNames: [], warnings: [], position: nil, nextLSN: 1)
        try recover(directory: directory, snapshotLSN: snapshotLSN, fileSystem: fileSystem, into: &result) { batch in
            deliver(batch)
            return true
        }
        return result
    }

    /// Reads as much of the log as is valid, for the tools: the records before any damage, and the
    /// damage (or I/O failure) that stopped the reading, nil when the whole log is valid.
    public static func readValidPrefix(
        directory: String, fileSystem: any FileSystem = SystemFileSystem()
    ) -> (result: Result, error: LogRecoveryError?) {
        var records: [RecoveredRecord] = []
        var read = readValidPrefix(directory: directory, fileSystem: fileSystem) { batch in
            records += batch.records
            return true
        }
        read.result.records = records
        return read
    }

    /// Reads as much of the log as is valid like `readValidPrefix(directory:fileSystem:)`, handing the
    /// records over in batches instead of keeping them (the result's `records` is empty), so a large
    /// log is read in little memory. `deliver` returns false to stop: the reading then ends with the
    /// segment it is in (and the result has no write position).
    public static func readValidPrefix(
        directory: String, fileSystem: any FileSystem = SystemFileSystem(), deliver: (RecoveredBatch) -> Bool
    ) -> (result: Result, error: LogRecoveryError?) {
        var result = Result(records: [], segmentFileNames: [], temporaryFileNames: [], warnings: [], position: nil, nextLSN: 1)
        do {
            try recover(directory: directory, snapshotLSN: 0, requireStart: false, fileSystem: fileSystem, into: &result, deliver: deliver)
            return (result, nil)
        } catch {
            return (result, error)
        }
    }

    private static func recover(
        directory: String, snapshotLSN: UInt64, requireStart: Bool = true, fileSystem: any FileSystem, into result: inout Result,
        deliver: (RecoveredBatch) -> Bool
    ) throws(LogRecoveryError) {
        var stopped = false
        func hand(_ batch: RecoveredBatch) { if !deliver(batch) { stopped = true } }
        let names: [String]
        do { names = try fileSystem.listDirectory(directory) } catch { throw .io(error) }
        let segments = SegmentHeader.segments(among: names)
        result.segmentFileNames = segments.map(\.name)
        result.temporaryFileNames = names.filter { $0.hasSuffix(".tmp") }.sorted()
        var previousFileName: String?
        // One buffer for every segment: a batch handed over holds no bytes of it (its names are
        // copied out as it is decoded).
        let contents = FileContents()
        for (index, (name, nameLSN)) in segments.enumerated() {
            let isNewest = index == segments.count - 1
            // Wholly before the snapshot: the next segment starts at or before the record after it.
            if !isNewest, segments[index + 1].1 <= snapshotLSN + 1 { continue }
            try readSegment(directory: directory, name: name, fileSystem: fileSystem, into: contents)
            // The segment's bytes are valid until the next segment is read into the same buffer.
            let bytes = contents.bytes
            defer { withExtendedLifetime(contents) {} }
            let header = try validHeader(bytes, directory: directory, name: name, nameLSN: nameLSN, lastLSN: result.nextLSN - 1)
            // Row 3, between segments. Where the first one may start is row 10's (below).
            if let previousFileName, header.firstLSN != result.nextLSN {
                throw .damaged(LogDamage(
                    directory: directory, fileName: name, offset: 0, lastLSN: result.nextLSN - 1,
                    reason: .lsnGap(previousFileName: previousFileName, expected: result.nextLSN, found: header.firstLSN)))
            }
            // Row 10 (with no snapshot, its LSN is 0: the log must start at 1). The tools read what
            // is there and skip this check.
            if previousFileName == nil, requireStart, header.firstLSN > snapshotLSN + 1 {
                throw .damaged(LogDamage(
                    directory: directory, fileName: name, offset: 0, lastLSN: snapshotLSN,
                    reason: .logStartsAfterSnapshot(snapshotLSN: snapshotLSN, firstLSN: header.firstLSN)))  // Row 10.
            }
            previousFileName = name
            var records = RecoveredBatch(segment: header.firstLSN, capacity: deliveryBatchCount)
            let end: SegmentEnd
            do {
                end = try scan(
                    bytes, header: header, directory: directory, name: name, isNewest: isNewest, keepingAfter: snapshotLSN, records: &records,
                    deliver: hand)
            } catch {
                hand(records)  // the valid records before the damage, for the tools
                throw error
            }
            if !records.isEmpty { hand(records) }
            if stopped { return }  // the caller has what it wanted
            result.nextLSN = end.nextLSN
            if end.dirtyByteCount > 0, let found = end.found {
                result.warnings.append(RecoveryWarning(
                    fileName: name, offset: end.offset, byteCount: end.dirtyByteCount, found: found, lastLSN: end.nextLSN - 1))
            }
            if isNewest {
                result.position = WritePosition(
                    fileName: name, header: header, offset: end.offset, fileByteCount: bytes.count,
                    dirtyByteCount: end.dirtyByteCount, nextLSN: end.nextLSN, names: end.names)
            }
        }
        if result.nextLSN - 1 < snapshotLSN {
            throw .damaged(LogDamage(
                directory: directory, fileName: segments.last?.0 ?? "(no segment)", offset: result.position?.offset ?? 0,
                lastLSN: result.nextLSN - 1, reason: .logEndsBeforeSnapshot(snapshotLSN: snapshotLSN)))  // Row 11.
        }
    }

    private static func readSegment(
        directory: String, name: String, fileSystem: any FileSystem, into contents: FileContents
    ) throws(LogRecoveryError) {
        do {
            let file = try fileSystem.open(walPath(directory, name), mode: .readOnly)
            defer { try? fileSystem.close(file) }
            try contents.read(file, in: fileSystem)
        } catch {
            throw .io(error)
        }
    }

    /// Row 2.
    private static func validHeader(
        _ bytes: UnsafeRawBufferPointer, directory: String, name: String, nameLSN: UInt64, lastLSN: UInt64
    ) throws(LogRecoveryError) -> SegmentHeader {
        let header: SegmentHeader
        do { header = try SegmentHeader.decode(bytes) } catch {
            throw .damaged(LogDamage(directory: directory, fileName: name, offset: 0, lastLSN: lastLSN, reason: .headerInvalid(error)))
        }
        guard header.firstLSN == nameLSN else {
            throw .damaged(LogDamage(
                directory: directory, fileName: name, offset: 0, lastLSN: lastLSN,
                reason: .headerLSNMismatch(fileNameLSN: nameLSN, headerLSN: header.firstLSN)))
        }
        return header
    }

    struct SegmentEnd {
        /// Where the segment's records end.
        var offset: Int
        /// What was found there (nil only when the segment is full to its last byte).
        var found: RecordDecoding?
        var dirtyByteCount: Int
        var nextLSN: UInt64
        /// The names the segment's records gave.
        var names: SegmentNames
    }

    /// Records handed over at a time by `scan`.
    static let deliveryBatchCount = 1024

    /// Reads the records of one segment and decides rows 4–8 at the first answer that is not valid.
    static func scan(
        _ raw: UnsafeRawBufferPointer, header: SegmentHeader, directory: String, name: String, isNewest: Bool,
        keepingAfter snapshotLSN: UInt64 = 0, records: inout RecoveredBatch, deliver: (RecoveredBatch) -> Void
    ) throws(LogRecoveryError) -> SegmentEnd {
        var offset = SegmentHeader.byteCount
        var lsn = header.firstLSN
        var names = SegmentNames(createdAt: header.createdAt)
        func damage(_ reason: LogDamage.Reason) -> LogRecoveryError {
            .damaged(LogDamage(directory: directory, fileName: name, offset: offset, lastLSN: lsn - 1, reason: reason))
        }
        while offset < raw.count {
            let answer = RecordCodec.decodeRecord(raw, at: offset, salt: header.salt, expectedLSN: lsn)
            if case .valid(let record) = answer, let wrongType = RecordCodec.typeUnknownToVersion(record, version: header.version) {
                throw damage(.payloadUndecodable(wrongType))
            }
            if case .valid(let record) = answer, lsn <= snapshotLSN {
                // The snapshot holds its effects: checked (framing and CRC), not decoded, but
                // for the names it gives, which later records of the segment use.
                do throws(WALDecodingError) {
                    try RecordCodec.learnNames(of: record, in: raw, names: &names)
                } catch {
                    throw damage(.payloadUndecodable(error))
                }
                offset = record.endOffset
                lsn += 1
                continue
            }
            if case .valid(let record) = answer {
                do throws(WALDecodingError) {
                    try RecordCodec.decode(record, in: raw, names: &names, into: &records)
                    records.logByteCount += record.endOffset - record.offset
                    // Handed over in small batches: a decoded commit is a large value, and a
                    // segment's worth at once is hundreds of megabytes of fresh pages.
                    if records.count == deliveryBatchCount {
                        deliver(records)
                        records = RecoveredBatch(segment: header.firstLSN, capacity: deliveryBatchCount)
                    }
                } catch {
                    throw damage(.payloadUndecodable(error))
                }
                offset = record.endOffset
                lsn += 1
                continue
            }
            // Row 8 first: a valid record after the end means bytes once written whole have changed.
            // A valid record has a non-zero length field, so none starts past the last non-zero
            // byte: the zero-filled rest of a preallocated segment is never scanned.
            let lastNonZero = lastNonZeroOffset(raw)
            if let lastNonZero, let valid = firstValidRecord(raw, after: offset, salt: header.salt, notAfter: lastNonZero) {
                throw damage(.damageBeforeValidRecord(answer, validRecordOffset: valid))
            }
            let dirty = lastNonZero.map { max(0, $0 + 1 - offset) } ?? 0
            switch answer {
            case .zero:
                // Row 4. Non-zero bytes after zeros, with no valid record among them, cannot be a
                // record; in the newest segment they are zeroed too, so that records written at
                // `offset` are followed by zeros again (with a warning, like a cut).
                return SegmentEnd(offset: offset, found: answer, dirtyByteCount: isNewest ? dirty : 0, nextLSN: lsn, names: names)
            case .torn, .corrupt(.lengthOutOfRange), .corrupt(.checksumMismatch):
                // Row 5, or row 6 outside the newest segment.
                guard isNewest else { throw damage(.tornInOlderSegment(answer)) }
                return SegmentEnd(offset: offset, found: answer, dirtyByteCount: dirty, nextLSN: lsn, names: names)
            case .corrupt(let d):
                assert(!d.couldBeTornWrite)
                throw damage(.recordInvalid(d))  // Row 7.
            case .valid:
                preconditionFailure("handled above")
            }
        }
        return SegmentEnd(offset: offset, found: nil, dirtyByteCount: 0, nextLSN: lsn, names: names)
    }

    /// The offset of the first record after `offset` that passes rules 1–5 (any LSN), if any: what tells
    /// a torn tail from damage in the middle. Candidates are filtered by their length and salt fields
    /// before the CRC is computed, so a scan over megabytes of zeros is a few loads per byte.
    static func firstValidRecord(_ bytes: UnsafeRawBufferPointer, after offset: Int, salt: UInt32, notAfter last: Int = .max) -> Int? {
        let header = WALRecord.headerByteCount
        var o = offset + 1
        while o + header <= bytes.count && o <= last {
            let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
            let recordSalt = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o + 16, as: UInt32.self))
            if recordSalt == salt && length >= 1 && Int(length) <= WALRecord.payloadByteCountMax
                && o + header + Int(length) <= bytes.count,
                case .valid = RecordCodec.decodeRecord(bytes, at: o, salt: salt, expectedLSN: nil)
            {
                return o
            }
            o += 1
        }
        return nil
    }

    /// The offset of the last non-zero byte, nil when every byte is zero.
    static func lastNonZeroOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var i = bytes.count
        // Eight bytes at a time over the zero-filled end of a segment.
        while i >= 8 && bytes.loadUnaligned(fromByteOffset: i - 8, as: UInt64.self) == 0 { i -= 8 }
        while i > 0 {
            if bytes[i - 1] != 0 { return i - 1 }
            i -= 1
        }
        return nil
    }
}
