// CRC-32C (Castagnoli), the checksum of every WAL record, segment header and snapshot (wal/FORMAT.md).
// It keeps true: `update(update(0, a), b) == checksum(a + b)` for any split, and the result is the
// standard CRC-32C (reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF), so any
// other implementation — SSE 4.2, zlib-style tools — agrees with the files we write.

import CStockpileLinux

/// CRC-32C: with SSE 4.2's CRC32 instruction where the CPU has it, otherwise eight bytes at a time
/// ("slicing-by-8") from tables built once per process. Both give the same result (a test checks it).
///
/// Incremental use starts from 0 (the CRC of no bytes) and feeds each piece to `update`:
/// ```
/// var crc: UInt32 = 0
/// crc = CRC32C.update(crc, header)
/// crc = CRC32C.update(crc, payload)   // == CRC32C.checksum(header + payload)
/// ```
public enum CRC32C {
    /// The Castagnoli polynomial 0x1EDC6F41, bit-reflected (the CRC is computed least significant bit first).
    public static let polynomialReflected: UInt32 = 0x82F6_3B78

    /// `tables[k * 256 + b]` is the CRC register after feeding byte `b` followed by `k` zero bytes,
    /// starting from a zero register. Slicing-by-8 combines eight such lookups to advance the register
    /// by eight bytes at once, instead of one table lookup and a dependent shift per byte. 8 KiB, built
    /// lazily and once (a `static let` is initialised exactly once, thread-safely).
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomialReflected : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    /// True when the CPU has the CRC32 instruction (checked once per process).
    public static let usesHardware = stockpile_crc32c_hardware_available() == 1

    /// The CRC-32C of `bytes`. Cost: linear; with the instruction several GB/s, with the tables about
    /// 1.6 GB/s on the 2-core development machine (`swiftc -O`).
    @inlinable public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    /// The CRC-32C of `bytes`.
    @inlinable public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        update(0, bytes)
    }

    /// Continues a CRC: given the CRC of some bytes `a` (0 for none), returns the CRC of `a` followed by `bytes`.
    @inlinable public static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(crc, $0) }
    }

    /// Continues a CRC over a slice of an array.
    @inlinable public static func update(_ crc: UInt32, _ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBytes { update(crc, $0) }
    }

    /// Continues a CRC: given the CRC of some bytes `a` (0 for none), returns the CRC of `a` followed by `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return updateByTables(crc, bytes) }
        return ~stockpile_crc32c_hardware(~crc, base, bytes.count)
    }

    /// `update` by the slicing-by-8 tables alone: the fallback, and the reference the tests compare the
    /// instruction against.
    public static func updateByTables(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        // The register holds the complement of the CRC between calls' worth of bytes: undoing the final
        // xor here and redoing it at the end is what makes the calls compose.
        var c = ~crc
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return crc }
        tables.withUnsafeBufferPointer { table in
            // In an optimised build neither pointer access below is bounds-checked; the loop bounds
            // keep every access inside `bytes`, and every table index is below 8 * 256 by its mask.
            var i = 0
            // The last offset at which eight whole bytes remain, rounded so the loop test cannot overflow.
            let wordsEnd = count & ~7
            while i < wordsEnd {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: word) ^ c
                let hi = UInt32(truncatingIfNeeded: word &>> 32)
                c = table[7 * 256 + Int(lo & 0xFF)] ^ table[6 * 256 + Int((lo &>> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((lo &>> 16) & 0xFF)] ^ table[4 * 256 + Int(lo &>> 24)]
                    ^ table[3 * 256 + Int(hi & 0xFF)] ^ table[2 * 256 + Int((hi &>> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((hi &>> 16) & 0xFF)] ^ table[Int(hi &>> 24)]
                i &+= 8
            }
            while i < count {
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                c = (c &>> 8) ^ table[Int((c ^ UInt32(byte)) & 0xFF)]
                i &+= 1
            }
        }
        return ~c
    }

    /// The CRC of `a` followed by `b`, from the CRC of each and `b`'s byte count, without reading
    /// either: the snapshot encoder writes a section's payload before its header and folds the
    /// header in afterwards. Cost: about 32 × 32 × log2(`byteCount`) bit operations. (The method of
    /// zlib's `crc32_combine`: appending `byteCount` zero bytes to `a` is a linear map on its 32 bits,
    /// taken to that power by squaring.)
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, byteCountOfB byteCount: Int) -> UInt32 {
        precondition(byteCount >= 0)
        guard byteCount > 0 else { return crcA }
        // A 32 × 32 matrix over GF(2): column i is the image of bit i.
        typealias Matrix = [UInt32]
        func times(_ m: Matrix, _ v: UInt32) -> UInt32 {
            var sum: UInt32 = 0
            var v = v
            var i = 0
            while v != 0 {
                if v & 1 != 0 { sum ^= m[i] }
                v >>= 1
                i += 1
            }
            return sum
        }
        func squared(_ m: Matrix) -> Matrix { (0..<32).map { times(m, m[$0]) } }
        // One zero bit: shift right, folding the polynomial in when the low bit falls out.
        var oneBit = Matrix(repeating: 0, count: 32)
        oneBit[0] = polynomialReflected
        for i in 1..<32 { oneBit[i] = 1 << (i - 1) }
        // Zero bytes: 8 zero bits, then squared once per bit of the count.
        var power = squared(squared(squared(oneBit)))
        var crc = crcA
        var n = byteCount
        while n != 0 {
            if n & 1 != 0 { crc = times(power, crc) }
            n >>= 1
            if n != 0 { power = squared(power) }
        }
        return crc ^ crcB
    }
}
