// The words of a fixed vocabulary (command names, option words), found without regard to ASCII case
// by packing the word, upper-cased, one byte each into an integer and comparing it with each
// spelling packed the same way: one integer comparison per candidate instead of a byte loop that
// folds case. Spellings are 1-16 ASCII letters; a word with any other byte names none of them.

public struct SpellingTable<Value> {
    @usableFromInline let entries: [(key: UInt128, value: Value)]

    public init(_ spellings: [(String, Value)]) {
        entries = spellings.map { spelling, value in
            guard let key = Self.packed(spelling.utf8) else { preconditionFailure("\(spelling) is not 1-16 ASCII letters") }
            return (key, value)
        }
    }

    /// The value `word` spells, in any ASCII case; nil when it spells none.
    @inlinable public func value(of word: some Collection<UInt8>) -> Value? {
        guard let key = Self.packed(word) else { return nil }
        for i in entries.indices where entries[i].key == key { return entries[i].value }
        return nil
    }

    /// The word upper-cased and packed, or nil when it is empty, longer than 16 bytes or has a byte
    /// that is not an ASCII letter.
    @inlinable static func packed(_ word: some Collection<UInt8>) -> UInt128? {
        guard !word.isEmpty, word.count <= 16 else { return nil }
        var key: UInt128 = 0
        var shift: UInt128 = 0
        for byte in word {
            let upper = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
            guard upper >= UInt8(ascii: "A") && upper <= UInt8(ascii: "Z") else { return nil }
            key |= UInt128(upper) << shift
            shift += 8
        }
        return key
    }
}

extension SpellingTable: Sendable where Value: Sendable {}

/// The option words of SPEC §7.14. They are reserved, so the positional part of a request ends at
/// the first of them, and a variant id can never be one (`Identifiers.isValidVariant`).
public enum OptionWord: Int, CaseIterable, Sendable {
    case ttl, customer, strategy, key, reason, note, ref, `if`, limit, restock, damaged, name, address, priority,
        active, backorder, unlimited, lowStock

    /// The word as written in the SPEC and in error messages.
    public var spelling: String {
        switch self {
        case .ttl: "TTL"
        case .customer: "CUSTOMER"
        case .strategy: "STRATEGY"
        case .key: "KEY"
        case .reason: "REASON"
        case .note: "NOTE"
        case .ref: "REF"
        case .if: "IF"
        case .limit: "LIMIT"
        case .restock: "RESTOCK"
        case .damaged: "DAMAGED"
        case .name: "NAME"
        case .address: "ADDRESS"
        case .priority: "PRIORITY"
        case .active: "ACTIVE"
        case .backorder: "BACKORDER"
        case .unlimited: "UNLIMITED"
        case .lowStock: "LOWSTOCK"
        }
    }

    /// The option the bytes of a word name, compared without regard to ASCII case; nil for any other
    /// word.
    @inlinable public init?(word: some Collection<UInt8>) {
        // Option words are 2-9 letters: most words (ids, numbers) are ruled out by length alone.
        guard word.count >= 2, word.count <= 9, let option = Self.table.value(of: word) else { return nil }
        self = option
    }

    @usableFromInline static let table = SpellingTable(allCases.map { ($0.spelling, $0) })
}
