// The append-only writer behind every encoder of wal/FORMAT.md. It keeps true: bytes are only ever
// appended (or patched in place at offsets already written), fixed-width integers are little-endian,
// and varints are minimal, so every value has exactly one encoding.

import StockpileCore

/// Appends little-endian integers, varints and length-prefixed strings to a byte buffer that is meant
/// to be reused: `reset()` keeps the capacity, so a writer that encodes record after record stops
/// allocating once its buffer has grown to the largest record.
public struct ByteWriter: Sendable {
    /// What has been written.
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// The number of bytes written.
    @inlinable public var count: Int { bytes.count }

    /// Forgets what was written and keeps the buffer's capacity.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    /// Makes room for `byteCount` more bytes without reallocating on the way.
    public mutating func reserveCapacity(additional byteCount: Int) {
        bytes.reserveCapacity(bytes.count + byteCount)
    }

    // MARK: Fixed width

    public mutating func writeUInt8(_ value: UInt8) {
        bytes.append(value)
    }

    public mutating func writeUInt16(_ value: UInt16) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeUInt32(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeUInt64(_ value: UInt64) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeInt64(_ value: Int64) {
        writeUInt64(UInt64(bitPattern: value))
    }

    /// Appends `count` zero bytes (reserved fields, placeholders patched later).
    public mutating func writeZeros(_ count: Int) {
        precondition(count >= 0, "a negative byte count")
        // Through a cursor: appending a `repeatElement` went element by element.
        write(upTo: count) { $0.putZeros(count) }
    }

    /// Overwrites four bytes already written at `offset` (a length or checksum known only after the
    /// bytes it describes).
    public mutating func setUInt32(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "patching bytes not yet written")
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self) }
    }

    // MARK: Variable width

    /// Unsigned LEB128 (`VarintEncoding.leb128`).
    public mutating func writeVarint(_ value: UInt64) {
        VarintEncoding.leb128(value) { bytes.append($0) }
    }

    /// ZigZag, then LEB128, so that small negative numbers (deltas) are as short as small positive ones.
    public mutating func writeSignedVarint(_ value: Int64) {
        writeVarint(VarintEncoding.zigZag(value))
    }

    public mutating func writeBool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    /// A presence byte: 1 when the optional that follows is present, 0 when it is absent.
    public mutating func writePresence(_ present: Bool) {
        bytes.append(present ? 1 : 0)
    }

    /// The UTF-8 byte count as a varint, then the bytes.
    public mutating func writeString(_ value: String) {
        // Read where the string keeps it (`withUTF8Bytes`), not appended byte by byte.
        withUTF8Bytes(of: value) { writeCounted($0) }
    }

    /// A string's bytes as `writeString` writes them: the byte count as a varint, then the bytes.
    mutating func writeCounted(_ utf8: UnsafeRawBufferPointer) {
        writeVarint(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    // MARK: Raw bytes

    public mutating func writeBytes(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    public mutating func writeBytes(_ raw: [UInt8]) {
        bytes.append(contentsOf: raw)
    }

    /// Appends at most `bound` bytes that `body` writes through a cursor, in one copy (`RawCursor`).
    @inline(__always)
    mutating func write(upTo bound: Int, _ body: (inout RawCursor) -> Void) {
        _ = RawCursor.write(upTo: bound, into: &bytes, body)
    }

    /// Lends the bytes written in `range` (to checksum them without copying).
    public func withUnsafeBytes<R>(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside what was written")
        return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
