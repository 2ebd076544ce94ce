// Record framing (wal/FORMAT.md §2.2): writes a record's header around its payload, and judges the
// bytes at an offset as a valid record, preallocated zeros, a torn write or damage. It keeps true:
// `decodeRecord` never traps and never reads outside the buffer whatever the bytes, and it answers
// `valid` only when rules 1–6 of "a record is valid if and only if" hold — so a damaged record is
// never taken for a different valid one.

import StockpileCore

/// Why the bytes at an offset are not a valid record although they are neither zeros nor cut short.
public enum RecordDamage: Hashable, Sendable, CustomStringConvertible {
    case lengthOutOfRange(UInt32)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case reservedNotZero
    case unknownType(UInt8)
    case saltMismatch(found: UInt32, expected: UInt32)
    case lsnOutOfSequence(found: UInt64, expected: UInt64)

    /// True for damage a torn write can leave: the CRC did not match, or the length was never written
    /// whole. The other kinds carry a matching CRC, which a torn write cannot produce (FORMAT.md §5 row 7).
    public var couldBeTornWrite: Bool {
        switch self {
        case .lengthOutOfRange, .checksumMismatch: true
        case .reservedNotZero, .unknownType, .saltMismatch, .lsnOutOfSequence: false
        }
    }

    public var description: String {
        switch self {
        case .lengthOutOfRange(let n): "length \(n) out of range 1...\(WALRecord.payloadByteCountMax)"
        case .checksumMismatch(let stored, let computed):
            "checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))"
        case .reservedNotZero: "reserved header bytes not zero"
        case .unknownType(let t): "unknown record type \(t)"
        case .saltMismatch(let found, let expected): "salt \(hex(found)) is not the segment's \(hex(expected))"
        case .lsnOutOfSequence(let found, let expected): "LSN \(found) where \(expected) was due"
        }
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}

/// What the bytes at an offset of a segment are.
public enum RecordDecoding: Hashable, Sendable {
    /// A record that passes the framing rules; its payload is still to be decoded (rule 7).
    case valid(WALRecord)
    /// Non-zero bytes that end before the header or the payload does.
    case torn
    /// Zeros (or nothing) where the next header would be: preallocated space, the log ends here.
    case zero
    case corrupt(RecordDamage)
}

public enum RecordCodec {
    /// Appends a record whose payload `writePayload` appends in place, then fills in the length and CRC.
    /// Encoding straight into the output buffer saves copying each payload once more.
    /// - Precondition: the payload is 1 ... `WALRecord.payloadByteCountMax` bytes (a commit larger than
    ///   that is a bug in the limits, caught before anything reaches the disk).
    public static func appendRecord(
        lsn: UInt64, type: WALRecordType, salt: UInt32, into writer: inout ByteWriter,
        payload writePayload: (inout ByteWriter) -> Void
    ) {
        let start = writer.count
        writer.write(upTo: WALRecord.headerByteCount) { header in
            header.skip(WALRecord.headerByteCount)
            storeHeader(lsn: lsn, type: type, salt: salt, payloadByteCount: 0, in: header)  // the length filled in below
        }
        writePayload(&writer)
        let payloadByteCount = writer.count - start - WALRecord.headerByteCount
        checkPayloadByteCount(payloadByteCount)
        writer.setUInt32(UInt32(payloadByteCount), at: start + 4)
        let crc = writer.withUnsafeBytes(in: start + 4..<writer.count) { CRC32C.checksum($0) }
        writer.setUInt32(crc, at: start)
        assertValid(writer, at: start, lsn: lsn, type: type, salt: salt, payloadByteCount: payloadByteCount)
    }

