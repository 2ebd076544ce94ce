// Syntax of the names the outside world chooses: variant ids, warehouse codes, reservation ids and
// idempotency keys. Names are checked once, at the edge; everything inside may assume they are valid.

public enum Identifiers {
    /// Option words are reserved (SPEC §7.14): they cannot be variant ids, so a parser never confuses
    /// an option with a positional argument.
    public static let optionWords = Set(OptionWord.allCases.map(\.spelling))

    /// The warehouse "code" that asks the placement strategy to choose.
    public static let anyWarehouse = "*"

    /// A variant id: 1–64 bytes of `[A-Za-z0-9._:/-]`, case-sensitive, not an option word.
    public static func isValidVariant(_ s: String) -> Bool {
        // Over the bytes in one buffer where the string has one (always, for a native or small string).
        s.utf8.withContiguousStorageIfAvailable { isValidVariant(bytes: $0, s) } ?? isValidVariant(bytes: s.utf8, s)
    }

    private static func isValidVariant(bytes utf8: some Collection<UInt8>, _ s: String) -> Bool {
        guard !utf8.isEmpty, utf8.count <= Limits.variantByteCountMax else { return false }
        var lettersOnly = true
        for b in utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                UInt8(ascii: "/"), UInt8(ascii: "-"):
                lettersOnly = false
            default: return false
            }
        }
        // Only an id of letters can be an option word (compared upper-cased as an integer, without a string).
        return !lettersOnly || OptionWord(word: utf8) == nil
    }

    /// The stored (upper-case) form of a warehouse code, or nil when it is not 1–32 of `[A-Za-z0-9_-]`.
    public static func normalizedWarehouse(_ s: String) -> String? {
        // Over the bytes in one buffer, as `isValidVariant` reads them.
        switch s.utf8.withContiguousStorageIfAvailable({ warehouseCase(bytes: $0) }) ?? warehouseCase(bytes: s.utf8) {
        case nil: return nil
        case false: return s
        case true: return s.uppercased()
        }
    }

    /// Whether a warehouse code's bytes need upper-casing; nil when they are not a code.
    private static func warehouseCase(bytes utf8: some Collection<UInt8>) -> Bool? {
        guard !utf8.isEmpty, utf8.count <= Limits.warehouseCodeByteCountMax else { return nil }
        var needsUppercasing = false
        for b in utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"),
                UInt8(ascii: "-"):
                continue
            case UInt8(ascii: "a")...UInt8(ascii: "z"): needsUppercasing = true
            default: return nil
            }
        }
        return needsUppercasing
    }

    /// A reservation id or idempotency key: 1–128 bytes, each ASCII 0x21–0x7E (printable, no space).
    public static func isValidReservationID(_ s: String) -> Bool {
        s.utf8.withContiguousStorageIfAvailable { isValidReservationID(bytes: $0) } ?? isValidReservationID(bytes: s.utf8)
    }

    private static func isValidReservationID(bytes utf8: some Collection<UInt8>) -> Bool {
        guard !utf8.isEmpty, utf8.count <= Limits.reservationIDByteCountMax else { return false }
        return utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// Free text (notes, references, names): at most `textByteCountMax` bytes, no control characters
    /// other than tab, so a ledger line always prints on one line.
    public static func isValidText(_ s: String) -> Bool {
        let utf8 = s.utf8
        guard utf8.count <= Limits.textByteCountMax else { return false }
        return utf8.allSatisfy { $0 >= 0x20 || $0 == 0x09 } && !utf8.contains(0x7F)
    }
}
