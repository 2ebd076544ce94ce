// CRC-32C against published vectors (RFC 3720 §B.4, the "123456789" check value) and against a plain
// bit-at-a-time implementation of the definition, at every length and alignment the slicing loop
// treats differently; and incremental use against one-shot use on random splits.

import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct CRC32CTests {
    /// The definition, one bit at a time: reflected polynomial, initial value and final xor 0xFFFFFFFF.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    @Test("the check value of \"123456789\" is 0xE3069283")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test(
        "the iSCSI vectors of RFC 3720 match",
        arguments: [
            ([UInt8](repeating: 0, count: 32), UInt32(0x8A91_36AA)),
            ([UInt8](repeating: 0xFF, count: 32), UInt32(0x62A8_AB43)),
            ((0..<32).map { UInt8($0) }, UInt32(0x46DD_794E)),
            ((0..<32).reversed().map { UInt8($0) }, UInt32(0x113F_DB5C)),
        ])
    func iscsiVectors(bytes: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
    }

    @Test("no bytes have the CRC 0, and zeros never do")
    func emptyAndZeros() {
        #expect(CRC32C.checksum([]) == 0)
        for n in 1...64 { #expect(CRC32C.checksum([UInt8](repeating: 0, count: n)) != 0, "\(n) zero bytes") }
    }

    @Test("the polynomial is Castagnoli's 0x1EDC6F41, bit-reflected")
    func polynomial() {
        #expect(CRC32C.polynomialReflected == UInt32(0x1EDC_6F41).bitReversed)
    }

    @Test("every length from 0 to 300 at every alignment agrees with the bitwise definition")
    func agreesWithDefinition() {
        var rng = SplitMix64(seed: 0xC3C3)
        let data = (0..<320).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for start in 0..<8 {
            for length in 0...300 {
                let slice = Array(data[start..<start + length])
                let fast = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<start + length])) }
                let tables = data.withUnsafeBytes { CRC32C.updateByTables(0, UnsafeRawBufferPointer(rebasing: $0[start..<start + length])) }
                #expect(fast == Self.reference(slice), "start \(start) length \(length)")
                #expect(tables == Self.reference(slice), "tables: start \(start) length \(length)")
            }
        }
    }

    @Test("this CPU's CRC32 instruction is used when it has one")
    func hardwarePath() {
        // Every x86_64 CPU since 2008 has SSE 4.2; elsewhere the tables serve, and the test above
        // checks them alone.
        #if arch(x86_64)
        #expect(CRC32C.usesHardware)
        #endif
    }

    @Test("incremental updates over random splits equal the one-shot CRC")
    func incrementalEqualsOneShot() {
        let seed = RandomCommits.seed(default: 0x1DE4)
        var rng = SplitMix64(seed: seed)
        for round in 0..<200 {
            let n = Int(rng.next() % 2000)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let whole = CRC32C.checksum(bytes)
            var crc: UInt32 = 0
            var i = 0
            while i < n {
                let piece = min(n - i, Int(rng.next() % 40))
                crc = CRC32C.update(crc, bytes[i..<i + piece])
                i += piece
            }
            #expect(crc == whole, "seed \(seed) round \(round)")
            #expect(whole == Self.reference(bytes), "seed \(seed) round \(round)")
        }
    }

    @Test("combining the CRCs of two pieces gives the CRC of both, without reading them")
    func combineEqualsOneShot() {
        let seed = RandomCommits.seed(default: 0xC0B1)
        var rng = SplitMix64(seed: seed)
        for round in 0..<200 {
            // Up to 70,000 bytes, so that the count's bits reach past 16.
            let n = round < 100 ? Int(rng.next() % 300) : Int(rng.next() % 70_000)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let cut = n == 0 ? 0 : Int(rng.next() % UInt64(n + 1))
            let a = CRC32C.checksum(Array(bytes[..<cut]))
            let b = CRC32C.checksum(Array(bytes[cut...]))
            #expect(CRC32C.combine(a, b, byteCountOfB: n - cut) == CRC32C.checksum(bytes), "seed \(seed) round \(round): \(cut) + \(n - cut) bytes")
        }
    }

    @Test("a single flipped bit always changes the CRC")
    func singleBitErrors() {
        var bytes = Array("a record header and its payload".utf8)
        let original = CRC32C.checksum(bytes)
        for i in bytes.indices {
            for bit in 0..<8 {
                bytes[i] ^= 1 << bit
                #expect(CRC32C.checksum(bytes) != original, "byte \(i) bit \(bit)")
                bytes[i] ^= 1 << bit
            }
        }
    }
}

extension UInt32 {
    fileprivate var bitReversed: UInt32 {
        var v = self
        var r: UInt32 = 0
        for _ in 0..<32 {
            r = (r << 1) | (v & 1)
            v >>= 1
        }
        return r
    }
}