    /// `appendRecord` for a payload of at most `bound` bytes written through a cursor: header,
    /// payload, length and CRC made in one room and appended in one copy (a new reservation's record,
    /// one for each reservation the log's thread writes).
    static func appendRecord(
        lsn: UInt64, type: WALRecordType, salt: UInt32, into writer: inout ByteWriter, payloadUpTo bound: Int,
        _ writePayload: (inout RawCursor) -> Void
    ) {
        let start = writer.count
        var payloadByteCount = 0
        writer.write(upTo: WALRecord.headerByteCount + bound) { record in
            record.skip(WALRecord.headerByteCount)
            writePayload(&record)
            payloadByteCount = record.count - WALRecord.headerByteCount
            checkPayloadByteCount(payloadByteCount)
            storeHeader(lsn: lsn, type: type, salt: salt, payloadByteCount: payloadByteCount, in: record)
            record.store(CRC32C.checksum(UnsafeRawBufferPointer(start: record.start + 4, count: record.count - 4)), at: 0)
        }
        assertValid(writer, at: start, lsn: lsn, type: type, salt: salt, payloadByteCount: payloadByteCount)
    }

    /// The header's fields but for the CRC (§2.2): the length, the LSN, the salt, the type and three
    /// zero bytes.
    @inline(__always)
    private static func storeHeader(lsn: UInt64, type: WALRecordType, salt: UInt32, payloadByteCount: Int, in record: RawCursor) {
        record.store(UInt32(payloadByteCount), at: 4)
        record.store(lsn, at: 8)
        record.store(salt, at: 16)
        record.store(UInt32(type.rawValue), at: 20)
    }

    @inline(__always)
    private static func checkPayloadByteCount(_ payloadByteCount: Int) {
        precondition(
            payloadByteCount >= 1 && payloadByteCount <= WALRecord.payloadByteCountMax,
            "a record payload of \(payloadByteCount) bytes is outside 1...\(WALRecord.payloadByteCountMax)")
    }

    /// Reads back what will go to disk (debug builds and tests): the framing must judge it valid.
    @inline(__always)
    private static func assertValid(_ writer: ByteWriter, at start: Int, lsn: UInt64, type: WALRecordType, salt: UInt32, payloadByteCount: Int) {
        assert(
            writer.bytes.withUnsafeBytes { decodeRecord($0, at: start, salt: salt, expectedLSN: lsn) }
                == .valid(WALRecord(lsn: lsn, type: type, offset: start, payloadByteCount: payloadByteCount)))
    }

    /// Appends a record carrying `payload`.
    public static func encodeRecord(
        lsn: UInt64, type: WALRecordType, salt: UInt32, payload: [UInt8], into writer: inout ByteWriter
    ) {
        appendRecord(lsn: lsn, type: type, salt: salt, into: &writer) { $0.writeBytes(payload) }
    }

    /// Appends a `commit` record: the generic form, whatever the commit.
    public static func appendCommit(_ commit: Commit, lsn: UInt64, salt: UInt32, into writer: inout ByteWriter) {
        appendRecord(lsn: lsn, type: .commit, salt: salt, into: &writer) { CommitCodec.encode(commit, into: &$0) }
    }

    /// Appends `commit` as the writer of a segment does: a `reservation` record when the commit is one
    /// (naming its cell and actor in `names` if the segment has not yet), a `commit` record otherwise.
    public static func appendCommit(_ commit: Commit, lsn: UInt64, salt: UInt32, names: inout SegmentNames, into writer: inout ByteWriter) {
        guard let compact = CompactReservation(commit) else {
            appendCommit(commit, lsn: lsn, salt: salt, into: &writer)
            return
        }
        appendReservation(compact, lsn: lsn, salt: salt, names: &names, into: &writer)
    }

    /// Appends a `reservation` record of `fields` (naming its cell and actor in `names` if the segment
    /// has not yet). `place`: where the engine keeps the record's cell, when it says (`CellPlace`).
    public static func appendReservation(
        _ fields: CompactReservation, lsn: UInt64, salt: UInt32, names: inout SegmentNames, place: CellPlace? = nil, into writer: inout ByteWriter
    ) {
        appendRecord(lsn: lsn, type: .reservation, salt: salt, into: &writer) { fields.encode(into: &$0, names: &names, place: place) }
    }

    /// Appends `body` as the writer of a segment does (`appendCommit` for a commit).
    public static func appendBody(_ body: WALRecord.Body, lsn: UInt64, salt: UInt32, names: inout SegmentNames, into writer: inout ByteWriter) {
        switch body {
        case .commit(let c): appendCommit(c, lsn: lsn, salt: salt, names: &names, into: &writer)
        case .keyUse(let k): appendKeyUse(k, lsn: lsn, salt: salt, into: &writer)
        }
    }

