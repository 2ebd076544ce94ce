// A cell's names as its shard's cell table keeps them. The variant's bytes are kept in the entry
// itself when there are at most 24 of them (most SKUs), so that a lookup compares bytes on the
// entry's own cache line: a `String` of more than 15 bytes keeps its bytes in an object of its own,
// one more cache miss per lookup among many cells (a twentieth of a loop's time serving RESERVE at
// pipeline 16 over 100,000 cells named `SKU-000000012345`). The warehouse is kept as its number in
// the table's list of warehouse codes, which are few and read often.
//
// Names are compared by their bytes. Every name in a table passed the checks of SPEC §1 at the edge
// (ASCII, no zero byte), for which comparing bytes and comparing strings agree.

struct StoredCellKey: Sendable {
    enum Variant: Sendable {
        /// A name of at most 24 bytes, none of them zero: its bytes in memory order, zero-padded.
        case inline(UInt64, UInt64, UInt64)
        /// Any other name.
        case string(String)
    }

    /// The most bytes a variant kept inline has.
    static let inlineByteCountMax = 24

    var variant: Variant
    /// The warehouse's number in its table's list of codes (`CellTable.warehouseNumber(_:)`).
    var warehouse: UInt32

    /// `name` as `Variant.inline` keeps it, or nil when it is kept as a string.
    @inline(__always) static func packed(_ name: String) -> (UInt64, UInt64, UInt64)? {
        // Over the bytes in one buffer, which a native or small string always has.
        name.utf8.withContiguousStorageIfAvailable { packed(bytes: UnsafeRawBufferPointer($0)) } ?? Array(name.utf8).withUnsafeBytes { packed(bytes: $0) }
    }

    @inline(__always) private static func packed(bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64)? {
        // A zero byte would make two names (`A` and `A` followed by a zero) pack the same.
        guard bytes.count <= inlineByteCountMax, !bytes.contains(0) else { return nil }
        var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
        return words
    }

    /// The variant kept for `name`.
    static func variant(_ name: String) -> Variant {
        if let w = packed(name) { return .inline(w.0, w.1, w.2) }
        return .string(name)
    }

    /// Whether this is the variant `name`, whose `packed(_:)` form is `packedName`.
    @inline(__always) func isVariant(_ name: String, packed packedName: (UInt64, UInt64, UInt64)?) -> Bool {
        switch variant {
        case .inline(let a, let b, let c):
            guard let p = packedName else { return false }
            return p.0 == a && p.1 == b && p.2 == c
        case .string(let s):
            // A name that packs is not one kept as a string: their bytes differ.
            return packedName == nil && s == name
        }
    }

    /// The cell's names, its table's list of warehouse codes being `warehouses`.
    func cellKey(warehouses: [String]) -> CellKey { CellKey(variant: variantName, warehouse: warehouses[Int(warehouse)]) }

    /// How many bytes of an inline variant's words are its name's: the words' bytes up to the padding
    /// (the first zero byte: the last nonzero word's high zero bytes, on this little-endian machine).
    @inline(__always) private static func inlineByteCount(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> Int {
        func used(_ w: UInt64) -> Int { 8 &- w.leadingZeroBitCount / 8 }
        return c != 0 ? 16 &+ used(c) : b != 0 ? 8 &+ used(b) : used(a)
    }

    /// The variant's name.
    var variantName: String {
        switch variant {
        case .inline:
            return withVariantBytes { String(decoding: $0, as: UTF8.self) }
        case .string(let s):
            return s
        }
    }

    /// Calls `body` with the variant's name as UTF-8 bytes, read where they are kept: no `String`
    /// is made for an inline one (one of 16 to 24 bytes would be allocated).
    @inline(__always) func withVariantBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        switch variant {
        case .inline(let a, let b, let c):
            let count = Self.inlineByteCount(a, b, c)
            return try withUnsafeBytes(of: (a, b, c)) { (words) throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: words[..<count])) }
        case .string(let s):
            return try withUTF8Bytes(of: s, body)
        }
    }
}
