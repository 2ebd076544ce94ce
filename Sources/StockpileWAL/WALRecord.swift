// One record of a log segment, as wal/FORMAT.md §2.2 lays it out: a 24-byte header (CRC-32C, payload
// length, LSN, salt, type) and a payload. It keeps true: a `WALRecord` value exists only for bytes that
// passed the validity rule's framing checks (rules 1–6), and its offsets lie inside those bytes.

import StockpileCore

/// The record types of FORMAT.md §2.3. The raw values are the codes on disk: never renumbered.
public enum WALRecordType: UInt8, Hashable, Sendable, CaseIterable {
    /// One `Commit`: everything one operation changed.
    case commit = 1
    /// One `KeyUse`: a KEY used by a success that changed nothing.
    case keyUse = 2
    // 3 is reserved for a checkpoint marker (FORMAT.md §2.3); versions 1 to 3 write none.
    /// A new one-line reservation, written compactly with the segment's names (FORMAT.md §3.8, version 3).
    case reservation = 4
}

/// A record whose framing was checked, located in the buffer it was read from.
public struct WALRecord: Hashable, Sendable {
    /// The header: CRC (4), length (4), LSN (8), salt (4), type (1), reserved (3).
    public static let headerByteCount = 24
    /// The largest payload a record may carry. It bounds what a damaged length can make a reader look
    /// at, and is far above the commits the limits produce in practice (FORMAT.md §2.2, open question).
    public static let payloadByteCountMax = 16 << 20

    public var lsn: UInt64
    public var type: WALRecordType
    /// Where the record (its header) starts in the buffer it was decoded from.
    public var offset: Int
    public var payloadByteCount: Int

    public init(lsn: UInt64, type: WALRecordType, offset: Int, payloadByteCount: Int) {
        self.lsn = lsn
        self.type = type
        self.offset = offset
        self.payloadByteCount = payloadByteCount
    }

    public var payloadOffset: Int { offset + Self.headerByteCount }
    /// The offset just past the record: where the next one starts.
    public var endOffset: Int { payloadOffset + payloadByteCount }
    public var payloadRange: Range<Int> { payloadOffset..<endOffset }

    /// A record's decoded payload.
    public enum Body: Hashable, Sendable {
        case commit(Commit)
        case keyUse(KeyUse)
    }
}
