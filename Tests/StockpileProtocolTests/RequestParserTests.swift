// RequestParser: the same bytes give the same requests however they are split (whole, byte by byte,
// seeded random splits); malformed input throws Redis's message and merely incomplete input never
// throws; limits hold exactly at their boundary; and no bytes at all make it trap.
//
//   STOCKPILE_SEED=42 swift test --filter RequestParserTests     # repeat a seeded run

import Foundation
import StockpileCore
import Testing

@testable import StockpileProtocol

private func words(_ list: String...) -> [[UInt8]] { list.map(bytes) }

/// What a parser made of a stream: the requests it returned, then the error that stopped it (nil
/// when it ran out of bytes).
private struct Outcome: Equatable, CustomStringConvertible {
    var requests: [[[UInt8]]] = []
    var error: ProtocolError?

    var description: String {
        let shown = requests.map { $0.map { String(decoding: $0, as: UTF8.self) } }
        return "\(shown) then \(error?.message ?? "more bytes needed")"
    }
}

/// Feeds `input` in chunks of the given sizes (the rest in one last chunk), draining the parser
/// after each chunk, and checks the parser's invariants along the way.
private func parse(_ input: [UInt8], chunks: [Int] = [], limits: ProtocolLimits = ProtocolLimits()) -> Outcome {
    var parser = RequestParser(limits: limits)
    var outcome = Outcome()
    var offset = 0
    var sizes = chunks[...]
    while offset < input.count {
        let size = min(sizes.popFirst() ?? input.count, input.count - offset)
        parser.append(contentsOf: input[offset..<(offset + size)])
        offset += size
        do {
            while let request = try parser.next() {
                outcome.requests.append(request)
            }
        } catch {
            outcome.error = error
            return outcome
        }
        parser.checkInvariants()
        #expect(parser.bufferedByteCount <= offset)
    }
    return outcome
}

private func byteByByte(_ input: [UInt8], limits: ProtocolLimits = ProtocolLimits()) -> Outcome {
    parse(input, chunks: Array(repeating: 1, count: input.count), limits: limits)
}

