// The stock file of SPEC §6: CSV rows of `variant,warehouse,on_hand` under that header row. Reading
// is all or nothing: every row is checked before any is used, and every bad row is reported by its
// line number, so an operator fixes the file in one pass and a bad file changes nothing.

/// One row of a stock file.
public struct StockRow: Hashable, Sendable {
    public var variant: String
    /// Upper-cased, as warehouse codes are stored.
    public var warehouse: String
    public var onHand: Quantity
    /// The row's line in the file, from 1.
    public var line: Int

    public init(variant: String, warehouse: String, onHand: Quantity, line: Int) {
        self.variant = variant
        self.warehouse = warehouse
        self.onHand = onHand
        self.line = line
    }
}

/// Why a stock file was refused: one message per bad line, in file order.
public struct StockCSVError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [String]

    public var description: String { problems.joined(separator: "\n") }
}

public enum StockCSV {
    public static let header = "variant,warehouse,on_hand"
    /// Problems reported before the rest are summarised: enough to see a pattern, not a flood.
    public static let problemCountMax = 20

    /// The rows of a stock file. `source` names the file in messages. Blank lines are skipped; lines
    /// may end in CRLF; a field may be wrapped in double quotes. A (variant, warehouse) listed twice
    /// is an error, since one of the two figures would be lost.
    /// - Throws: `StockCSVError` listing every bad line (and a missing or wrong header).
    /// Cost: one pass over the bytes to count lines, one to read them (a seed of millions of rows is
    /// read in bytes, not in `Character`s, whose grapheme breaking took seconds per million rows).
    public static func parse(_ text: String, source: String) throws(StockCSVError) -> [StockRow] {
        let bytes = Array(text.utf8)
        let lines = LineRanges(bytes)
        var problems: [String] = []
        var rows: [StockRow] = []
        var seen: [CellKey: Int] = [:]
        let lineCount = lines.count
        rows.reserveCapacity(lineCount)
        seen.reserveCapacity(lineCount)
        var sawHeader = false
        for (index, range) in lines.enumerated() {
            let line = index + 1
            let trimmed = trimmingSpaces(bytes[range])
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { unquoted(trimmingSpaces($0)) }
            if !sawHeader {
                sawHeader = true
                guard fields.map({ $0.lowercased() }) == ["variant", "warehouse", "on_hand"] else {
                    problems.append("\(source) line \(line): the first row must be the header `\(header)`")
                    continue
                }
                continue
            }
            guard fields.count == 3 else {
                problems.append("\(source) line \(line): expected 3 fields (\(header)), found \(fields.count)")
                continue
            }
            guard Identifiers.isValidVariant(fields[0]) else {
                problems.append("\(source) line \(line): '\(fields[0])' is not a valid variant id (1-\(Limits.variantByteCountMax) of A-Z a-z 0-9 . _ : / -)")
                continue
            }
            guard let warehouse = Identifiers.normalizedWarehouse(fields[1]) else {
                problems.append("\(source) line \(line): '\(fields[1])' is not a valid warehouse code")
                continue
            }
            guard let units = Int64(fields[2]), units >= 0, Quantity(units) <= Limits.quantityMax else {
                problems.append("\(source) line \(line): on_hand '\(fields[2])' must be a whole number from 0 to \(Limits.quantityMax)")
                continue
            }
            let key = CellKey(variant: fields[0], warehouse: warehouse)
            if let first = seen[key] {
                problems.append("\(source) line \(line): \(fields[0]) \(warehouse) is already on line \(first)")
                continue
            }
            seen[key] = line
            rows.append(StockRow(variant: fields[0], warehouse: warehouse, onHand: Quantity(units), line: line))
        }
        if !sawHeader { problems.append("\(source): empty; the first row must be the header `\(header)`") }
        if problems.count > problemCountMax {
            problems = Array(problems.prefix(problemCountMax)) + ["… and \(problems.count - problemCountMax) more"]
        }
        guard problems.isEmpty else { throw StockCSVError(problems: problems) }
        return rows
    }

    /// A stock file of `cells`, header first: what `parse` reads back.
    public static func format(_ cells: [CellRecord]) -> String {
        var out = header + "\n"
        for c in cells { out += "\(c.variant),\(c.warehouse),\(c.onHand.units)\n" }
        return out
    }

    /// The field's text, without the double quotes around it if it has them. The bytes are cut only at
    /// ASCII bytes, so they are whole UTF-8.
    private static func unquoted(_ field: ArraySlice<UInt8>) -> String {
        if field.count >= 2, field.first == UInt8(ascii: "\""), field.last == UInt8(ascii: "\"") {
            return String(decoding: field.dropFirst().dropLast(), as: UTF8.self)
        }
        return String(decoding: field, as: UTF8.self)
    }

    private static func trimmingSpaces(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = bytes
        while let b = s.first, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { s = s.dropFirst() }
        while let b = s.last, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { s = s.dropLast() }
        return s
    }
}

/// The lines of UTF-8 text, as byte ranges, split where `Character.isNewline` splits: LF, VT, FF, CR,
/// CR LF (one break), NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR. Like `split(omittingEmptySubsequences:
/// false)`, text ending in a break has an empty last line.
struct LineRanges: Sequence {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// How many lines there are (one more than the breaks).
    var count: Int {
        var n = 0
        for _ in self { n += 1 }
        return n
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    struct Iterator: IteratorProtocol {
        let bytes: [UInt8]
        var start = 0
        var finished = false

        mutating func next() -> Range<Int>? {
            guard !finished else { return nil }
            var i = start
            while i < bytes.count {
                if let width = Self.breakWidth(bytes, at: i) {
                    defer { start = i + width }
                    return start..<i
                }
                i += 1
            }
            finished = true
            return start..<bytes.count
        }

        /// The bytes of the line break at `i`, or nil when none starts there.
        private static func breakWidth(_ bytes: [UInt8], at i: Int) -> Int? {
            switch bytes[i] {
            case 0x0A, 0x0B, 0x0C: return 1
            case 0x0D: return i + 1 < bytes.count && bytes[i + 1] == 0x0A ? 2 : 1
            case 0xC2: return i + 1 < bytes.count && bytes[i + 1] == 0x85 ? 2 : nil
            case 0xE2: return i + 2 < bytes.count && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9) ? 3 : nil
            default: return nil
            }
        }
    }
}
