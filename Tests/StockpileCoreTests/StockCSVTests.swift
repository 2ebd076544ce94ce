// The stock file: every good form is read, every bad line is named, and a bad file yields no rows.

import Foundation
import Testing
@testable import StockpileCore

@Suite struct StockCSVTests {
    @Test("rows are read with the header, blank lines, CRLF, spaces and quotes; codes are upper-cased")
    func goodFile() throws {
        let text = "Variant, Warehouse ,ON_HAND\r\nSKU-1,main,5\r\n\r\n \"SKU-2\" , EAST , 0 \nsku.3:x/y,MAIN,1000000000000\n"
        let rows = try StockCSV.parse(text, source: "f.csv")
        #expect(rows == [
            StockRow(variant: "SKU-1", warehouse: "MAIN", onHand: 5, line: 2),
            StockRow(variant: "SKU-2", warehouse: "EAST", onHand: 0, line: 4),
            StockRow(variant: "sku.3:x/y", warehouse: "MAIN", onHand: 1_000_000_000_000, line: 5),
        ])
    }

    @Test("a header alone is an empty stock file")
    func headerOnly() throws {
        #expect(try StockCSV.parse("variant,warehouse,on_hand\n", source: "f.csv").isEmpty)
    }

    @Test("each kind of bad line is named by its line number, and none is skipped", arguments: [
        ("", "f.csv: empty"),
        ("SKU-1,MAIN,5\n", "f.csv line 1: the first row must be the header"),
        ("variant,warehouse,on_hand\nSKU-1,MAIN\n", "f.csv line 2: expected 3 fields"),
        ("variant,warehouse,on_hand\nSKU 1,MAIN,5\n", "f.csv line 2: 'SKU 1' is not a valid variant id"),
        ("variant,warehouse,on_hand\nTTL,MAIN,5\n", "f.csv line 2: 'TTL' is not a valid variant id"),
        ("variant,warehouse,on_hand\nSKU-1,MA IN,5\n", "f.csv line 2: 'MA IN' is not a valid warehouse code"),
        ("variant,warehouse,on_hand\nSKU-1,MAIN,-1\n", "f.csv line 2: on_hand '-1' must be a whole number"),
        ("variant,warehouse,on_hand\nSKU-1,MAIN,1000000000001\n", "f.csv line 2: on_hand '1000000000001' must be"),
        ("variant,warehouse,on_hand\nSKU-1,MAIN,x\n", "f.csv line 2: on_hand 'x' must be"),
        ("variant,warehouse,on_hand\nSKU-1,MAIN,1\n\nSKU-1,main,2\n", "f.csv line 4: SKU-1 MAIN is already on line 2"),
    ])
    func badLine(text: String, message: String) {
        #expect(throws: StockCSVError.self) { try StockCSV.parse(text, source: "f.csv") }
        do {
            _ = try StockCSV.parse(text, source: "f.csv")
        } catch {
            #expect(error.problems.first?.hasPrefix(message) == true, "\(error)")
        }
    }

    @Test("every bad line is reported, up to a limit, then counted")
    func manyBadLines() {
        let text = "variant,warehouse,on_hand\n" + (1...30).map { "SKU-\($0),MAIN,bad" }.joined(separator: "\n")
        do {
            _ = try StockCSV.parse(text, source: "f.csv")
            Issue.record("a bad file was accepted")
        } catch {
            #expect(error.problems.count == StockCSV.problemCountMax + 1)
            #expect(error.problems.last == "… and 10 more")
            #expect(error.problems[0].hasPrefix("f.csv line 2:") && error.problems[19].hasPrefix("f.csv line 21:"))
        }
    }

    @Test("lines break where Character.isNewline breaks them, CR LF and the non-ASCII breaks included")
    func lineBreaks() {
        let alphabet: [String] = ["a", "é", ",", " ", "\"", "\n", "\r", "\r\n", "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}", "\u{301}", "\u{E2}"]
        let seed: UInt64 = 0x5EED_C5F
        var random = SplitMix64(seed: seed)
        for _ in 0..<2000 {
            let text = (0..<Int(random.next() % 24)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
            let bytes = Array(text.utf8)
            let lines = LineRanges(bytes).map { String(decoding: bytes[$0], as: UTF8.self) }
            let expected = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
            #expect(lines == expected, "\(text.unicodeScalars.map { String($0.value, radix: 16) }) (seed \(seed))")
            #expect(LineRanges(bytes).count == expected.count)
        }
    }

    @Test("a formatted stock file parses back to the same cells")
    func roundTrip() throws {
        let cells = [CellRecord(variant: "A", warehouse: "MAIN", onHand: 5, reserved: 2), CellRecord(variant: "b.2", warehouse: "EAST", onHand: 0, reserved: 0)]
        let rows = try StockCSV.parse(StockCSV.format(cells), source: "f.csv")
        #expect(rows.map { [$0.variant, $0.warehouse, "\($0.onHand)"] } == cells.map { [$0.variant, $0.warehouse, "\($0.onHand)"] })
    }

    @Test("a checked file is read a chunk at a time, in order, with the rows parse gives")
    func chunks() throws {
        var text = "variant,warehouse,on_hand\n"
        for i in 0..<1_000 { text += "SKU-\(i),\(i % 3 == 0 ? "east" : "MAIN"),\(i)\n" }
        text += "\n"
        let bytes = Array(text.utf8)
        #expect(try StockCSV.check(bytes, source: "f.csv") == StockCSV.Summary(warehouses: ["EAST", "MAIN"], rowCount: 1_000))
        let chunks = Array(StockCSV.rows(bytes, source: "f.csv", chunkRowCount: 64))
        #expect(chunks.map(\.count) == Array(repeating: 64, count: 15) + [40])
        #expect(chunks.flatMap { $0 } == (try StockCSV.parse(text, source: "f.csv")))
    }

    @Test("rows never read bytes they have discarded: a keeper that spoils each discarded range still gives every row, and the discards cover the file from the start, in order, behind the chunks")
    func discardsBehindTheChunks() throws {
        var text = "variant,warehouse,on_hand\n"
        for i in 0..<5_000 { text += "SKU-\(i),\(i % 7 == 0 ? "east" : "MAIN"),\(i)\n" }
        let expected = try StockCSV.parse(text, source: "f.csv")
        let discarded = Discards(Array(text.utf8))
        let bytes = StockBytes(keeping: discarded.buffer, discard: { discarded.spoil($0) }, release: {})
        let chunks = Array(StockCSV.rows(bytes, source: "f.csv", chunkRowCount: 300))
        #expect(chunks.flatMap { $0 } == expected)
        let ranges = discarded.ranges
        // One before each chunk after the first, and one when the rows run out.
        #expect(ranges.count == chunks.count)
        #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == text.utf8.count)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "contiguous, in order")
    }

    /// Bytes kept for a test: each range it is told to discard is noted, in order, and spoilt (what a
    /// dropped page would read if it were not read again from the file).
    private final class Discards: @unchecked Sendable {
        private let memory: UnsafeMutableBufferPointer<UInt8>
        private(set) var ranges: [Range<Int>] = []
        var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(memory) }

        init(_ bytes: [UInt8]) {
            memory = .allocate(capacity: bytes.count)
            _ = memory.initialize(from: bytes)
        }

        deinit { memory.deallocate() }

        func spoil(_ range: Range<Int>) {
            ranges.append(range)
            for i in range { memory[i] = 0xFF }
        }
    }

    @Test("check finds a cell listed twice by its hash and names both lines, in file order with the other problems")
    func duplicatesByHash() {
        let text = "variant,warehouse,on_hand\nA,MAIN,1\nB,MAIN,x\nC,MAIN,2\nA,main,3\nC,MAIN,4\n"
        #expect(throws: StockCSVError(problems: [
            "f.csv line 3: on_hand 'x' must be a whole number from 0 to 1000000000000",
            "f.csv line 5: A MAIN is already on line 2",
            "f.csv line 6: C MAIN is already on line 4",
        ])) { try StockCSV.check(Array(text.utf8), source: "f.csv") }
    }

    /// A plain line (`variant,warehouse,digits`) is read by a fast path; the same line with spaces
    /// around it is read field by field. Random lines, good and bad, must read the same both ways.
    @Test("the fast path for plain lines reads every line as the general path does")
    func plainLinesReadAsTheGeneralPath() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 2026
        print("plainLinesReadAsTheGeneralPath seed \(seed)")
        var rng = SplitMix64(seed: seed)
        func pick(_ options: [String]) -> String { options[Int(rng.next() % UInt64(options.count))] }
        let variants = ["SKU-1", "a", "TTL", "ttl", "Key", "sku.3:x/y", "SKU 1", "", "é", String(repeating: "v", count: 64), String(repeating: "v", count: 65)]
        let warehouses = ["MAIN", "main", "Ea_st-1", "MA!N", "", String(repeating: "W", count: 32), String(repeating: "W", count: 33)]
        let quantities = ["0", "7", "007", "+5", "-1", "", "x", "1000000000000", "1000000000001", "999999999999999999", "9999999999999999999"]
        for _ in 0..<2000 {
            var fields = [pick(variants), pick(warehouses), pick(quantities)]
            if rng.next() % 8 == 0 { fields.append("x") }
            if rng.next() % 8 == 0 { fields.removeLast() }
            let line = fields.joined(separator: ",")
            let plain = Self.read("variant,warehouse,on_hand\n\(line)\n")
            let spaced = Self.read("variant,warehouse,on_hand\n \(line)\t\n")
            #expect(plain == spaced, "line '\(line)'")
        }
    }

    /// The rows of `text`, or its problems.
    private static func read(_ text: String) -> Result<[StockRow], StockCSVError> {
        Result { () throws(StockCSVError) in try StockCSV.parse(text, source: "f.csv") }
    }

    /// A large seed is checked as two halves on two threads. Random files — good ones, and ones with
    /// a cell repeated within or across the halves, a bad line in either half, the header late, CRLF
    /// and blank lines — must get the same answer, to the message, as one pass.
    @Test("checking in halves answers what one pass answers")
    func halvesAgreeWithOnePass() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 77
        print("halvesAgreeWithOnePass seed \(seed)")
        var rng = SplitMix64(seed: seed)
        for round in 0..<300 {
            var lines: [String] = []
            let blanksFirst = Int(rng.next() % 3)
            lines += Array(repeating: "", count: blanksFirst)
            if rng.next() % 10 != 0 { lines.append("variant,warehouse,on_hand") }
            let count = Int(2 + rng.next() % 40)
            for i in 0..<count {
                switch rng.next() % 24 {
                case 0, 1, 2: lines.append("SKU-\(rng.next() % 6),MAIN,1")  // often a repeat, often across the halves
                case 3: lines.append("bad line")
                case 4: lines.append("")
                case 5: lines.append("variant,warehouse,on_hand")  // a second header is a bad row
                default: lines.append("SKU-\(i)-\(round),\(rng.next() % 2 == 0 ? "main" : "EAST"),\(rng.next() % 100)")
                }
            }
            let separator = rng.next() % 4 == 0 ? "\r\n" : "\n"
            let bytes = StockBytes(Array(lines.joined(separator: separator).utf8) + (rng.next() % 2 == 0 ? Array(separator.utf8) : []))
            let onePass = Result { () throws(StockCSVError) in try StockCSV.check(bytes, source: "f.csv", halvesFrom: nil) }
            let halves = Result { () throws(StockCSVError) in try StockCSV.check(bytes, source: "f.csv", halvesFrom: 0) }
            #expect(onePass == halves, "seed \(seed) round \(round)")
        }
    }
}
