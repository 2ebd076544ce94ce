// Request/reply transcripts run two ways with the same expectations: in-process through the request
// handler (bytes encoded and parsed back, no sockets), and against a live server over loopback. Both
// run in RESP2 and in RESP3. The engine runs on a manual clock, so times are exact.

import Foundation
import Stockpile
import StockpileProtocol
import Testing

@testable import StockpileServer

/// What a reply must look like.
enum Expect: CustomStringConvertible {
    /// Exactly this frame.
    case frame(ReplyFrame)
    /// An error whose text starts with this.
    case error(String)
    /// A record with at least these fields (integers or text).
    case fields([String: FieldValue])
    /// An array of this many items.
    case count(Int)

    enum FieldValue: CustomStringConvertible {
        case int(Int64)
        case text(String)
        var description: String {
            switch self {
            case .int(let n): "\(n)"
            case .text(let s): "\"\(s)\""
            }
        }
    }

    var description: String {
        switch self {
        case .frame(let f): "\(f)"
        case .error(let e): "error starting \(e)"
        case .fields(let f): "record with \(f)"
        case .count(let n): "array of \(n)"
        }
    }

    func matches(_ frame: ReplyFrame?) -> Bool {
        guard let frame else { return false }
        switch self {
        case .frame(let expected): return frame == expected
        case .error(let prefix): return frame.errorText?.hasPrefix(prefix) ?? false
        case .count(let n):
            if case .array(let items) = frame { return items.count == n }
            return false
        case .fields(let fields):
            for (name, value) in fields {
                guard let actual = frame[field: name] else { return false }
                switch value {
                case .int(let n): if actual.integerValue != n { return false }
                case .text(let s): if actual.textValue != s { return false }
                }
            }
            return true
        }
    }
}

typealias Step = (request: [String], expect: Expect)

