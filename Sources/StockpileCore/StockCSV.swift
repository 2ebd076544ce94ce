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
    public static func parse(_ text: String, source: String) throws(StockCSVError) -> [StockRow] {
        var problems: [String] = []
        var rows: [StockRow] = []
        var seen: [CellKey: Int] = [:]
        var sawHeader = false
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            let trimmed = raw.trimmingSpaces
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { unquoted($0.trimmingSpaces) }
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

    private static func unquoted(_ field: Substring) -> String {
        if field.count >= 2, field.first == "\"", field.last == "\"" { return String(field.dropFirst().dropLast()) }
        return String(field)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
