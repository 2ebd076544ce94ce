// Writing a record's fields through a pointer: the encodings of `ByteWriter` (LEB128 varints, ZigZag for
// signed ones, strings as a varint count and their UTF-8), into room on the stack that is appended to
// the output in one copy (`write(upTo:into:)`). A record written field by field to an array checked the
// array's uniqueness and capacity at every field; a snapshot writes millions of records, the log's
// thread one per reservation. Every write is checked against the end of the room.

import StockpileCore

struct RawCursor {
    /// Where the room starts: `store(_:at:)` offsets count from here.
    let start: UnsafeMutableRawPointer
    private(set) var at: UnsafeMutableRawPointer
    private let end: UnsafeMutableRawPointer

    private init(_ room: UnsafeMutableRawBufferPointer) {
        start = room.baseAddress!
        at = start
        end = start + room.count
    }

    /// Lets `body` write at most `bound` bytes, then appends them to `out` at once; returns how many.
    @inline(__always)
    static func write(upTo bound: Int, into out: inout [UInt8], _ body: (inout RawCursor) -> Void) -> Int {
        withUnsafeTemporaryAllocation(byteCount: Swift.max(bound, 1), alignment: 8) { room in
            var cursor = RawCursor(room)
            body(&cursor)
            out.append(contentsOf: UnsafeRawBufferPointer(start: cursor.start, count: cursor.count))
            return cursor.count
        }
    }

    /// The bytes written so far.
    var count: Int { at - start }

    @inline(__always)
    private mutating func claim(_ byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(end - at >= byteCount, "a record longer than the room made for it")
        defer { at += byteCount }
        return at
    }

    /// Passes over `byteCount` bytes, to be written with `store(_:at:)` before the room is appended.
    @inline(__always)
    mutating func skip(_ byteCount: Int) {
        _ = claim(byteCount)
    }

    @inline(__always)
    mutating func putZeros(_ byteCount: Int) {
        claim(byteCount).initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    /// Writes `value` little-endian at `offset` of what was written (or passed over) already.
    @inline(__always)
    func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "a store outside what was written")
        start.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    @inline(__always)
    mutating func putByte(_ byte: UInt8) {
        claim(1).storeBytes(of: byte, as: UInt8.self)
    }

    @inline(__always)
    mutating func putVarint(_ value: UInt64) {
        VarintEncoding.leb128(value) { putByte($0) }
    }

    /// ZigZag, then LEB128 (`ByteWriter.writeSignedVarint`).
    @inline(__always)
    mutating func putSigned(_ value: Int64) {
        putVarint(VarintEncoding.zigZag(value))
    }

    /// A duration as `ByteWriter.write(_: Duration)` writes it: seconds, then attoseconds.
    @inline(__always)
    mutating func put(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        putSigned(seconds)
        putSigned(attoseconds)
    }

    /// A presence byte, then the value when present (`ByteWriter.writeOptional`).
    @inline(__always)
    mutating func putOptional<T>(_ value: T?, _ put: (inout RawCursor, T) -> Void) {
        if let value {
            putByte(1)
            put(&self, value)
        } else {
            putByte(0)
        }
    }

    @inline(__always)
    mutating func putBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        claim(bytes.count).copyMemory(from: source, byteCount: bytes.count)
    }

    /// `text`'s UTF-8, read where the string keeps it.
    @inline(__always)
    mutating func put(_ text: String) {
        withUTF8Bytes(of: text) { putBytes($0) }
    }

    @inline(__always)
    mutating func putCounted(_ bytes: UnsafeRawBufferPointer) {
        putVarint(UInt64(bytes.count))
        putBytes(bytes)
    }

    /// `text` as `ByteWriter.writeString` writes it.
    @inline(__always)
    mutating func putCounted(_ text: String) {
        withUTF8Bytes(of: text) { putCounted($0) }
    }
}
