// The reader behind every decoder of wal/FORMAT.md. It keeps true: no input can make it trap or read
// outside its buffer — every read checks what remains first, counts and lengths are checked against
// the bytes that remain before anything is allocated for them, and a failure is a thrown
// `WALDecodingError` carrying the offset where the failing value starts.

/// Why bytes could not be decoded, and where.
public struct WALDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// The value needs more bytes than remain.
        case truncated(needed: Int, remaining: Int)
        /// A varint runs past ten bytes, or its tenth byte carries bits beyond 64.
        case varintOverflow
        /// A varint with a redundant trailing zero group: valid LEB128, but not the one encoding we write.
        case varintNotMinimal
        /// A count or byte length larger than the bytes that remain could hold.
        case countTooLarge(UInt64)
        case invalidUTF8
        /// A `bool` byte other than 0 or 1.
        case invalidBool(UInt8)
        /// A presence byte other than 0 or 1.
        case invalidPresence(UInt8)
        /// A byte that is not a code of the named table.
        case unknownCode(table: String, code: UInt8)
        /// A value that decodes but is not in the canonical form the encoder writes.
        case nonCanonical(String)
        /// Fields that decode one by one but do not make a whole (a reply shape without its value).
        case inconsistent(String)
        /// Bytes left over after the value that should have filled the buffer.
        case trailingBytes(Int)
    }

    /// The offset of the value that failed: from the start of the file when the reader was given the
    /// buffer's offset in the file, else from the start of the buffer.
    public var offset: Int
    public var reason: Reason

    public init(offset: Int, reason: Reason) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "cannot decode at offset \(offset): \(reason)" }
}