/// Valid inputs and the requests each holds.
private let validTable: [(name: String, input: [UInt8], requests: [[[UInt8]]])] = [
    ("multibulk", bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"), [words("SET", "k", "v")]),
    ("inline with CRLF", bytes("PING\r\n"), [words("PING")]),
    ("inline with LF", bytes("PING\n"), [words("PING")]),
    ("empty and blank lines", bytes("\r\n\n   \r\n\t\n"), []),
    ("empty and negative counts", bytes("*0\r\n*-1\r\n*-7\r\n"), []),
    ("an empty argument", bytes("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), [words("ECHO", "")]),
    (
        "binary bulk payload", [UInt8]("*2\r\n$4\r\nECHO\r\n$7\r\n".utf8) + [0x61, 0x0D, 0x0A, 0x00, 0x62, 0x0A, 0xFF] + [0x0D, 0x0A],
        [[bytes("ECHO"), [0x61, 0x0D, 0x0A, 0x00, 0x62, 0x0A, 0xFF]]]
    ),
    (
        "quoted inline", bytes("ADJUST SKU MAIN -2 REASON damaged NOTE \"dropped by a forklift\"\r\n"),
        [words("ADJUST", "SKU", "MAIN", "-2", "REASON", "damaged", "NOTE", "dropped by a forklift")]
    ),
    (
        "double-quote escapes", bytes(#"SET "a\"b\\c\n\r\t\b\a\x41\x7a\q" x"# + "\n"),
        [[bytes("SET"), bytes("a\"b\\c\n\r\t") + [0x08, 0x07] + bytes("Azq"), bytes("x")]]
    ),
    ("single-quote escapes", bytes(#"SET 'it\'s' 'a\nb' '"'"# + "\r\n"), [words("SET", "it's", #"a\nb"#, "\"")]),
    ("an incomplete hex escape stays literal", bytes(#"SET "\x4" "\xzz""# + "\n"), [words("SET", "x4", "xzz")]),
    ("empty quoted words", bytes("SET k \"\" ''\r\n"), [words("SET", "k", "", "")]),
    ("a quote opening mid-word", bytes("SET a\"b c\"\r\n"), [words("SET", "ab c")]),
    ("tabs and runs of spaces", bytes("GET\tkey   other \t\r\n"), [words("GET", "key", "other")]),
    ("a CR inside an inline line separates words", bytes("A\rB\r\n"), [words("A", "B")]),
    ("an inline line starting with a dollar", bytes("$3 x\r\n"), [words("$3", "x")]),
    ("a NUL inside an inline word", [0x41, 0x00, 0x42, 0x0A], [[[0x41, 0x00, 0x42]]]),
    (
        "pipelined multibulk and inline",
        bytes("*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n\r\nQUIT\n"),
        [words("PING"), words("PING"), words("ECHO", "hi"), words("QUIT")]
    ),
]

@Suite("RequestParser")
struct RequestParserTests {
    @Test("each valid input yields its requests, whole and byte by byte")
    func validInputs() {
        for entry in validTable {
            let expected = Outcome(requests: entry.requests)
            #expect(parse(entry.input) == expected, "\(entry.name), whole")
            #expect(byteByByte(entry.input) == expected, "\(entry.name), byte by byte")
        }
    }

    @Test("the same bytes yield the same requests whole, byte by byte and in seeded random splits")
    func splitsDoNotMatter() {
        let seed = seed(fallback: 20_261_124)
        print("RequestParserTests.splitsDoNotMatter seed \(seed) (set STOCKPILE_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        // Enough repetitions that the stream passes the compaction threshold many times.
        var stream: [UInt8] = []
        var expected = Outcome()
        for _ in 0..<300 {
            let entry = validTable[random.int(0...(validTable.count - 1))]
            stream += entry.input
            expected.requests += entry.requests
        }
        #expect(parse(stream) == expected, "whole")
        #expect(byteByByte(stream) == expected, "byte by byte")
        for round in 0..<20 {
            let chunks = randomChunks(for: stream.count, using: &random)
            #expect(parse(stream, chunks: chunks) == expected, "seed \(seed), round \(round)")
        }
    }

    @Test("appending raw buffers gives the same requests as appending sequences")
    func rawBufferAppend() throws {
        let input = validTable.flatMap(\.input)
        var parser = RequestParser()
        var requests: [[[UInt8]]] = []
        for start in stride(from: 0, to: input.count, by: 7) {
            input[start..<min(start + 7, input.count)].withUnsafeBytes { parser.append($0) }
            while let request = try parser.next() { requests.append(request) }
        }
        #expect(requests == validTable.flatMap(\.requests))
        #expect(parser.bufferedByteCount == 0)
    }

    @Test("a batch handed back is reused for the next, and a request kept past its batch keeps its words")
    func recycledBatches() throws {
        var parser = RequestParser()
        var kept: [ArgumentList] = []
        var seen: [[[UInt8]]] = []
        for round in 0..<50 {
            // Batches of varying size and argument length, so a reused array must grow or shrink.
            let batch = (0..<(1 + round % 7)).map { i in ["RESERVE", "r\(round)-\(i)", String(repeating: "v", count: 1 + (round * 13 + i) % 40), "MAIN", "\(i + 1)"] }
            var bytes: [UInt8] = []
            for words in batch { RequestEncoder.encode(words, into: &bytes) }
            bytes.withUnsafeBytes { parser.append($0) }
            let (requests, error) = parser.nextRequests(max: 16)
            #expect(error == nil)
            #expect(requests.map(\.words) == batch.map { $0.map { Array($0.utf8) } }, "round \(round)")
            seen.append(requests[0].words)
            // Every fifth batch keeps its first request beyond the batch, as a caller might.
            if round % 5 == 0 { kept.append(requests[0]) }
            parser.recycle(requests)
        }
        for (n, request) in kept.enumerated() { #expect(request.words == seen[n * 5], "request kept from round \(n * 5)") }
    }

    @Test("bufferedByteCount counts the bytes not yet consumed")
    func bufferedByteCount() throws {
        var parser = RequestParser()
        parser.append(contentsOf: bytes("PING\r\nPI"))
        #expect(parser.bufferedByteCount == 8)
        #expect(try parser.next() == words("PING"))
        #expect(parser.bufferedByteCount == 2)
        #expect(try parser.next() == nil)
        parser.append(contentsOf: bytes("NG\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhe"))
        #expect(try parser.next() == words("PING"))
        // The header and the finished first argument of the request in progress are consumed.
        #expect(try parser.next() == nil)
        #expect(parser.bufferedByteCount == 2)
        parser.append(contentsOf: bytes("llo\r\n"))
        #expect(try parser.next() == words("ECHO", "hello"))
        #expect(parser.bufferedByteCount == 0)
    }

    static let malformedTable: [(input: [UInt8], message: String)] = [
        (bytes("*abc\r\n"), "invalid multibulk length"),
        (bytes("*1x\r\n"), "invalid multibulk length"),
        (bytes("*\r\n"), "invalid multibulk length"),
        (bytes("*+1\r\n"), "invalid multibulk length"),
        (bytes("*01\r\n"), "invalid multibulk length"),
        (bytes("*-0\r\n"), "invalid multibulk length"),
        (bytes("*99999999999999999999\r\n"), "invalid multibulk length"),
        (bytes("*1\n$1\r\na\r\n"), "invalid multibulk length"),
        (bytes("*1\rX"), "invalid multibulk length"),
        (bytes("*" + String(repeating: "1", count: 40)), "too big mbulk count string"),
        (bytes("*1\r\nX"), "expected '$', got 'X'"),
        (bytes("*1\r\n\r\n"), #"expected '$', got '\x0d'"#),
        (bytes("*2\r\n$1\r\na\r\n:1\r\n"), "expected '$', got ':'"),
        (bytes("*1\r\n$-1\r\n"), "invalid bulk length"),
        (bytes("*1\r\n$abc\r\n"), "invalid bulk length"),
        (bytes("*1\r\n$3x\r\n"), "invalid bulk length"),
        (bytes("*1\r\n$65537\r\n"), "invalid bulk length"),
        (bytes("*1\r\n$9223372036854775808\r\n"), "invalid bulk length"),
        (bytes("*1\r\n$" + String(repeating: "9", count: 40)), "too big bulk count string"),
        (bytes("*1\r\n$3\r\nabcXY"), "missing CRLF after bulk string"),
        (bytes("*1\r\n$3\r\nabc\rX"), "missing CRLF after bulk string"),
        (bytes("*1\r\n$3\r\nabcd\r\n"), "missing CRLF after bulk string"),
        (bytes("*1025\r\n"), "too many arguments (the limit is 1024)"),
        (bytes(Array(repeating: "A", count: 1025).joined(separator: " ") + "\r\n"), "too many arguments (the limit is 1024)"),
        (
            bytes("*2\r\n$60000\r\n") + Array(repeating: 0x61, count: 60000) + bytes("\r\n$6000\r\n"),
            "request too large (the limit is 65536 bytes)"
        ),
        (Array(repeating: 0x41, count: 65536), "too big inline request"),
        (bytes("GET \"abc\r\n"), "unbalanced quotes in request"),
        (bytes("GET \"abc\"def\r\n"), "unbalanced quotes in request"),
        (bytes("GET 'abc\r\n"), "unbalanced quotes in request"),
        (bytes("GET 'abc'def\r\n"), "unbalanced quotes in request"),
        (bytes(#"GET "abc\"# + "\n"), "unbalanced quotes in request"),
        (bytes("PING\r\n*1\r\nX"), "expected '$', got 'X'"),
    ]

    @Test("malformed input throws Redis's message, whole and byte by byte", arguments: malformedTable.indices)
    func malformed(index: Int) {
        let (input, message) = Self.malformedTable[index]
        for outcome in [parse(input), byteByByte(input)] {
            #expect(outcome.error == ProtocolError(message), "\(outcome)")
        }
    }

    @Test("a framing error becomes an ERR Protocol error reply")
    func errorFrame() {
        #expect(ProtocolError("invalid bulk length").frame == .error("ERR Protocol error: invalid bulk length"))
    }

    @Test("input that is merely incomplete returns nil and never throws")
    func incomplete() throws {
        let prefixes = [
            "*", "*3", "*3\r", "*3\r\n", "*3\r\n$", "*3\r\n$3", "*3\r\n$3\r", "*3\r\n$3\r\nSE", "*3\r\n$3\r\nSET",
            "*3\r\n$3\r\nSET\r", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", "PING", "PING\r", "SET \"abc", "SET 'a b",
            "SET \"\\x4", String(repeating: "A", count: 65535),
        ]
        for prefix in prefixes {
            var parser = RequestParser()
            parser.append(contentsOf: bytes(prefix))
            #expect(try parser.next() == nil, "\(prefix.prefix(40))")
            #expect(try parser.next() == nil, "asked twice: \(prefix.prefix(40))")
        }
        // Every proper prefix of every valid input gives only the requests it completes.
        for entry in validTable {
            for end in 0..<entry.input.count {
                #expect(parse(Array(entry.input[..<end])).error == nil, "\(entry.name) cut at \(end)")
            }
        }
    }

    @Test("a multibulk request of exactly the size limit is accepted and one byte more is refused")
    func requestSizeBoundary() {
        for limit in [64, 100, 1000, ProtocolLimits.requestByteCountDefault] {
            let limits = ProtocolLimits(requestByteCountMax: limit)
            for extra in [0, 1] {
                let input = Self.multibulk(byteCount: limit + extra, argumentCount: 2)
                #expect(input.count == limit + extra)
                let outcome = parse(input, limits: limits)
                if extra == 0 {
                    #expect(outcome.requests.count == 1 && outcome.error == nil, "limit \(limit)")
                } else {
                    #expect(outcome.error == ProtocolError("request too large (the limit is \(limit) bytes)"), "limit \(limit)")
                }
                #expect(byteByByte(input, limits: limits) == outcome, "limit \(limit), byte by byte")
            }
        }
    }

    @Test("an inline line of exactly the size limit is accepted and one byte more is refused")
    func inlineSizeBoundary() {
        for limit in [64, 1000, ProtocolLimits.requestByteCountDefault] {
            let limits = ProtocolLimits(requestByteCountMax: limit)
            for terminator in ["\n", "\r\n"] {
                let fitting = bytes(String(repeating: "A", count: limit - terminator.utf8.count) + terminator)
                #expect(parse(fitting, limits: limits) == Outcome(requests: [[Array(fitting.prefix { $0 == 0x41 })]]))
                let over = bytes(String(repeating: "A", count: limit + 1 - terminator.utf8.count) + terminator)
                #expect(parse(over, limits: limits).error == ProtocolError("too big inline request"))
                #expect(byteByByte(over, limits: limits).error == ProtocolError("too big inline request"))
            }
        }
    }

    @Test("exactly the argument limit is accepted and one more is refused, multibulk and inline")
    func argumentCountBoundary() {
        for limit in [1, 3, ProtocolLimits.argumentCountDefault] {
            let limits = ProtocolLimits(argumentCountMax: limit)
            let refusal = ProtocolError("too many arguments (the limit is \(limit))")
            for count in [limit, limit + 1] {
                var multibulk: [UInt8] = []
                RequestEncoder.encode(Array(repeating: "a", count: count), into: &multibulk)
                let inline = bytes(Array(repeating: "a", count: count).joined(separator: " ") + "\r\n")
                for input in [multibulk, inline] {
                    let outcome = parse(input, limits: limits)
                    if count == limit {
                        #expect(outcome == Outcome(requests: [Array(repeating: bytes("a"), count: count)]))
                    } else {
                        #expect(outcome.error == refusal)
                    }
                }
            }
        }
    }

    @Test("the parser keeps going after a long stream of requests in one buffer")
    func manyRequestsInOneAppend() throws {
        var input: [UInt8] = []
        for index in 0..<10_000 { RequestEncoder.encode(["SET", "key\(index)", "v"], into: &input) }
        var parser = RequestParser()
        parser.append(contentsOf: input)
        var count = 0
        while let request = try parser.next() {
            #expect(request[1] == bytes("key\(count)"))
            count += 1
        }
        #expect(count == 10_000)
        #expect(parser.bufferedByteCount == 0)
    }

    @Test("a multibulk request fed byte by byte is not reparsed from its start")
    func multibulkByteByByteIsLinear() throws {
        // 200,000 arguments, one byte per call: a parser that reparsed the arguments from the start
        // on every call would parse about 10^11 headers (hours); this one takes seconds.
        let limits = ProtocolLimits(requestByteCountMax: 2 * 1024 * 1024, argumentCountMax: 200_000)
        var input: [UInt8] = []
        RequestEncoder.encode(Array(repeating: "a", count: 200_000), into: &input)
        var parser = RequestParser(limits: limits)
        var requests: [[[UInt8]]] = []
        let elapsed = try ContinuousClock().measure {
            for byte in input {
                parser.append(contentsOf: CollectionOfOne(byte))
                if let request = try parser.next() { requests.append(request) }
            }
        }
        #expect(requests.count == 1 && requests.first?.count == 200_000)
        #expect(elapsed < .seconds(60), "took \(elapsed)")
    }

    @Test("the search for the end of an inline line resumes where it stopped")
    func inlineSearchResumes() throws {
        // A search that restarted at the line's start would scan a long line fed in pieces once
        // per piece; memchr hides that in timings, so the resume point is checked directly.
        var parser = RequestParser()
        parser.append(contentsOf: bytes("PING\r\nSET key some-long-val"))
        #expect(try parser.next() == words("PING"))
        #expect(try parser.next() == nil)
        #expect(parser.inlineScanIndex == 27)
        parser.append(contentsOf: bytes("ue-still-coming"))
        #expect(try parser.next() == nil)
        #expect(parser.inlineScanIndex == 42)
        parser.append(contentsOf: bytes("\r\n"))
        #expect(try parser.next() == words("SET", "key", "some-long-value-still-coming"))
        #expect(parser.bufferedByteCount == 0)
    }

    @Test("seeded fuzz: random bytes and mutated requests never trap and split nothing differently")
    func fuzz() {
        let seed = seed(fallback: 77_001)
        print("RequestParserTests.fuzz seed \(seed) (set STOCKPILE_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        let limits = ProtocolLimits(requestByteCountMax: 256, argumentCountMax: 8)
        // Bytes that matter to the grammar, so random strings reach deep into it.
        let alphabet = bytes("*$\r\n\r\n0123456789-+ \t\"'\\x") + [0x00, 0x0B, 0xFF]
        let seeds = validTable.map(\.input) + Self.malformedTable.map(\.input).filter { $0.count < 400 }
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
                for _ in 0..<random.int(1...4) { Self.mutate(&input, using: &random, alphabet: alphabet) }
            }
            let whole = parse(input, limits: limits)
            kinds[whole.error != nil ? 2 : whole.requests.isEmpty ? 0 : 1] += 1
            for request in whole.requests {
                #expect(!request.isEmpty && request.count <= limits.argumentCountMax, "seed \(seed), round \(round)")
            }
            let split = parse(input, chunks: randomChunks(for: input.count, using: &random), limits: limits)
            #expect(split == whole, "seed \(seed), round \(round), input \(input)")
        }
        // The generator must reach all three endings, or the test shows little.
        #expect(kinds.allSatisfy { $0 > 100 }, "nothing / requests / errors: \(kinds)")
    }

    // MARK: - Helpers

    /// A multibulk request of exactly `byteCount` bytes: `argumentCount - 1` one-byte arguments,
    /// then one argument that takes up the rest.
    static func multibulk(byteCount: Int, argumentCount: Int) -> [UInt8] {
        var head: [UInt8] = []
        RequestEncoder.encode(Array(repeating: "a", count: argumentCount - 1).map(bytes), into: &head)
        head[1] = UInt8(ascii: "0") + UInt8(argumentCount)  // The count, patched: below ten.
        var payloadByteCount = byteCount - head.count - 5
        while head.count + 1 + String(payloadByteCount).utf8.count + 2 + payloadByteCount + 2 > byteCount {
            payloadByteCount -= 1
        }
        var out = head
        ReplyEncoder.appendBulk(Array(repeating: 0x62, count: payloadByteCount), into: &out)
        return out
    }

    fileprivate static func mutate(_ input: inout [UInt8], using random: inout SplitMix64, alphabet: [UInt8]) {
        let position = input.isEmpty ? 0 : random.int(0...(input.count - 1))
        switch random.int(0...4) {
        case 0 where !input.isEmpty: input[position] = random.byte()
        case 1: input.insert(alphabet[random.int(0...(alphabet.count - 1))], at: position)
        case 2 where !input.isEmpty: input.remove(at: position)
        case 3: input.removeLast(input.isEmpty ? 0 : random.int(0...input.count - position))
        default: input += input.prefix(random.int(0...input.count))
        }
    }
}