/// One transcript: every command family, their refusals and the session commands.
let transcript: [Step] = [
    (["CLIENT", "SETNAME", "clerk"], .frame(.ok)),
    (["PING"], .frame(.simple("PONG"))),
    (["ECHO", "said twice"], .frame(.text("said twice"))),
    (["ping", "hello there"], .frame(.text("hello there"))),
    (["SELECT", "0"], .frame(.ok)),
    (["SELECT", "1"], .error("ERR DB index is out of range")),
    (["CLIENT", "GETNAME"], .frame(.text("clerk"))),
    (["NOSUCH", "a"], .error("ERR unknown command 'NOSUCH'")),
    (["RESERVE", "o1", "SKU-1", "MAIN"], .error("ERR wrong number of arguments")),
    (["ADJUST", "SKU-1", "MAIN", "ten", "REASON", "received"], .error("INVALID")),
    (["ADJUST", "SKU-1", "MAIN", "10", "REASON", "received"], .fields(["variant": .text("SKU-1"), "on_hand": .int(10), "reserved": .int(0), "available": .int(10), "seq": .int(1)])),
    (["STOCK", "SKU-1", "MAIN"], .fields(["on_hand": .int(10), "available": .int(10)])),
    (["STOCK", "NEVER-USED", "MAIN"], .fields(["on_hand": .int(0), "reserved": .int(0), "available": .int(0)])),
    (["STOCK", "SKU-1", "NOWHERE"], .error("NOTFOUND")),
    (["RESERVE", "o1", "SKU-1", "main", "3", "TTL", "60", "CUSTOMER", "c-9"],
        .fields(["id": .text("o1"), "status": .text("active"), "customer": .text("c-9"), "expires_at_ms": .int(1_700_000_060_000)])),
    (["RESERVE", "o1", "SKU-1", "MAIN", "3", "TTL", "60", "CUSTOMER", "c-9"], .fields(["id": .text("o1"), "replayed": .int(1)])),
    (["RESERVE", "o1", "SKU-1", "MAIN", "4"], .error("CONFLICT")),
    (["RESERVE", "o2", "SKU-1", "MAIN", "8"], .frame(.error("INSUFFICIENT SKU-1 MAIN available 7 requested 8"))),
    (["RESERVE", "o2", "SKU-1", "MAIN", "1000000000001"], .error("LIMIT")),
    (["RESERVE", "o2", "SKU-1", "MAIN", "7"], .fields(["status": .text("active")])),
    (["RESERVATION", "o1"], .fields(["id": .text("o1"), "status": .text("active")])),
    (["RESERVATION", "nope"], .error("NOTFOUND")),
    (["EXTEND", "o1", "120"], .fields(["expires_at_ms": .int(1_700_000_120_000)])),
    (["CONFIRM", "o1"], .fields(["expires_at_ms": .int(0)])),
    (["FULFILL", "o1", "SKU-1", "MAIN", "1"], .fields(["status": .text("partially_fulfilled")])),
    (["RELEASE", "o1", "REASON", "cancelled", "KEY", "k-rel"], .fields(["status": .text("fulfilled")])),
    (["RELEASE", "o1", "REASON", "cancelled", "KEY", "k-rel"], .fields(["replayed": .int(1)])),
    (["ADJUST", "SKU-1", "MAIN", "5", "REASON", "received", "KEY", "k-rel"], .error("CONFLICT")),
    (["STOCK", "SKU-1"], .count(2)),
    (["SETQTY", "SKU-1", "MAIN", "20", "REASON", "correction", "IF", "3"], .error("CONFLICT")),
    (["SETQTY", "SKU-1", "MAIN", "20", "REASON", "correction", "IF", "9"], .fields(["on_hand": .int(20), "reserved": .int(7)])),
    (["COUNT", "SKU-1", "MAIN", "18", "NOTE", "shelf 4"], .fields(["on_hand": .int(18), "variance": .int(-2)])),
    (["ADJUST", "SKU-1", "MAIN", "-30", "REASON", "lost"], .error("NEGATIVE")),
    (["WAREHOUSE", "SET", "east", "NAME", "East DC", "PRIORITY", "5"], .fields(["code": .text("EAST"), "priority": .int(5), "active": .int(1)])),
    (["WAREHOUSE", "LIST"], .count(2)),
    (["TRANSFER", "SKU-1", "MAIN", "EAST", "4"], .count(2)),
    (["TRANSFER", "SKU-1", "MAIN", "MAIN", "4"], .error("INVALID")),
    (["RETURN", "SKU-1", "EAST", "1", "RESTOCK", "REF", "rma-1"], .fields(["warehouse": .text("EAST"), "on_hand": .int(5)])),
    (["POLICY", "SET", "SKU-1", "LOWSTOCK", "10", "BACKORDER", "yes"], .fields(["variant": .text("SKU-1"), "low_stock": .int(10), "backorder": .int(1)])),
    (["POLICY", "GET", "SKU-1"], .fields(["backorder": .int(1), "unlimited": .int(0)])),
    (["LOWSTOCK"], .count(2)),
    (["RESERVE", "o3", "SKU-1", "EAST", "8"], .fields(["status": .text("active")])),
    (["BACKORDERS"], .count(1)),
    (["HISTORY", "SKU-1", "MAIN", "LIMIT", "2"], .count(2)),
    (["EVENTS", "1", "LIMIT", "3"], .count(3)),
    (["EVENTS", "1", "LIMIT", "0"], .error("INVALID")),
    (["STATS"], .fields(["warehouses": .int(2), "refused_insufficient": .int(1), "refused_conflict": .int(3)])),
    (["CONFIG", "GET", "save"], .fields(["save": .text("")])),
    (["COMMAND", "COUNT"], .frame(.integer(Int64(CommandCatalog.entries.count)))),
    (["HELLO", "4"], .error("NOPROTO")),
    (["SNAPSHOT"], .error("ERR")),
    (["ADJUST", "SKU-2", "MAIN", "2", "REASON", "damaged"], .error("INVALID")),
]

