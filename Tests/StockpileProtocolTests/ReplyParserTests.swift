// ReplyParser: what ReplyEncoder writes comes back as the same frame (RESP3) or as its RESP2 shape,
// whole, byte by byte and in seeded random splits; every RESP3 type maps as the file header of
// ReplyParser.swift says; hostile input (deep nesting, huge lengths, junk) throws instead of
// exhausting memory or the stack; and random bytes never trap.
//
//   STOCKPILE_SEED=42 swift test --filter ReplyParserTests     # repeat a seeded run

import Foundation
import StockpileCore
import Testing

@testable import StockpileProtocol

/// The frames a parser made of a stream, then the error that stopped it (nil when it ran out of
/// bytes).
private struct Outcome: Equatable {
    var frames: [ReplyFrame] = []
    var error: ProtocolError?
}

/// Feeds `input` in chunks of the given sizes (the rest in one last chunk), draining the parser
/// after each chunk.
private func parse(_ input: [UInt8], chunks: [Int] = [], parser: ReplyParser = ReplyParser()) -> Outcome {
    var parser = parser
    var outcome = Outcome()
    var offset = 0
    var sizes = chunks[...]
    while offset < input.count {
        let size = min(sizes.popFirst() ?? input.count, input.count - offset)
        parser.append(contentsOf: input[offset..<(offset + size)])
        offset += size
        do {
            while let frame = try parser.next() { outcome.frames.append(frame) }
        } catch {
            outcome.error = error
            return outcome
        }
    }
    return outcome
}

private func byteByByte(_ input: [UInt8], parser: ReplyParser = ReplyParser()) -> Outcome {
    parse(input, chunks: Array(repeating: 1, count: input.count), parser: parser)
}

/// What a frame becomes when it crosses a RESP2 connection: records are flat arrays of name/value
/// pairs and pushes are plain arrays.
private func resp2Shape(_ frame: ReplyFrame) -> ReplyFrame {
    switch frame {
    case .array(let items), .push(let items): .array(items.map(resp2Shape))
    case .record(let fields): .array(fields.flatMap { [ReplyFrame.text($0.name), resp2Shape($0.value)] })
    default: frame
    }
}

