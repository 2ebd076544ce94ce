// The log's and the snapshot's variable-width integers (FORMAT.md §2): unsigned LEB128, and ZigZag for
// signed values. One encoding for every writer: `ByteWriter` appends the bytes to its array, and
// `RawCursor` stores them in the room it was lent; each passes its own `put`, inlined away.

enum VarintEncoding {
    /// Unsigned LEB128: seven bits per byte, least significant group first; minimal by construction.
    @inline(__always)
    static func leb128(_ value: UInt64, _ put: (UInt8) -> Void) {
        var v = value
        while v >= 0x80 {
            put(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        put(UInt8(truncatingIfNeeded: v))
    }

    /// ZigZag: 0, -1, 1, -2, … as 0, 1, 2, 3, …, so that small negative numbers (deltas) take as few
    /// LEB128 bytes as small positive ones.
    @inline(__always)
    static func zigZag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    /// The value `zigZag` made `encoded` from.
    @inline(__always)
    static func unZigZag(_ encoded: UInt64) -> Int64 {
        Int64(bitPattern: (encoded >> 1) ^ (0 &- (encoded & 1)))
    }
}
