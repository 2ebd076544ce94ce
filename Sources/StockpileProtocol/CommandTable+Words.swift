// How the command table reads one word: a name, text, an integer, a boolean, an option word. Every
// reader converts a form and nothing more; ranges and name syntax are the engine's (`Validation`),
// so a request is judged by one set of rules whether it came over the wire or from the Swift API.
// Nothing here allocates on the path of a well-formed request beyond the Strings the request keeps.

import StockpileCore

extension OptionWord {
    /// The option a word names, compared without regard to ASCII case; nil for any other word.
    init?(_ word: Word) { self.init(word: word) }

    /// The option a word given as its own array names (tests).
    init?(_ word: [UInt8]) { self.init(word: word[...]) }
}

/// A set of option words: the options a command accepts, or those already seen in a request.
struct OptionWords: OptionSet {
    let rawValue: UInt32

    init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ word: OptionWord) { self.rawValue = 1 << UInt32(word.rawValue) }
    init(_ words: OptionWord...) {
        self.rawValue = words.reduce(0) { $0 | OptionWords($1).rawValue }
    }

    func contains(_ word: OptionWord) -> Bool { contains(OptionWords(word)) }
}

/// One word of a request: a slice of its `ArgumentList`, read in place.
typealias Word = ArraySlice<UInt8>

/// The readers of single words, each throwing the error SPEC §7.14 asks for.
enum Words {
    /// The longest piece of a caller's word repeated in an error message: enough to recognise it,
    /// short enough that a hostile word cannot make the reply large.
    static let echoByteCountMax = 64

    /// True when `word` spells `upper` (an upper-case ASCII literal) in any ASCII case.
    static func equalsIgnoringCase(_ word: Word, _ upper: String) -> Bool {
        // Lengths first: most words (ids, numbers) differ from most spellings there.
        guard word.count == upper.utf8.count else { return false }
        return word.withUnsafeBufferPointer { bytes in
            var index = 0
            for e in upper.utf8 {
                let byte = bytes[index]
                let folded = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
                if folded != e { return false }
                index += 1
            }
            return true
        }
    }

    /// Refuses an option word standing where a variant belongs, naming it. Option words are reserved
    /// and are no variant ids (SPEC §7.14); left alone, the positional part would end at the word and
    /// the caller would be sent to count arguments instead of being told which word is reserved.
    static func refuseOptionWordAsVariant(_ arguments: ArgumentList, at index: Int) throws(RequestError) {
        guard index < arguments.count, let word = OptionWord(arguments[index]) else { return }
        throw .refused(.invalid("variant may not be the option word \(word.spelling)"))
    }

    /// The index of the first option word in `arguments` at or after `start`, or `arguments.count`.
    static func optionBoundary(_ arguments: ArgumentList, from start: Int) -> Int {
        var i = start
        while i < arguments.count, OptionWord(arguments[i]) == nil { i += 1 }
        return i
    }

    /// A word as text, for names, ids and free text.
    static func text(_ word: Word, _ what: @autoclosure () -> String) throws(RequestError) -> String {
        // ASCII (every name and id) needs no validation: decoding it cannot repair anything, and the
        // generic validating initialiser looks up type metadata on every call.
        guard let s = word.withUnsafeBufferPointer({ bytes in
            bytes.allSatisfy { $0 < 0x80 } ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
        }) else {
            throw .refused(.invalid("\(what()) is not valid UTF-8"))
        }
        return s
    }