/// Runs steps through the request handler, each request its own batch, encoding and parsing the
/// bytes the way a socket would carry them.
func runInProcess(_ steps: [Step], handler: RequestHandler) async throws -> [ReplyFrame?] {
    var session = handler.newSession(id: 1)
    var replies: [ReplyFrame?] = []
    var parser = ReplyParser()
    for step in steps {
        let result = await handler.run(RequestBatch(requests: [step.request.map { Array($0.utf8) }]), session: session)
        session = result.session
        parser.append(contentsOf: result.bytes)
        replies.append(try parser.next())
    }
    return replies
}

func runLive(_ steps: [Step], server: TestServer) throws -> [ReplyFrame?] {
    let client = try server.client()
    return try steps.map { try client.call($0.request) }
}

func check(_ steps: [Step], _ replies: [ReplyFrame?], _ how: String) {
    for (step, reply) in zip(steps, replies) {
        #expect(step.expect.matches(reply), "\(how): \(step.request.joined(separator: " ")) answered \(String(describing: reply)), expected \(step.expect)")
    }
}

/// Refusals the command table finds before the engine sees the request: those of mutations count in
/// STATS by code (SPEC §2, §7.12), those of queries and the ERR replies do not.
let refusalsOfTheCommandTable: [Step] = [
    (["STATS"], .fields(["refused_invalid": .int(0), "refused_limit": .int(0)])),
    (["ADJUST", "s", "MAIN", "1"], .frame(.error("INVALID ADJUST needs REASON r"))),
    (["ADJUST", "s", "MAIN", "1", "REASON", "stolen"], .error("INVALID REASON must be one of")),
    (["SETQTY", "s", "MAIN", "1e3", "REASON", "count"], .frame(.error("INVALID quantity must be a decimal integer"))),
    (["RESERVE", "r", "s", "MAIN", "1", "STRATEGY", "fastest"], .frame(.error("INVALID STRATEGY must be priority, most or split"))),
    (["RESERVE", "r", "s", "MAIN", "99999999999999999999"], .frame(.error("LIMIT quantity may not exceed 1000000000000"))),
    (["WAREHOUSE", "SET", "E", "ACTIVE", "maybe"], .frame(.error("INVALID ACTIVE must be yes or no"))),
    (["ADJUST", "note", "MAIN", "1", "REASON", "received"], .frame(.error("INVALID variant may not be the option word NOTE"))),
    // Queries and ERR replies are not refused mutations.
    (["HISTORY", "s", "MAIN", "LIMIT", "ten"], .error("INVALID")),
    (["LOWSTOCK", "LIMIT", "99999999999999999999"], .error("LIMIT")),
    (["EVENTS", "-1"], .error("INVALID")),
    (["STOCK", "note"], .error("INVALID")),
    (["ADJUST", "s", "MAIN"], .error("ERR wrong number of arguments")),
    (["RESERVE", "r", "s", "MAIN", "1", "TTL", "5", "FOO", "bar"], .error("ERR syntax error")),
    // The engine's own refusals count as before, alongside.
    (["RESERVE", "r", "s", "MAIN", "1"], .error("INSUFFICIENT")),
    (["STATS"], .fields(["refused_invalid": .int(6), "refused_limit": .int(1), "refused_insufficient": .int(1)])),
]

@Suite("Transcripts")
struct TranscriptTests {
    static func engine() -> Engine { Engine(clock: ManualClock()) }

    @Test("the transcript holds in-process, in RESP2 and RESP3", arguments: [false, true])
    func inProcess(resp3: Bool) async throws {
        let steps = resp3 ? [(["HELLO", "3"], Expect.fields(["proto": .int(3), "server": .text("stockpile")]))] + transcript : transcript
        let replies = try await runInProcess(steps, handler: RequestHandler(engine: Self.engine()))
        check(steps, replies, "in-process")
        let adjust = steps.firstIndex { $0.request == ["ADJUST", "SKU-1", "MAIN", "10", "REASON", "received"] }!
        switch replies[adjust] {
        case .record?: #expect(resp3, "RESP2 carries records as flat arrays")
        case .array?: #expect(!resp3, "RESP3 carries records as maps")
        default: Issue.record("a cell record was expected, got \(String(describing: replies[adjust]))")
        }
    }

