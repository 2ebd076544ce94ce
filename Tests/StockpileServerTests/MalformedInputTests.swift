// Malformed input over a raw socket, as Redis's own protocol tests do: each case either gets an
// error reply and keeps the connection, or gets `-ERR Protocol error` and is closed. Afterwards a
// new connection still gets PONG and the state is exactly what it was.

import Foundation
import Stockpile
import StockpileProtocol
import Testing

@testable import StockpileServer

struct MalformedCase: CustomStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    /// The start of the error reply expected first; nil when no reply is expected at all.
    var reply: String?
    /// Whether the server closes the connection after it.
    var closes: Bool

    var description: String { name }

    init(_ name: String, _ text: String, reply: String?, closes: Bool) {
        self.init(name, Array(text.utf8), reply: reply, closes: closes)
    }

    init(_ name: String, _ bytes: [UInt8], reply: String?, closes: Bool) {
        self.name = name
        self.bytes = bytes
        self.reply = reply
        self.closes = closes
    }
}

let malformedCases: [MalformedCase] = [
    MalformedCase("junk after *", "*abc\r\n", reply: "ERR Protocol error: invalid multibulk length", closes: true),
    MalformedCase("huge argument count", "*3000\r\n", reply: "ERR Protocol error", closes: true),
    MalformedCase("negative bulk length", "*2\r\n$-3\r\n", reply: "ERR Protocol error: invalid bulk length", closes: true),
    MalformedCase("huge bulk length", "*1\r\n$99999999999\r\n", reply: "ERR Protocol error: invalid bulk length", closes: true),
    MalformedCase("junk where $ belongs", "*1\r\nxyz\r\n", reply: "ERR Protocol error: expected '$'", closes: true),
    MalformedCase("bulk without its CRLF", "*1\r\n$4\r\nPINGxx", reply: "ERR Protocol error", closes: true),
    MalformedCase("unbalanced quotes", "ADJUST \"abc REASON x\r\n", reply: "ERR Protocol error: unbalanced quotes", closes: true),
    MalformedCase("unterminated inline line over the limit", String(repeating: "A", count: 70_000), reply: "ERR Protocol error", closes: true),
    MalformedCase("an empty multibulk is no request", "*0\r\nPING\r\n", reply: nil, closes: false),
    MalformedCase("a negative multibulk is no request", "*-1\r\nPING\r\n", reply: nil, closes: false),
    MalformedCase("binary bytes as a command", [0x00, 0x01, 0xFF, 0xFE, 0x0D, 0x0A], reply: "ERR unknown command", closes: false),
    MalformedCase("unknown command", "FLUSHALL\r\n", reply: "ERR unknown command", closes: false),
    MalformedCase("wrong arity", "RESERVE o1 SKU MAIN\r\n", reply: "ERR wrong number of arguments", closes: false),
    MalformedCase("bad number", "ADJUST SKU MAIN 1x REASON received\r\n", reply: "INVALID", closes: false),
    MalformedCase("number too big for 64 bits", "RESERVE o1 SKU MAIN 99999999999999999999999\r\n", reply: "LIMIT", closes: false),
    MalformedCase("quantity one over the limit", "RESERVE o1 SKU MAIN 1000000000001\r\n", reply: "LIMIT", closes: false),
    MalformedCase("too many lines", "RESERVE o1 " + String(repeating: "SKU MAIN 1 ", count: 257) + "\r\n", reply: "LIMIT", closes: false),
    MalformedCase("unknown option", "ADJUST SKU MAIN 1 REASON received COLOR red\r\n", reply: "ERR syntax error", closes: false),
    MalformedCase("bad variant id", "ADJUST sk\u{7F}u MAIN 1 REASON received\r\n", reply: "INVALID", closes: false),
]

@Suite("Malformed input")
struct MalformedInputTests {
    /// STATS and the event count: what must not change when input is refused.
    static func digest(_ server: TestServer) throws -> [ReplyFrame?] {
        let client = try server.client()
        return [try client.call(["STATS"]), try client.call(["EVENTS", "0", "LIMIT", "10000"]), try client.call(["STOCK", "SKU"])]
    }

    @Test("malformed input gets an error or a close, never a crash or a change", arguments: malformedCases)
    func malformed(_ c: MalformedCase) async throws {
        try await withServer { server in
            _ = try server.call("ADJUST", "SKU", "MAIN", "5", "REASON", "received")
            _ = try server.call("RESERVE", "keep", "SKU", "MAIN", "2")
            let before = try Self.digest(server)
            let client = try server.client(timeoutSeconds: 5)
            client.enqueueRaw(c.bytes)
            if c.reply == nil {
                // Nothing to answer: the connection goes on and answers the PING that follows.
                #expect(try client.reply() == .simple("PONG"))
            } else {
                let reply = try client.reply()
                #expect(reply?.errorText?.hasPrefix(c.reply!) == true, "got \(String(describing: reply))")
                if c.closes {
                    #expect(try client.reply() == nil, "the connection should be closed")
                } else {
                    #expect(try client.call(["PING"]) == .simple("PONG"))
                }
            }
            #expect(try server.call("PING") == .simple("PONG"))
            // Refused requests are counted in STATS (refused_*): compare everything else.
            let after = try Self.digest(server)
            #expect(after[1] == before[1], "the ledger changed")
            #expect(after[2] == before[2], "the stock changed")
        }
    }

    @Test("seeded random bytes never crash the server or change the state")
    func randomBytes() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["STOCKPILE_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("random-bytes seed \(seed) (STOCKPILE_SEED=\(seed) repeats it)")
        try await withServer { server in
            var rng = SplitMix64(seed: seed)
            _ = try server.call("ADJUST", "SKU", "MAIN", "5", "REASON", "received")
            let before = try Self.digest(server)
            let starts: [[UInt8]] = [Array("*".utf8), Array("*2\r\n$".utf8), Array("RESERVE ".utf8), Array("\"".utf8), []]
            for _ in 0..<200 {
                let client = try server.client(timeoutSeconds: 5)
                var bytes = starts[Int(rng.next() % UInt64(starts.count))]
                for _ in 0..<Int(rng.next() % 200) { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
                client.enqueueRaw(bytes + Array("\r\nPING\r\n".utf8))
                try client.flush()
            }
            #expect(try server.call("PING") == .simple("PONG"))
            let after = try Self.digest(server)
            #expect(after[1] == before[1], "the ledger changed (seed \(seed))")
            #expect(after[2] == before[2], "the stock changed (seed \(seed))")
        }
    }
}
