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
    /// Cost: one pass over the bytes (a seed of millions of rows is read in bytes, not in
    /// `Character`s, whose grapheme breaking took seconds per million rows).
    public static func parse(_ text: String, source: String) throws(StockCSVError) -> [StockRow] {
        let bytes = StockBytes(text.utf8)
        try check(bytes, source: source)
        return Array(rows(bytes, source: source, chunkRowCount: .max).joined())
    }

    /// Checks a stock file whole, as `parse` does, without keeping its rows: a caller then loads a file
    /// of millions of rows a chunk at a time (`rows(_:source:chunkRowCount:)`) instead of holding them
    /// all, and a bad file still loads nothing.
    /// Returns the warehouse codes the rows name, so the caller can check they exist before it loads
    /// the first chunk, and how many rows there are, so it can make room for them at once.
    /// - Throws: `StockCSVError` as `parse` does.
    /// Cost: one pass over the bytes, and a 64-bit hash per row (duplicates are found by hash and
    /// confirmed by name, with a second pass, when two hashes meet).
    /// With `parallel`, a large file is checked as two halves on two threads (the caller knows
    /// whether there are cores to spare); the answer is the same.
    @discardableResult
    public static func check(_ bytes: StockBytes, source: String, parallel: Bool = false) throws(StockCSVError) -> Summary {
        try check(bytes, source: source, halvesFrom: parallel ? 1 << 22 : nil)
    }

    /// `check` of a file's bytes in an array.
    @discardableResult
    public static func check(_ bytes: [UInt8], source: String, parallel: Bool = false) throws(StockCSVError) -> Summary {
        try check(StockBytes(bytes), source: source, parallel: parallel)
    }

    /// `check`, in halves for a file of at least `halvesFrom` bytes (tests split small files).
    static func check(_ bytes: StockBytes, source: String, halvesFrom minimumByteCount: Int?) throws(StockCSVError) -> Summary {
        var whole = minimumByteCount.flatMap { checkInHalves(bytes, source: source, minimumByteCount: $0) } ?? checkPart(bytes, in: 0..<bytes.count, sawHeader: false, source: source)
        if !whole.sawHeader { whole.problems.append((.max, "\(source): empty; the first row must be the header `\(header)`")) }
        var problems = whole.problems
        if !whole.collided.isEmpty {
            // The same cell twice (an error), or two cells whose hashes meet (astronomically rare):
            // the rows with those hashes, compared by name, in file order.
            var earlier: [UInt64: [StockRow]] = [:]
            var ignored: [(line: Int, message: String)] = []
            _ = scan(bytes, in: 0..<bytes.count, sawHeader: false, source: source, problems: &ignored) { row in
                let h = hash(row)
                guard whole.collided.contains(h) else { return }
                if let original = earlier[h, default: []].first(where: { $0.variant == row.variant && $0.warehouse == row.warehouse }) {
                    problems.append((row.line, "\(source) line \(row.line): \(row.variant) \(row.warehouse) is already on line \(original.line)"))
                } else {
                    earlier[h, default: []].append(row)
                }
            }
        }
        // In file order: the duplicates were found after the other problems.
        var messages = problems.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element.message)
        if messages.count > problemCountMax {
            messages = Array(messages.prefix(problemCountMax)) + ["… and \(messages.count - problemCountMax) more"]
        }
        guard messages.isEmpty else { throw StockCSVError(problems: messages) }
        return Summary(warehouses: whole.warehouses, rowCount: whole.rowCount)
    }

    /// What checking part of a file found.
    private struct PartCheck {
        var problems: [(line: Int, message: String)] = []
        /// Each row's 64-bit hash, sorted once the part is read, and the hashes met more than once. (A
        /// set of hashes costs a cache miss per row at millions of rows; appending, then one sort,
        /// read and write memory in order.)
        var seen: [UInt64]
        var collided = Set<UInt64>()
        var warehouses = Set<String>()
        var rowCount = 0
        var sawHeader: Bool

        /// Sorts `seen` and notes the hashes it holds more than once: equal neighbours.
        mutating func findRepeats() {
            seen.radixSort()
            var i = 1
            while i < seen.count {
                if seen[i] == seen[i - 1] { collided.insert(seen[i]) }
                i += 1
            }
        }
    }

    /// Checks the lines of `bytes` in `range` (line numbers as if they began the file).
    private static func checkPart(_ bytes: StockBytes, in range: Range<Int>, sawHeader: Bool, source: String) -> PartCheck {
        // About one row per 20 bytes: room made once instead of a dozen regrowths over millions of rows.
        var seen: [UInt64] = []
        seen.reserveCapacity(range.count / 20)
        var part = PartCheck(seen: seen, sawHeader: sawHeader)
        var lastWarehouse = ""
        part.sawHeader = scan(bytes, in: range, sawHeader: sawHeader, source: source, problems: &part.problems) { row in
            part.rowCount += 1
            part.seen.append(hash(row))
            if row.warehouse != lastWarehouse {
                part.warehouses.insert(row.warehouse)
                lastWarehouse = row.warehouse
            }
        }
        part.findRepeats()
        return part
    }

    /// A large file checked as two halves on two threads, split after a line feed: the second half
    /// as if the header came before it. Nil when that cannot stand for the whole file's check — a
    /// small file, the header not in the first half, or a problem in the second half
    /// (whose messages would carry line numbers counted from the half): then the caller checks the
    /// file in one pass, as it always did.
    private static func checkInHalves(_ bytes: StockBytes, source: String, minimumByteCount: Int) -> PartCheck? {
        guard bytes.count >= minimumByteCount,
            let lineFeed = bytes.buffer[(bytes.count / 2)...].firstIndex(of: 0x0A), lineFeed + 1 < bytes.count
        else { return nil }
        let split = lineFeed + 1
        let halves = concurrentMap(2) { k in
            checkPart(bytes, in: k == 0 ? 0..<split : split..<bytes.count, sawHeader: k == 1, source: source)
        }
        var first = halves[0]
        let second = halves[1]
        guard first.sawHeader, second.problems.isEmpty else { return nil }
        first.rowCount += second.rowCount
        first.warehouses.formUnion(second.warehouses)
        first.collided.formUnion(second.collided)
        // Both sorted: a hash in both halves is found walking them side by side.
        var (i, j) = (0, 0)
        while i < first.seen.count && j < second.seen.count {
            let (a, b) = (first.seen[i], second.seen[j])
            if a < b {
                i += 1
            } else if b < a {
                j += 1
            } else {
                first.collided.insert(a)
                i += 1
                j += 1
            }
        }
        return first
    }

    /// What `check` found in a good file.
    public struct Summary: Hashable, Sendable {
        /// The warehouse codes the rows name (stored, upper-case form).
        public var warehouses: Set<String>
        public var rowCount: Int

        public init(warehouses: Set<String>, rowCount: Int) {
            self.warehouses = warehouses
            self.rowCount = rowCount
        }
    }

    /// The rows of a file that passed `check`, in order, at most `chunkRowCount` at a time, read as
    /// they are taken. Each chunk's bytes are discarded (`StockBytes.discard`) once the next chunk is
    /// asked for: a file read this way keeps about one chunk of itself in memory (when its keeper gives
    /// discarded pages back, as `serve --seed`'s does).
    public static func rows(_ bytes: StockBytes, source: String, chunkRowCount: Int = 65_536) -> Chunks {
        precondition(chunkRowCount >= 1)
        return Chunks(bytes: bytes, source: source, chunkRowCount: chunkRowCount)
    }

    /// `rows` of a file's bytes in an array.
    public static func rows(_ bytes: [UInt8], source: String, chunkRowCount: Int = 65_536) -> Chunks {
        rows(StockBytes(bytes), source: source, chunkRowCount: chunkRowCount)
    }

    /// The rows of a checked file, a chunk at a time.
    public struct Chunks: Sequence, Sendable {
        let bytes: StockBytes
        let source: String
        let chunkRowCount: Int

        public func makeIterator() -> Iterator { Iterator(chunks: self, lines: LineRanges(bytes).makeIterator()) }

        public struct Iterator: IteratorProtocol, Sendable {
            let chunks: Chunks
            var lines: LineRanges.Iterator
            var line = 0
            var sawHeader = false
            var lastWarehouse = WarehouseMemo()
            /// Where the bytes not yet discarded begin.
            var kept = 0

            public mutating func next() -> [StockRow]? {
                // The chunks before this one are read: their bytes are not needed again.
                chunks.bytes.discard(kept..<lines.start)
                kept = lines.start
                var out: [StockRow] = []
                let bytes = chunks.bytes.buffer
                while out.count < chunks.chunkRowCount, let range = lines.next() {
                    line += 1
                    if case .row(let row) = StockCSV.read(
                        UnsafeBufferPointer(rebasing: bytes[range]), line: line, source: chunks.source, sawHeader: &sawHeader,
                        lastWarehouse: &lastWarehouse)
                    {
                        out.append(row)
                    }
                }
                return out.isEmpty ? nil : out
            }
        }
    }

    /// What one line of the file is.
    private enum Line {
        case blank, header, row(StockRow), problem(String)
    }

    /// The last warehouse field read and its stored form: a file names few warehouses, mostly one
    /// run after another, so most rows need no check of their code and no new string for it.
    struct WarehouseMemo: Sendable {
        /// Nil before the first row: an empty field is a bad code, never a remembered one.
        var field: [UInt8]? = nil
        var code = ""
    }

    /// Reads one line (`sawHeader` says whether the header was met already). The bytes are a view into
    /// the file's buffer, so that the common row is read without a slice of the array: a slice
    /// retains the array's storage, and two threads checking halves of one file would contend on
    /// that one reference count for every field of every row.
    private static func read(
        _ lineBytes: UnsafeBufferPointer<UInt8>, line: Int, source: String, sawHeader: inout Bool, lastWarehouse: inout WarehouseMemo
    ) -> Line {
        if sawHeader, let row = plainRow(lineBytes, line: line, lastWarehouse: &lastWarehouse) { return .row(row) }
        let trimmed = trimmingSpaces(Array(lineBytes)[...])
        if trimmed.isEmpty { return .blank }
        let fields = trimmed.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { unquoted(trimmingSpaces($0)) }
        if !sawHeader {
            sawHeader = true
            guard fields.map({ $0.lowercased() }) == ["variant", "warehouse", "on_hand"] else {
                return .problem("\(source) line \(line): the first row must be the header `\(header)`")
            }
            return .header
        }
        guard fields.count == 3 else {
            return .problem("\(source) line \(line): expected 3 fields (\(header)), found \(fields.count)")
        }
        guard Identifiers.isValidVariant(fields[0]) else {
            return .problem("\(source) line \(line): '\(fields[0])' is not a valid variant id (1-\(Limits.variantByteCountMax) of A-Z a-z 0-9 . _ : / -)")
        }
        guard let warehouse = Identifiers.normalizedWarehouse(fields[1]) else {
            return .problem("\(source) line \(line): '\(fields[1])' is not a valid warehouse code")
        }
        guard let units = Int64(fields[2]), units >= 0, Quantity(units) <= Limits.quantityMax else {
            return .problem("\(source) line \(line): on_hand '\(fields[2])' must be a whole number from 0 to \(Limits.quantityMax)")
        }
        return .row(StockRow(variant: fields[0], warehouse: warehouse, onHand: Quantity(units), line: line))
    }

    /// The row of a plain line, `variant,warehouse,digits` with no spaces, tabs or quotes, read
    /// without splitting it into arrays of fields; nil for any other line, which `read` then reads
    /// field by field (and so words every problem the one way). Whatever it returns, `read`'s
    /// general path would return too.
    private static func plainRow(_ bytes: UnsafeBufferPointer<UInt8>, line: Int, lastWarehouse: inout WarehouseMemo) -> StockRow? {
        var commas = (0, 0)
        var commaCount = 0
        for i in 0..<bytes.count {
            switch bytes[i] {
            case UInt8(ascii: ","):
                commaCount += 1
                if commaCount == 1 { commas.0 = i } else if commaCount == 2 { commas.1 = i } else { return nil }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\""): return nil
            default: continue
            }
        }
        guard commaCount == 2 else { return nil }
        let variantBytes = UnsafeBufferPointer(rebasing: bytes[0..<commas.0])
        let warehouseBytes = UnsafeBufferPointer(rebasing: bytes[(commas.0 + 1)..<commas.1])
        let digits = UnsafeBufferPointer(rebasing: bytes[(commas.1 + 1)...])
        guard (1...18).contains(digits.count) else { return nil }
        var units: Int64 = 0
        for d in digits {
            guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { return nil }
            units = units * 10 + Int64(d - UInt8(ascii: "0"))
        }
        guard Quantity(units) <= Limits.quantityMax else { return nil }
        let variant = String(decoding: variantBytes, as: UTF8.self)
        guard Identifiers.isValidVariant(variant) else { return nil }
        if lastWarehouse.field?.elementsEqual(warehouseBytes) != true {
            guard let code = Identifiers.normalizedWarehouse(String(decoding: warehouseBytes, as: UTF8.self)) else { return nil }
            lastWarehouse = WarehouseMemo(field: Array(warehouseBytes), code: code)
        }
        return StockRow(variant: variant, warehouse: lastWarehouse.code, onHand: Quantity(units), line: line)
    }

    private static func hash(_ row: StockRow) -> UInt64 {
        CellKey(variant: row.variant, warehouse: row.warehouse).stableHash
    }

    /// One pass over the lines of `bytes` in `range`: every well-formed row to `body`, every problem
    /// (but duplicates, which need the whole file, and a missing header) to `problems`. Returns
    /// whether the header had been met by the end.
    private static func scan(
        _ bytes: StockBytes, in range: Range<Int>, sawHeader: Bool, source: String, problems: inout [(line: Int, message: String)],
        _ body: (StockRow) -> Void
    ) -> Bool {
        var sawHeader = sawHeader
        var lastWarehouse = WarehouseMemo()
        var line = 0
        let buffer = bytes.buffer
        for lineRange in LineRanges(bytes, in: range) {
            line += 1
            let lineBytes = UnsafeBufferPointer(rebasing: buffer[lineRange])
            switch read(lineBytes, line: line, source: source, sawHeader: &sawHeader, lastWarehouse: &lastWarehouse) {
            case .blank, .header: continue
            case .row(let row): body(row)
            case .problem(let message): problems.append((line, message))
            }
        }
        return sawHeader
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
struct LineRanges: Sequence, Sendable {
    let bytes: StockBytes
    /// The part of `bytes` whose lines these are (all of them unless given).
    let range: Range<Int>

    init(_ bytes: StockBytes, in range: Range<Int>? = nil) {
        self.bytes = bytes
        self.range = range ?? 0..<bytes.count
    }

    /// The lines of an array's bytes (tests).
    init(_ bytes: [UInt8]) { self.init(StockBytes(bytes)) }

    /// How many lines there are (one more than the breaks).
    var count: Int {
        var n = 0
        for _ in self { n += 1 }
        return n
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes, start: range.lowerBound, end: range.upperBound) }

    struct Iterator: IteratorProtocol, Sendable {
        let keeper: StockBytes
        /// Where the next line starts (the end, once the last line is read).
        private(set) var start: Int
        let end: Int
        var finished = false

        init(bytes: StockBytes, start: Int, end: Int) {
            keeper = bytes
            self.start = start
            self.end = end
        }

        mutating func next() -> Range<Int>? {
            guard !finished else { return nil }
            let bytes = keeper.buffer
            var i = start
            while i < end {
                if let width = Self.breakWidth(bytes, at: i) {
                    defer { start = i + width }
                    return start..<i
                }
                i += 1
            }
            finished = true
            defer { start = end }
            return start..<end
        }

        /// The bytes of the line break at `i`, or nil when none starts there.
        private static func breakWidth(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> Int? {
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

/// The bytes of a stock file, wherever they are kept: a copy of an array, or memory the caller read
/// the file into (and gives back when this is released). Read by any number of threads at once, never
/// written. `discard` says a range will not be read again, so that its keeper can give its pages back
/// (after which they need not hold the bytes): loading a file a chunk at a time then keeps about one
/// chunk of it in memory, not the whole file. `buffer` lives as long as this value: read it while
/// holding the value.
public final class StockBytes: @unchecked Sendable {
    // @unchecked: the bytes are never written after `init`, and the closures are Sendable.
    public let buffer: UnsafeBufferPointer<UInt8>
    /// The copy this keeps itself, when it made one.
    private let owned: UnsafeMutableBufferPointer<UInt8>?
    private let discarding: (@Sendable (Range<Int>) -> Void)?
    private let releasing: (@Sendable () -> Void)?

    /// A copy of `bytes` (an array, a file read whole).
    public init<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { source in
            if let from = source.baseAddress, let to = copy.baseAddress { to.initialize(from: from, count: source.count) }
            return true
        }
        if copied == nil { _ = copy.initialize(from: bytes) }
        owned = copy
        buffer = UnsafeBufferPointer(copy)
        discarding = nil
        releasing = nil
    }

    /// Bytes the caller keeps (a file read into memory of its own): `discard` lets a range's memory go,
    /// `release` all of it when this is released.
    public init(
        keeping buffer: UnsafeBufferPointer<UInt8>, discard: @escaping @Sendable (Range<Int>) -> Void, release: @escaping @Sendable () -> Void
    ) {
        self.buffer = buffer
        owned = nil
        discarding = discard
        releasing = release
    }

    deinit {
        owned?.deallocate()
        releasing?()
    }

    public var count: Int { buffer.count }

    /// Says that the bytes in `range` will not be read again.
    public func discard(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        discarding?(range)
    }
}