    /// Appends a `keyUse` record.
    public static func appendKeyUse(_ keyUse: KeyUse, lsn: UInt64, salt: UInt32, into writer: inout ByteWriter) {
        appendRecord(lsn: lsn, type: .keyUse, salt: salt, into: &writer) { CommitCodec.encode(keyUse, into: &$0) }
    }

    /// Judges the bytes at `offset` of a segment (`bytes` is the segment from its start, or any buffer
    /// whose offsets should appear in the answer).
    /// - Parameters:
    ///   - salt: the segment header's salt.
    ///   - expectedLSN: the LSN the record must carry; nil skips that rule (a scan for any valid record).
    /// - Returns: never traps, whatever the bytes. Cost: one CRC over the record.
    public static func decodeRecord(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, salt: UInt32, expectedLSN: UInt64?
    ) -> RecordDecoding {
        precondition(offset >= 0 && offset <= bytes.count, "offset \(offset) outside a buffer of \(bytes.count) bytes")
        let remaining = bytes.count - offset
        let header = WALRecord.headerByteCount
        let window = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + min(remaining, header)])
        if window.allSatisfy({ $0 == 0 }) { return .zero }
        if remaining < header { return .torn }

        func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + at, as: T.self))
        }
        let storedCRC = load(0, UInt32.self)
        let length = load(4, UInt32.self)
        guard length >= 1 && Int(length) <= WALRecord.payloadByteCountMax else { return .corrupt(.lengthOutOfRange(length)) }
        guard remaining - header >= Int(length) else { return .torn }
        let covered = UnsafeRawBufferPointer(rebasing: bytes[offset + 4..<offset + header + Int(length)])
        let computedCRC = CRC32C.checksum(covered)
        guard computedCRC == storedCRC else { return .corrupt(.checksumMismatch(stored: storedCRC, computed: computedCRC)) }
        // From here on the CRC matched: the bytes are as some writer wrote them, and a failure is not a
        // torn write but a foreign or misplaced record, or a writer of another version.
        guard load(21, UInt8.self) == 0 && load(22, UInt16.self) == 0 else { return .corrupt(.reservedNotZero) }
        let typeCode = load(20, UInt8.self)
        guard let type = WALRecordType(rawValue: typeCode) else { return .corrupt(.unknownType(typeCode)) }
        let recordSalt = load(16, UInt32.self)
        guard recordSalt == salt else { return .corrupt(.saltMismatch(found: recordSalt, expected: salt)) }
        let lsn = load(8, UInt64.self)
        if let expectedLSN, lsn != expectedLSN { return .corrupt(.lsnOutOfSequence(found: lsn, expected: expectedLSN)) }
        return .valid(WALRecord(lsn: lsn, type: type, offset: offset, payloadByteCount: Int(length)))
    }

    /// Judges the bytes at `offset` of `bytes`; see the other overload.
    public static func decodeRecord(_ bytes: [UInt8], at offset: Int, salt: UInt32, expectedLSN: UInt64?) -> RecordDecoding {
        bytes.withUnsafeBytes { decodeRecord($0, at: offset, salt: salt, expectedLSN: expectedLSN) }
    }

    /// Decodes the payload of `record` (rule 7), found in `bytes` by `decodeRecord`. `names` are the
    /// names its segment gave before it (FORMAT.md §3.8); a `reservation` record adds to them.
    /// - Parameter baseOffset: where `bytes` starts in the file, so that errors name file offsets.
    /// - Throws: `WALDecodingError` when the payload is not exactly one value of the record's type.
    public static func decodeBody(
        of record: WALRecord, in bytes: UnsafeRawBufferPointer, baseOffset: Int = 0, names: inout SegmentNames
    ) throws(WALDecodingError) -> WALRecord.Body {
        if record.type == .reservation { return .commit(try decodeReservation(record, in: bytes, baseOffset: baseOffset, names: &names).commit) }
        precondition(record.endOffset <= bytes.count, "a record outside the buffer it was decoded from")
        let payload = UnsafeRawBufferPointer(rebasing: bytes[record.payloadRange])
        var reader = ByteReader(payload, baseOffset: baseOffset + record.payloadOffset)
        let body: WALRecord.Body
        switch record.type {
        case .commit: body = .commit(try CommitCodec.decode(from: &reader))
        case .keyUse: body = .keyUse(try CommitCodec.decodeKeyUse(from: &reader))
        case .reservation: preconditionFailure("decoded above")
        }
        try reader.expectEnd()
        return body
    }

    /// The fields of a `reservation` record (its whole payload), learning the names it gives.
    private static func decodeReservation(
        _ record: WALRecord, in bytes: UnsafeRawBufferPointer, baseOffset: Int = 0, names: inout SegmentNames
    ) throws(WALDecodingError) -> CompactReservation {
        var cellHash: UInt64 = 0
        var cellNumber = 0
        return try decodeReservation(record, in: bytes, baseOffset: baseOffset, names: &names, cellHash: &cellHash, cellNumber: &cellNumber)
    }

    /// `decodeReservation`, also setting `cellHash` to its cell's `CellKey.stableHash` and `cellNumber`
    /// to the number the segment gave the cell.
    private static func decodeReservation(
        _ record: WALRecord, in bytes: UnsafeRawBufferPointer, baseOffset: Int = 0, names: inout SegmentNames, cellHash: inout UInt64,
        cellNumber: inout Int
    ) throws(WALDecodingError) -> CompactReservation {
        precondition(record.type == .reservation && record.endOffset <= bytes.count, "a reservation record inside the buffer")
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[record.payloadRange]), baseOffset: baseOffset + record.payloadOffset)
        let fields = try CompactReservation.decode(from: &reader, names: &names, cellHash: &cellHash, cellNumber: &cellNumber)
        try reader.expectEnd()
        return fields
    }

    /// `decodeBody` for recovery, into `batch`: a `reservation` record is kept as its fields, without
    /// building the commit they stand for (replay applies the fields).
    static func decode(
        _ record: WALRecord, in bytes: UnsafeRawBufferPointer, names: inout SegmentNames, into batch: inout RecoveredBatch
    ) throws(WALDecodingError) {
        guard record.type == .reservation else {
            batch.append(RecoveredRecord(lsn: record.lsn, body: try decodeBody(of: record, in: bytes, names: &names), type: record.type))
            return
        }
        var cellHash: UInt64 = 0
        var cellNumber = 0
        let fields = try decodeReservation(record, in: bytes, names: &names, cellHash: &cellHash, cellNumber: &cellNumber)
        batch.append(reservation: consume fields, lsn: record.lsn, cellHash: cellHash, cellNumber: cellNumber)
    }

    /// Decodes the payload of `record`, found in `bytes` by `decodeRecord`, with its segment's `names`.
    public static func decodeBody(of record: WALRecord, in bytes: [UInt8], names: inout SegmentNames) throws(WALDecodingError) -> WALRecord.Body {
        let result: Result<WALRecord.Body, WALDecodingError> = bytes.withUnsafeBytes { raw in
            Result { () throws(WALDecodingError) -> WALRecord.Body in try decodeBody(of: record, in: raw, names: &names) }
        }
        return try result.get()
    }

    /// The damage of a record whose type its segment's version never wrote (a `reservation` record in a
    /// version 1 or 2 segment), or nil.
    public static func typeUnknownToVersion(_ record: WALRecord, version: UInt16) -> WALDecodingError? {
        guard record.type == .reservation, version < 3 else { return nil }
        return WALDecodingError(
            offset: record.offset, reason: .inconsistent("a reservation record in a version \(version) segment, which has no such records"))
    }

    /// Learns the names `record` gives, without building what it records: a reader passing over the
    /// records a snapshot already holds still needs the names the later ones use.
    public static func learnNames(of record: WALRecord, in bytes: UnsafeRawBufferPointer, names: inout SegmentNames) throws(WALDecodingError) {
        guard record.type == .reservation else { return }
        _ = try decodeReservation(record, in: bytes, names: &names)
    }
}