    @Test("the transcript holds against a live server, in RESP2 and RESP3", arguments: [false, true])
    func live(resp3: Bool) async throws {
        let steps = resp3 ? [(["HELLO", "3"], Expect.fields(["proto": .int(3)]))] + transcript : transcript
        try await withServer(engine: Self.engine()) { server in
            check(steps, try runLive(steps, server: server), "live")
        }
    }

    @Test("in-process and live replies are byte for byte the same")
    func sameBothWays() async throws {
        let inProcess = try await runInProcess(transcript, handler: RequestHandler(engine: Self.engine()))
        let live = try await withServer(engine: Self.engine()) { try runLive(transcript, server: $0) }
        for (i, step) in transcript.enumerated() where inProcess[i] != live[i] {
            Issue.record("\(step.request.joined(separator: " ")): in-process \(String(describing: inProcess[i])), live \(String(describing: live[i]))")
        }
    }

    @Test("STATS counts the refusals the command table finds in mutations, in-process and live")
    func commandTableRefusalsAreCounted() async throws {
        let steps = refusalsOfTheCommandTable
        check(steps, try await runInProcess(steps, handler: RequestHandler(engine: Self.engine())), "in-process")
        try await withServer(engine: Self.engine()) { server in
            check(steps, try runLive(steps, server: server), "live")
        }
    }

    @Test("a mutation refused by the command table is not counted for a connection that may not run it")
    func commandTableRefusalsNeedTheRole() async throws {
        var configuration = ServerConfiguration()
        configuration.auth = AuthTable(["tok-read": [.read]])
        let engine = Self.engine()
        let steps: [Step] = [
            (["ADJUST", "s", "MAIN", "1"], .error("INVALID")),
            (["AUTH", "tok-read"], .frame(.ok)),
            (["ADJUST", "s", "MAIN", "1"], .error("INVALID")),
            (["STATS"], .fields(["refused_invalid": .int(0)])),
        ]
        check(steps, try await runInProcess(steps, handler: RequestHandler(engine: engine, configuration: configuration)), "in-process")
    }

    @Test("a pipeline of many requests is answered in order")
    func pipelineOrder() async throws {
        try await withServer { server in
            let client = try server.client()
            _ = try client.call(["ADJUST", "P", "MAIN", "100000", "REASON", "received"])
            for i in 0..<2_000 {
                client.enqueue(i % 2 == 0 ? ["PING", "m\(i)"] : ["RESERVE", "r\(i)", "P", "MAIN", "1"])
            }
            try client.flush()
            for i in 0..<2_000 {
                let reply = try client.reply()
                if i % 2 == 0 {
                    #expect(reply == .text("m\(i)"), "reply \(i)")
                } else {
                    #expect(reply?[field: "id"]?.textValue == "r\(i)", "reply \(i)")
                }
            }
            #expect(try client.call(["STOCK", "P", "MAIN"])?[field: "reserved"]?.integerValue == 1_000)
        }
    }

    @Test("a request split into single bytes is answered once, whole")
    func byteByByte() async throws {
        try await withServer { server in
            let client = try server.client()
            var bytes: [UInt8] = []
            RequestEncoder.encode(["ADJUST", "S", "MAIN", "7", "REASON", "received", "NOTE", "split note"], into: &bytes)
            RequestEncoder.encode(["PING", "binary\r\n\u{0}payload"], into: &bytes)
            bytes += Array("PING inline\r\n".utf8)
            for b in bytes {
                client.enqueueRaw([b])
                try client.flush()
            }
            #expect(try client.reply()?[field: "on_hand"]?.integerValue == 7)
            #expect(try client.reply() == .text("binary\r\n\u{0}payload"))
            #expect(try client.reply() == .text("inline"))
        }
    }
}