/// Reads the values of wal/FORMAT.md from borrowed bytes, front to back.
///
/// The reader borrows its buffer: use it only while the buffer is alive, inside the `withUnsafeBytes`
/// (or `withReader`) that lent it. Every read either returns a value and moves past it, or throws and
/// leaves the position where the value started.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    /// The position of the next read, from the start of `bytes`.
    public private(set) var position: Int
    /// Where `bytes` starts in the file, so errors can name file offsets.
    public let baseOffset: Int

    public init(_ bytes: UnsafeRawBufferPointer, baseOffset: Int = 0) {
        self.bytes = bytes
        self.position = 0
        self.baseOffset = baseOffset
    }

    /// Runs `body` with a reader over `bytes[range]`, whose offsets are the array's.
    public static func withReader<R>(
        over bytes: [UInt8], range: Range<Int>, _ body: (inout ByteReader) throws(WALDecodingError) -> R
    ) throws(WALDecodingError) -> R {
        try withReader(over: bytes, range: range, baseOffset: range.lowerBound, body)
    }

    /// Runs `body` with a reader over `bytes`.
    public static func withReader<R>(
        over bytes: [UInt8], baseOffset: Int = 0, _ body: (inout ByteReader) throws(WALDecodingError) -> R
    ) throws(WALDecodingError) -> R {
        try withReader(over: bytes, range: bytes.indices, baseOffset: baseOffset, body)
    }

    /// A reader over `bytes[range]`, whose first byte is at `baseOffset` in the file.
    private static func withReader<R>(
        over bytes: [UInt8], range: Range<Int>, baseOffset: Int, _ body: (inout ByteReader) throws(WALDecodingError) -> R
    ) throws(WALDecodingError) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "a range within the bytes")
        // `Array.withUnsafeBytes` rethrows untyped errors, so the typed error travels out in a `Result`.
        let result: Result<R, WALDecodingError> = bytes.withUnsafeBytes { raw in
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw[range]), baseOffset: baseOffset)
            return Result { () throws(WALDecodingError) -> R in try body(&reader) }
        }
        return try result.get()
    }

    @inlinable public var remaining: Int { bytes.count - position }
    @inlinable public var isAtEnd: Bool { position == bytes.count }
    /// The file offset of the next read.
    @inlinable public var offset: Int { baseOffset + position }

    /// An error at the current position.
    public func failure(_ reason: WALDecodingError.Reason) -> WALDecodingError {
        WALDecodingError(offset: offset, reason: reason)
    }

    /// An error at `position` (the start of a value already partly read).
    public func failure(_ reason: WALDecodingError.Reason, at position: Int) -> WALDecodingError {
        WALDecodingError(offset: baseOffset + position, reason: reason)
    }

    private func require(_ byteCount: Int) throws(WALDecodingError) {
        if byteCount > remaining { throw failure(.truncated(needed: byteCount, remaining: remaining)) }
    }

    // MARK: Fixed width

    public mutating func readUInt8() throws(WALDecodingError) -> UInt8 {
        try require(1)
        let v = bytes[position]
        position += 1
        return v
    }

    public mutating func readUInt16() throws(WALDecodingError) -> UInt16 {
        try require(2)
        let v = bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self)
        position += 2
        return UInt16(littleEndian: v)
    }

    public mutating func readUInt32() throws(WALDecodingError) -> UInt32 {
        try require(4)
        let v = bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)
        position += 4
        return UInt32(littleEndian: v)
    }

    public mutating func readUInt64() throws(WALDecodingError) -> UInt64 {
        try require(8)
        let v = bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self)
        position += 8
        return UInt64(littleEndian: v)
    }

    public mutating func readInt64() throws(WALDecodingError) -> Int64 {
        Int64(bitPattern: try readUInt64())
    }

    // MARK: Variable width

    /// Unsigned LEB128, at most ten bytes, and minimal (see `WALDecodingError.Reason.varintNotMinimal`).
    /// A value below 128, one byte and most of a record's numbers, is read inline.
    @inline(__always) public mutating func readVarint() throws(WALDecodingError) -> UInt64 {
        if position < bytes.count {
            let byte = bytes[position]
            if byte & 0x80 == 0 {
                position += 1
                return UInt64(byte)
            }
            // Two bytes, the second neither continued nor a redundant zero group: most figures.
            if position + 1 < bytes.count {
                let next = bytes[position + 1]
                if next & 0x80 == 0 && next != 0 {
                    position += 2
                    return UInt64(byte & 0x7F) | UInt64(next) << 7
                }
            }
        }
        return try readLongVarint()
    }

    /// `readVarint` of a value of two bytes or more, or of none left.
    @inline(never) private mutating func readLongVarint() throws(WALDecodingError) -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var i = position
        while true {
            guard i < bytes.count else {
                throw failure(.truncated(needed: i - start + 1, remaining: bytes.count - start), at: start)
            }
            let byte = bytes[i]
            i += 1
            // The tenth byte holds bit 63 only; anything more would not fit in 64 bits.
            if shift == 63 && byte > 1 { throw failure(.varintOverflow, at: start) }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                // A last group of zero is redundant unless it is the only one (the value 0).
                if byte == 0 && i - start > 1 { throw failure(.varintNotMinimal, at: start) }
                position = i
                return value
            }
            shift += 7
        }
    }

    /// ZigZag-decoded LEB128.
    public mutating func readSignedVarint() throws(WALDecodingError) -> Int64 {
        VarintEncoding.unZigZag(try readVarint())
    }

    public mutating func readBool() throws(WALDecodingError) -> Bool {
        try readFlag(orFail: WALDecodingError.Reason.invalidBool)
    }

    /// A presence byte: true when the optional value follows.
    public mutating func readPresence() throws(WALDecodingError) -> Bool {
        try readFlag(orFail: WALDecodingError.Reason.invalidPresence)
    }

    /// A byte that must be exactly 0 or 1; any other value is refused at its own offset.
    private mutating func readFlag(orFail reason: (UInt8) -> WALDecodingError.Reason) throws(WALDecodingError) -> Bool {
        let byte = try readUInt8()
        switch byte {
        case 0: return false
        case 1: return true
        default:
            position -= 1
            throw failure(reason(byte))
        }
    }

    /// A count of elements that each take at least one byte, so it can be no more than what remains:
    /// a damaged count is refused here instead of reserving memory for it.
    public mutating func readCount() throws(WALDecodingError) -> Int {
        let start = position
        let n = try readVarint()
        guard n <= UInt64(remaining) else {
            position = start
            throw failure(.countTooLarge(n))
        }
        return Int(n)
    }

    /// A varint byte count, then that many bytes of valid UTF-8.
    public mutating func readString() throws(WALDecodingError) -> String {
        let start = position
        let n = try readCount()
        if n == 0 { return "" }
        let utf8 = UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
        // ASCII (nearly every name) needs no validation beyond the high bits; the general
        // validating initializer is several times slower, which start-up pays per string.
        if !utf8.contains(where: { $0 >= 0x80 }) {
            position += n
            return String(decoding: utf8, as: UTF8.self)
        }
        guard let s = String(validating: utf8, as: UTF8.self) else {
            position = start
            throw failure(.invalidUTF8)
        }
        position += n
        return s
    }

    // MARK: Raw bytes

    /// The next `byteCount` bytes, borrowed from the buffer.
    public mutating func readBytes(_ byteCount: Int) throws(WALDecodingError) -> UnsafeRawBufferPointer {
        precondition(byteCount >= 0, "a negative byte count")
        try require(byteCount)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<position + byteCount])
        position += byteCount
        return slice
    }

    /// Fails unless every byte has been read: a payload must decode to exactly its length.
    public func expectEnd() throws(WALDecodingError) {
        if remaining != 0 { throw failure(.trailingBytes(remaining)) }
    }
}
