// The 40-byte header at the start of every log segment, and the segment's file name (wal/FORMAT.md
// §1, §2.1). It keeps true: `decode(encode(h)) == h`, a header decodes only if every field is as
// FORMAT.md says (magic, version, byte count, reserved zeros, CRC, first LSN ≥ 1), and a file name
// and a first LSN convert both ways.

import StockpileCore

/// Why a segment header is not valid (recovery refuses to start, naming the file: FORMAT.md §5 row 2).
public enum SegmentHeaderDamage: Error, Hashable, Sendable {
    case truncated(byteCount: Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case badHeaderByteCount(UInt16)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case reservedNotZero
    case firstLSNZero
}

public struct SegmentHeader: Hashable, Sendable {
    /// `\x89SPWAL\r\n`: a high first byte, so no text file looks like a segment, and CR LF, so a newline
    /// translation on the way is caught.
    public static let magic: [UInt8] = [0x89, 0x53, 0x50, 0x57, 0x41, 0x4C, 0x0D, 0x0A]
    /// The version written. Version 2 added keys to four commands and a reservation status code;
    /// version 3 the compact `reservation` record (FORMAT.md, "Versions"). Every older file is also a
    /// valid file of the newer versions, so all three are read.
    public static let formatVersion: UInt16 = 3
    public static let readableVersions: ClosedRange<UInt16> = 1...3
    public static let byteCount = 40

    /// The format version the segment was written in: `formatVersion` for a header made here, what the
    /// file says for one read back. A writer appends only to a segment of its own version.
    public var version: UInt16
    /// Random per segment; every record of the segment repeats it.
    public var salt: UInt32
    /// The LSN of the segment's first record (≥ 1), also in its file name.
    public var firstLSN: UInt64
    public var createdAt: Timestamp

    public init(salt: UInt32, firstLSN: UInt64, createdAt: Timestamp, version: UInt16 = SegmentHeader.formatVersion) {
        precondition(firstLSN >= 1, "LSNs start at 1")
        precondition(Self.readableVersions.contains(version), "a header of an unknown version")
        self.version = version
        self.salt = salt
        self.firstLSN = firstLSN
        self.createdAt = createdAt
    }

    /// Appends the 40 header bytes.
    public func encode(into writer: inout ByteWriter) {
        let start = writer.count
        writer.writeBytes(Self.magic)
        writer.writeUInt16(version)
        writer.writeUInt16(UInt16(Self.byteCount))
        writer.writeUInt32(salt)
        writer.writeUInt64(firstLSN)
        writer.writeInt64(createdAt.milliseconds)
        writer.writeZeros(4)
        let crc = writer.withUnsafeBytes(in: start..<writer.count) { CRC32C.checksum($0) }
        writer.writeUInt32(crc)
        assert(writer.count - start == Self.byteCount)
    }

    /// Reads a header from the first 40 bytes of `bytes`.
    /// - Throws: `SegmentHeaderDamage` naming the first field that is wrong.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(SegmentHeaderDamage) -> SegmentHeader {
        guard bytes.count >= byteCount else { throw .truncated(byteCount: bytes.count) }
        guard bytes.prefix(magic.count).elementsEqual(magic) else { throw .badMagic }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        // The version is checked before the CRC: a header of a later version may lay its CRC out differently,
        // and "unsupported version" is the message that helps the operator.
        guard readableVersions.contains(u16(8)) else { throw .unsupportedVersion(u16(8)) }
        guard u16(10) == UInt16(byteCount) else { throw .badHeaderByteCount(u16(10)) }
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<36]))
        guard u32(36) == computed else { throw .checksumMismatch(stored: u32(36), computed: computed) }
        guard u32(32) == 0 else { throw .reservedNotZero }
        guard u64(16) >= 1 else { throw .firstLSNZero }
        return SegmentHeader(salt: u32(12), firstLSN: u64(16), createdAt: Timestamp(milliseconds: Int64(bitPattern: u64(24))), version: u16(8))
    }

    /// Reads a header from the first 40 bytes of `bytes`.
    public static func decode(_ bytes: [UInt8]) throws(SegmentHeaderDamage) -> SegmentHeader {
        let result: Result<SegmentHeader, SegmentHeaderDamage> = bytes.withUnsafeBytes { raw in
            Result { () throws(SegmentHeaderDamage) -> SegmentHeader in try decode(raw) }
        }
        return try result.get()
    }

    // MARK: File names

    /// `wal-<first LSN as 16 lower-case hex digits>.log`: names sort in log order.
    public static func fileName(firstLSN: UInt64) -> String {
        let hex = String(firstLSN, radix: 16)
        return "wal-" + String(repeating: "0", count: 16 - hex.utf8.count) + hex + ".log"
    }

    /// The segments among a directory's file `names`, with the first LSN each name states, in LSN
    /// order (other names left out).
    public static func segments(among names: [String]) -> [(name: String, firstLSN: UInt64)] {
        names.compactMap { name in firstLSN(fromFileName: name).map { (name: name, firstLSN: $0) } }.sorted { $0.firstLSN < $1.firstLSN }
    }

    /// The first LSN a segment's file name states, or nil when the name is not a segment's.
    public static func firstLSN(fromFileName name: String) -> UInt64? {
        let utf8 = Array(name.utf8)
        guard utf8.count == 24, utf8.starts(with: "wal-".utf8), utf8.suffix(4).elementsEqual(".log".utf8) else { return nil }
        let digits = utf8[4..<20]
        // Exactly the form `fileName` writes: lower-case hex, so one LSN has one name.
        guard digits.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self), radix: 16)
    }
}