    /// A word shown back to the caller in an error: at most `echoByteCountMax` bytes, invalid UTF-8
    /// replaced. The reply frame takes out line breaks.
    static func echo(_ word: Word) -> String {
        word.prefix(echoByteCountMax).withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// A word upper-cased, for subcommand names (COMMAND DOCS, CLIENT SETNAME).
    static func upper(_ word: Word, _ what: @autoclosure () -> String) throws(RequestError) -> String {
        try text(word, what()).uppercased()
    }

    /// The result of reading a decimal integer: a sign and a magnitude, too large for 64 bits, or not
    /// an integer at all.
    enum Integer: Equatable {
        case value(negative: Bool, magnitude: UInt64)
        case tooLarge(negative: Bool)
        case malformed
    }

    /// Reads `[+|-]digits` (ASCII digits only, no spaces, no exponent, no fraction).
    static func integer(_ word: Word) -> Integer {
        var i = word.startIndex
        var negative = false
        if let first = word.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            i += 1
        }
        guard i < word.endIndex else { return .malformed }
        var magnitude: UInt64 = 0
        var overflow = false
        while i < word.endIndex {
            let b = word[i]
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return .malformed }
            if !overflow {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
                overflow = o1 || o2
                magnitude = sum
            }
            i += 1
        }
        return overflow ? .tooLarge(negative: negative) : .value(negative: negative, magnitude: magnitude)
    }

    /// A signed 64-bit integer; `outOfRange` words the refusal for one that does not fit.
    static func int64(
        _ word: Word, _ what: @autoclosure () -> String, outOfRange: @autoclosure () -> Refusal
    ) throws(RequestError) -> Int64 {
        switch integer(word) {
        case .malformed:
            throw .refused(.invalid("\(what()) must be a decimal integer"))
        case .tooLarge:
            throw .refused(outOfRange())
        case .value(let negative, let magnitude):
            if !negative {
                guard magnitude <= UInt64(Int64.max) else { throw .refused(outOfRange()) }
                return Int64(magnitude)
            }
            guard magnitude <= UInt64(Int64.max) + 1 else { throw .refused(outOfRange()) }
            return Int64(bitPattern: 0 &- magnitude)
        }
    }

    /// The refusal for a quantity too large for 64 bits, worded as the engine words a quantity over
    /// its limit, so 10^30 and 10^12+1 read alike.
    static var quantityLimit: Refusal { .limit("quantity may not exceed \(Limits.quantityMax)") }

    /// A quantity (or a signed delta). Any integer that fits 64 bits passes; the engine judges the range.
    static func quantity(_ word: Word, _ what: @autoclosure () -> String) throws(RequestError) -> Quantity {
        Quantity(try int64(word, what(), outOfRange: quantityLimit))
    }

    /// A TTL in whole seconds.
    static func ttl(_ word: Word) throws(RequestError) -> Duration {
        // Worded as the engine words a TTL out of range: to the caller, 10^30 s is just out of range.
        let seconds = try int64(
            word, "TTL", outOfRange: .invalid("TTL must be between 1 and \(Limits.ttlMax.components.seconds) seconds"))
        return .seconds(seconds)
    }

    /// The `n` of `LIMIT n`.
    static func limit(_ word: Word) throws(RequestError) -> Int {
        let n = try int64(word, "LIMIT", outOfRange: .limit("LIMIT may not exceed \(Limits.listCountMax)"))
        // Int is 64 bits on every platform Stockpile builds for; the check keeps 32-bit ones honest.
        guard let limit = Int(exactly: n) else { throw .refused(.limit("LIMIT may not exceed \(Limits.listCountMax)")) }
        return limit
    }

    /// A sequence number: 0 or more.
    static func seq(_ word: Word, _ what: String) throws(RequestError) -> UInt64 {
        switch integer(word) {
        case .malformed: throw .refused(.invalid("\(what) must be a decimal integer"))
        case .value(negative: false, let magnitude): return magnitude
        // "-0" is zero; every other negative number is no sequence number.
        case .value(negative: true, magnitude: 0): return 0
        case .value, .tooLarge: throw .refused(.invalid("\(what) must be between 0 and \(UInt64.max)"))
        }
    }

    /// `yes` or `no`, in any case (SPEC §5).
    static func boolean(_ word: Word, _ what: String) throws(RequestError) -> Bool {
        if equalsIgnoringCase(word, "YES") { return true }
        if equalsIgnoringCase(word, "NO") { return false }
        throw .refused(.invalid("\(what) must be yes or no"))
    }

    /// Reads the option part of a request, `arguments[start...]`, as option/value pairs, calling `body`
    /// with each in the order given. An unknown word, an option the command does not take, a repeated
    /// option or an option without its value is a syntax error.
    static func options(
        _ arguments: ArgumentList, from start: Int, accepted: OptionWords, command: String,
        _ body: (OptionWord, Word) throws(RequestError) -> Void
    ) throws(RequestError) {
        var seen = OptionWords()
        var i = start
        while i < arguments.count {
            guard let option = OptionWord(arguments[i]), accepted.contains(option) else {
                throw .syntax("unknown option '\(echo(arguments[i]))' for \(command)")
            }
            guard !seen.contains(option) else { throw .syntax("\(option.spelling) given twice") }
            guard i + 1 < arguments.count else { throw .syntax("\(option.spelling) needs a value") }
            seen.insert(OptionWords(option))
            try body(option, arguments[i + 1])
            i += 2
        }
    }
}