@Suite("ReplyParser")
struct ReplyParserTests {
    /// Frames that survive a round trip (no CR or LF in simple strings or errors, which the encoder
    /// replaces).
    static let frames: [ReplyFrame] = [
        .ok, .simple(""), .error("INSUFFICIENT SKU MAIN available 1 requested 2"),
        .integer(0), .integer(-17), .integer(Int64.max), .integer(Int64.min),
        .bulk([]), .text("hello"), .bulk([0x0D, 0x0A, 0x00, 0xFF, 0x24, 0x2A]),
        .null, .array([]), .record([]), .push([]),
        .array([.integer(1), .null, .text("x"), .array([.null])]),
        .record([
            RecordField("id", .text("order-1")), RecordField("status", .text("active")),
            RecordField("expires_at_ms", .integer(0)), RecordField("customer", .null),
            RecordField("lines", .array([
                .record([RecordField("variant", .text("SKU")), RecordField("quantity", .integer(2))]),
                .record([RecordField("variant", .text("SKU-2")), RecordField("quantity", .integer(1))]),
            ])),
        ]),
        .push([.text("message"), .text("events"), .text(#"{"seq":1}"#)]),
        .push([.record([RecordField("nested", .push([.record([])]))])]),
    ]

    @Test("RESP3 frames come back as they were, whole and byte by byte")
    func roundTripRESP3() {
        for frame in Self.frames {
            let encoded = ReplyEncoder.encoded(frame, version: .resp3)
            #expect(parse(encoded) == Outcome(frames: [frame]), "\(frame)")
            #expect(byteByByte(encoded) == Outcome(frames: [frame]), "\(frame), byte by byte")
        }
    }

    @Test("RESP2 frames come back with records as flat arrays and pushes as arrays")
    func roundTripRESP2() {
        for frame in Self.frames {
            let encoded = ReplyEncoder.encoded(frame, version: .resp2)
            #expect(parse(encoded) == Outcome(frames: [resp2Shape(frame)]), "\(frame)")
            #expect(byteByByte(encoded) == Outcome(frames: [resp2Shape(frame)]), "\(frame), byte by byte")
        }
        #expect(
            parse(ReplyEncoder.encoded(.record([RecordField("n", .integer(1))]), version: .resp2))
                == Outcome(frames: [.array([.text("n"), .integer(1)])]))
    }

    @Test("a pipelined stream of replies parses the same in seeded random splits")
    func randomSplits() {
        let seed = seed(fallback: 31_337)
        print("ReplyParserTests.randomSplits seed \(seed) (set STOCKPILE_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        for version in [RESPVersion.resp2, .resp3] {
            var stream: [UInt8] = []
            var expected: [ReplyFrame] = []
            // Enough replies that the stream passes the compaction threshold many times.
            for _ in 0..<400 {
                let frame = Self.frames[random.int(0...(Self.frames.count - 1))]
                ReplyEncoder.encode(frame, version: version, into: &stream)
                expected.append(version == .resp3 ? frame : resp2Shape(frame))
            }
            for round in 0..<10 {
                let chunks = randomChunks(for: stream.count, using: &random)
                #expect(parse(stream, chunks: chunks) == Outcome(frames: expected), "seed \(seed), \(version), round \(round)")
            }
        }
    }

    @Test("each RESP3 type maps to its frame")
    func resp3Types() {
        let table: [(String, ReplyFrame)] = [
            ("#t\r\n", .integer(1)),
            ("#f\r\n", .integer(0)),
            (",3.14\r\n", .simple("3.14")),
            (",-inf\r\n", .simple("-inf")),
            ("(3492890328409238509324850943850943825024385\r\n", .simple("3492890328409238509324850943850943825024385")),
            ("=15\r\ntxt:Some string\r\n", .text("Some string")),
            ("=4\r\ntxt:\r\n", .bulk([])),
            ("!21\r\nSYNTAX invalid syntax\r\n", .error("SYNTAX invalid syntax")),
            ("_\r\n", .null),
            ("$-1\r\n", .null),
            ("*-1\r\n", .null),
            ("~2\r\n:1\r\n:2\r\n", .array([.integer(1), .integer(2)])),
            (":+5\r\n", .integer(5)),
            ("%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#t\r\n", .record([RecordField("first", .integer(1)), RecordField("second", .integer(1))])),
            (">2\r\n$7\r\nmessage\r\n%0\r\n", .push([.text("message"), .record([])])),
        ]
        for (input, frame) in table {
            #expect(parse(bytes(input)) == Outcome(frames: [frame]), "\(input)")
            #expect(byteByByte(bytes(input)) == Outcome(frames: [frame]), "\(input), byte by byte")
        }
    }

    @Test("malformed replies throw, whole and byte by byte")
    func malformed() {
        let table: [(String, String)] = [
            ("?x\r\n", "unexpected byte '?' where a reply starts"),
            ("\r\n", #"unexpected byte '\x0d' where a reply starts"#),
            ("|1\r\n+a\r\n+b\r\n+c\r\n", "unexpected byte '|' where a reply starts"),
            (":abc\r\n", "invalid integer"),
            (":\r\n", "invalid integer"),
            (":9223372036854775808\r\n", "invalid integer"),
            ("#x\r\n", "invalid boolean"),
            ("#tt\r\n", "invalid boolean"),
            ("_x\r\n", "invalid null"),
            ("$abc\r\n", "invalid bulk length"),
            ("$-2\r\n", "invalid bulk length"),
            ("=-1\r\n", "invalid bulk length"),
            ("$3\r\nabcd", "missing CRLF after bulk string"),
            ("$3\r\nabc\rX", "missing CRLF after bulk string"),
            ("+OK\rX", "expected CRLF"),
            ("=3\r\nabc\r\n", "invalid verbatim string"),
            ("=5\r\ntxt-x\r\n", "invalid verbatim string"),
            ("*x\r\n", "invalid multibulk length"),
            ("*-2\r\n", "invalid multibulk length"),
            ("%-1\r\n", "invalid multibulk length"),
            ("*2147483648\r\n", "invalid multibulk length"),
            ("%1\r\n:1\r\n:2\r\n", "map key is not a string"),
            ("%1\r\n*0\r\n:2\r\n", "map key is not a string"),
        ]
        for (input, message) in table {
            #expect(parse(bytes(input)).error == ProtocolError(message), "\(input)")
            #expect(byteByByte(bytes(input)).error == ProtocolError(message), "\(input), byte by byte")
        }
    }

    @Test("incomplete replies return nil and never throw")
    func incomplete() throws {
        for input in ["+OK", "+OK\r", "$5\r\nhel", "$5\r\nhello\r", "*2\r\n:1\r\n", "%1\r\n+k\r\n", "*2147483647\r\n", ">1\r\n"] {
            var parser = ReplyParser()
            parser.append(contentsOf: bytes(input))
            #expect(try parser.next() == nil, "\(input)")
            #expect(try parser.next() == nil, "asked twice: \(input)")
        }
        for frame in Self.frames {
            let encoded = ReplyEncoder.encoded(frame, version: .resp3)
            for end in 0..<encoded.count {
                #expect(parse(Array(encoded[..<end])) == Outcome(), "\(frame) cut at \(end)")
            }
        }
    }

    @Test("nesting up to the depth limit is accepted and one level more is refused")
    func depthLimit() {
        func nested(_ depth: Int) -> [UInt8] { bytes(String(repeating: "*1\r\n", count: depth) + ":7\r\n") }
        var expected = ReplyFrame.integer(7)
        for _ in 0..<ReplyParser.depthDefault { expected = .array([expected]) }
        #expect(parse(nested(ReplyParser.depthDefault)) == Outcome(frames: [expected]))
        let refusal = ProtocolError("nesting too deep (the limit is 64)")
        #expect(parse(nested(ReplyParser.depthDefault + 1)).error == refusal)
        // Hostile depth: refused long before the stack or memory is at risk.
        #expect(parse(nested(1_000_000)).error == refusal)
        #expect(parse(nested(3), parser: ReplyParser(depthMax: 2)).error == ProtocolError("nesting too deep (the limit is 2)"))
    }

    @Test("a bulk of exactly the size limit is accepted and one byte more is refused")
    func bulkLimit() {
        let parser = ReplyParser(bulkByteCountMax: 10)
        #expect(parse(bytes("$10\r\n0123456789\r\n"), parser: parser) == Outcome(frames: [.text("0123456789")]))
        #expect(parse(bytes("$11\r\n"), parser: parser).error == ProtocolError("invalid bulk length"))
        #expect(parse(bytes("$536870913\r\n")).error == ProtocolError("invalid bulk length"))
        // The default limit refuses before a single payload byte arrives.
        #expect(parse(bytes("$536870912\r\n")) == Outcome())
    }

    @Test("a line of exactly the length limit is accepted and one byte more is refused")
    func lineLimit() {
        let parser = ReplyParser(lineByteCountMax: 32)
        let fitting = "+" + String(repeating: "a", count: 32)
        #expect(parse(bytes(fitting + "\r\n"), parser: parser) == Outcome(frames: [.simple(String(fitting.dropFirst()))]))
        #expect(byteByByte(bytes(fitting + "\r\n"), parser: parser) == Outcome(frames: [.simple(String(fitting.dropFirst()))]))
        let refusal = ProtocolError("line too long (the limit is 32 bytes)")
        #expect(parse(bytes(fitting + "a"), parser: parser).error == refusal)
        #expect(byteByByte(bytes(fitting + "a\r\n"), parser: parser).error == refusal)
    }

    @Test("seeded fuzz: random bytes and mutated replies never trap and split nothing differently")
    func fuzz() {
        let seed = seed(fallback: 90_210)
        print("ReplyParserTests.fuzz seed \(seed) (set STOCKPILE_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        let parser = ReplyParser(bulkByteCountMax: 1024, lineByteCountMax: 64, depthMax: 4)
        let alphabet = bytes("+-:$*_%>#,=(!~\r\n\r\n0123456789-tf") + [0x00, 0xFF]
        let seeds = Self.frames.flatMap { [ReplyEncoder.encoded($0, version: .resp2), ReplyEncoder.encoded($0, version: .resp3)] }
        var kinds = [0, 0, 0]
        for round in 0..<3000 {
            var input: [UInt8]
            switch random.int(0...2) {
            case 0:
                input = (0..<random.int(0...64)).map { _ in random.byte() }
            case 1:
                input = (0..<random.int(0...64)).map { _ in alphabet[random.int(0...(alphabet.count - 1))] }
            default:
                input = seeds[random.int(0...(seeds.count - 1))]
                for _ in 0..<random.int(1...3) {
                    let position = input.isEmpty ? 0 : random.int(0...(input.count - 1))
                    switch random.int(0...2) {
                    case 0 where !input.isEmpty: input[position] = alphabet[random.int(0...(alphabet.count - 1))]
                    case 1: input.insert(random.byte(), at: position)
                    default: if !input.isEmpty { input.remove(at: position) }
                    }
                }
            }
            let whole = parse(input, parser: parser)
            kinds[whole.error != nil ? 2 : whole.frames.isEmpty ? 0 : 1] += 1
            let split = parse(input, chunks: randomChunks(for: input.count, using: &random), parser: parser)
            #expect(split == whole, "seed \(seed), round \(round), input \(input)")
        }
        #expect(kinds.allSatisfy { $0 > 100 }, "nothing / frames / errors: \(kinds)")
    }
}
