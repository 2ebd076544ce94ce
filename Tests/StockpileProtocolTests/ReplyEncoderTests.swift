// ReplyEncoder and RequestEncoder: the exact bytes of every frame kind in RESP2 and RESP3, nested
// records and nulls included, and numbers written digit by digit as Swift would print them.

import Testing

@testable import StockpileProtocol

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite("ReplyEncoder")
struct ReplyEncoderTests {
    /// A frame and its bytes in RESP2 and in RESP3.
    static let table: [(frame: ReplyFrame, resp2: String, resp3: String)] = [
        (.simple("OK"), "+OK\r\n", "+OK\r\n"),
        (.simple(""), "+\r\n", "+\r\n"),
        (.simple("a\r\nb\nc\rd"), "+a  b c d\r\n", "+a  b c d\r\n"),
        (.error("ERR unknown command 'X'"), "-ERR unknown command 'X'\r\n", "-ERR unknown command 'X'\r\n"),
        (.error("CONFLICT\r\n+OK"), "-CONFLICT  +OK\r\n", "-CONFLICT  +OK\r\n"),
        (.integer(0), ":0\r\n", ":0\r\n"),
        (.integer(9), ":9\r\n", ":9\r\n"),
        (.integer(10), ":10\r\n", ":10\r\n"),
        (.integer(-1), ":-1\r\n", ":-1\r\n"),
        (.integer(1_000_000_000_000), ":1000000000000\r\n", ":1000000000000\r\n"),
        (.integer(Int64.max), ":9223372036854775807\r\n", ":9223372036854775807\r\n"),
        (.integer(Int64.min), ":-9223372036854775808\r\n", ":-9223372036854775808\r\n"),
        (.bulk([]), "$0\r\n\r\n", "$0\r\n\r\n"),
        (.text("héllo"), "$6\r\nhéllo\r\n", "$6\r\nhéllo\r\n"),
        (.bulk(Array("a\r\nb".utf8)), "$4\r\na\r\nb\r\n", "$4\r\na\r\nb\r\n"),
        (.null, "$-1\r\n", "_\r\n"),
        (.array([]), "*0\r\n", "*0\r\n"),
        (.array([.integer(1), .null, .text("x")]), "*3\r\n:1\r\n$-1\r\n$1\r\nx\r\n", "*3\r\n:1\r\n_\r\n$1\r\nx\r\n"),
        (.record([]), "*0\r\n", "%0\r\n"),
        (
            .record([RecordField("id", .text("r1")), RecordField("expires_at_ms", .integer(0))]),
            "*4\r\n$2\r\nid\r\n$2\r\nr1\r\n$13\r\nexpires_at_ms\r\n:0\r\n",
            "%2\r\n$2\r\nid\r\n$2\r\nr1\r\n$13\r\nexpires_at_ms\r\n:0\r\n"
        ),
        (
            // A reservation-like record: a null field and a list of line records inside.
            .record([
                RecordField("customer", .null),
                RecordField("lines", .array([.record([RecordField("quantity", .integer(2))]), .record([])])),
            ]),
            "*4\r\n$8\r\ncustomer\r\n$-1\r\n$5\r\nlines\r\n*2\r\n*2\r\n$8\r\nquantity\r\n:2\r\n*0\r\n",
            "%2\r\n$8\r\ncustomer\r\n_\r\n$5\r\nlines\r\n*2\r\n%1\r\n$8\r\nquantity\r\n:2\r\n%0\r\n"
        ),
        (.push([]), "*0\r\n", ">0\r\n"),
        (
            .push([.text("message"), .text("events"), .text("{}")]),
            "*3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$2\r\n{}\r\n",
            ">3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$2\r\n{}\r\n"
        ),
        (
            .push([.record([RecordField("n", .null)]), .array([.push([.null])])]),
            "*2\r\n*2\r\n$1\r\nn\r\n$-1\r\n*1\r\n*1\r\n$-1\r\n",
            ">2\r\n%1\r\n$1\r\nn\r\n_\r\n*1\r\n>1\r\n_\r\n"
        ),
    ]

    @Test("every frame kind has its exact bytes in RESP2 and RESP3", arguments: table.indices)
    func exactBytes(index: Int) {
        let (frame, resp2, resp3) = Self.table[index]
        #expect(text(ReplyEncoder.encoded(frame, version: .resp2)) == resp2)
        #expect(text(ReplyEncoder.encoded(frame, version: .resp3)) == resp3)
    }

    @Test("encoding appends to what the buffer already holds")
    func appends() {
        var out = Array("+PONG\r\n".utf8)
        ReplyEncoder.encode(.integer(42), version: .resp2, into: &out)
        ReplyEncoder.encode(.null, version: .resp3, into: &out)
        #expect(text(out) == "+PONG\r\n:42\r\n_\r\n")
    }

    @Test("integers are written exactly as Swift prints them")
    func decimals() {
        var values: [Int64] = [0, 1, 9, 10, 11, 99, 100, 101, -9, -10, -11, .max, .min, .max - 1, .min + 1]
        for power in 0..<19 {
            let p = (0..<power).reduce(Int64(1)) { product, _ in product * 10 }
            values += [p - 1, p, p + 1, -(p - 1), -p, -(p + 1)]
        }
        for value in values {
            var out: [UInt8] = []
            ReplyEncoder.appendDecimal(value, into: &out)
            #expect(text(out) == String(value))
        }
    }

    @Test("a request is encoded as a RESP2 array of bulk strings")
    func requests() {
        var fromStrings: [UInt8] = []
        RequestEncoder.encode(["SET", "k", "", "héllo"], into: &fromStrings)
        #expect(text(fromStrings) == "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$6\r\nhéllo\r\n")
        var fromBytes: [UInt8] = []
        RequestEncoder.encode([Array("SET".utf8), [], [0x0D, 0x0A, 0x00]], into: &fromBytes)
        #expect(fromBytes == Array("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$3\r\n".utf8) + [0x0D, 0x0A, 0x00, 0x0D, 0x0A])
    }

    @Test("what RequestEncoder writes RequestParser reads back")
    func requestRoundTrip() throws {
        let requests: [[[UInt8]]] = [
            [Array("PING".utf8)],
            [Array("RESERVE".utf8), Array("o-1".utf8), Array("SKU".utf8), Array("*".utf8), Array("2".utf8)],
            [Array("ECHO".utf8), [], (0...255).map { UInt8($0) }],
        ]
        var out: [UInt8] = []
        for request in requests { RequestEncoder.encode(request, into: &out) }
        var parser = RequestParser()
        parser.append(contentsOf: out)
        var parsed: [[[UInt8]]] = []
        while let request = try parser.next() { parsed.append(request) }
        #expect(parsed == requests)
    }
}
