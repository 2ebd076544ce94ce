// Connections under stress: many at once, more than allowed, a client that does not read its
// replies, a subscriber that falls behind, and a shutdown with requests in flight.

import Foundation
import Stockpile
import StockpileClient
import StockpileProtocol
import Testing

@testable import StockpileServer

@Suite("Connections")
struct ConnectionTests {
    @Test("two thousand connections open at once are all served")
    func manyConnections() async throws {
        try await withServer { server in
            var clients: [RESPClient] = []
            for _ in 0..<2_000 { clients.append(try server.client()) }
            for (i, c) in clients.enumerated() { c.enqueue(["PING", "c\(i)"]); try c.flush() }
            for (i, c) in clients.enumerated() { #expect(try c.reply() == .text("c\(i)")) }
            let info = try server.call("INFO", "clients")?.textValue ?? ""
            #expect(info.contains("connected_clients:2001"), "\(info)")
        }
    }

    @Test("a connection over the client limit is told so and closed; a freed slot is reused")
    func clientLimit() async throws {
        try await withServer(configure: { $0.clientCountMax = 3 }) { server in
            var clients = try (0..<3).map { _ in try server.client() }
            for c in clients { #expect(try c.call(["PING"]) == .simple("PONG")) }
            let extra = try server.client()
            #expect(try extra.reply()?.errorText == "ERR max number of clients reached")
            #expect(try extra.reply() == nil)
            clients.removeLast()  // closes it
            // The server notices the close on its next turn; retry briefly.
            var reply: ReplyFrame?
            for _ in 0..<50 {
                reply = try server.client().call(["PING"])
                if reply == .simple("PONG") { break }
                usleep(20_000)
            }
            #expect(reply == .simple("PONG"))
        }
    }

    @Test("a client that pipelines without reading gets every reply, in order, once it reads")
    func backPressure() async throws {
        try await withServer(configure: { $0.replyBacklogByteCountMax = 64 * 1024 }) { server in
            let client = try server.client()
            let count = 60_000
            for i in 0..<count { client.enqueue(["PING", "message number \(i) with some padding to make replies larger"]) }
            // Written in one go while nothing is read: the server must stop reading, not buffer it all.
            let writer = Background { try client.flush() }
            for i in 0..<count {
                let reply = try client.receive()
                guard reply == .text("message number \(i) with some padding to make replies larger") else {
                    Issue.record("reply \(i) was \(String(describing: reply))")
                    break
                }
            }
            try writer.value()
            #expect(try server.call("PING") == .simple("PONG"))
        }
    }

    @Test("a subscriber that does not read is disconnected; a reading one gets every event")
    func slowSubscriber() async throws {
        try await withServer(configure: { $0.subscriberBacklogByteCountMax = 64 * 1024 }) { server in
            let slow = try server.client()
            #expect(try slow.call(["SUBSCRIBE", "events"]) != nil)
            let reader = try server.client()
            #expect(try reader.call(["SUBSCRIBE", "events"]) != nil)
            let events = 6_000
            let note = String(repeating: "n", count: 900)
            let readerTask = Background { () throws -> Int in
                var seen = 0
                while seen < events, let frame = try reader.receive() {
                    if case .array(let parts) = frame, parts.first == .text("message") { seen += 1 }
                }
                return seen
            }
            let producer = try server.client()
            for i in 0..<events { producer.enqueue(["ADJUST", "SKU", "MAIN", "1", "REASON", "received", "NOTE", "\(note)\(i)"]) }
            try producer.flush()
            for i in 0..<events {
                let reply = try producer.reply()
                #expect(reply?[field: "on_hand"]?.integerValue == Int64(i + 1), "the producer's request \(i) must succeed")
                if reply?[field: "on_hand"] == nil { break }
            }
            #expect(try readerTask.value() == events)
            let info = try server.call("INFO", "stats")?.textValue ?? ""
            #expect(info.contains("pubsub_dropped_slow_subscribers:1"), "\(info)")
            // The slow subscriber's connection was closed: reading what reached it ends at the close
            // (were it still open, the read would time out and throw).
            var delivered = 0
            while try slow.receive() != nil { delivered += 1 }
            #expect(delivered < events)
        }
    }

    @Test("a server runs one loop fewer than the cores (at least one), whatever its durability")
    func loopCountByDurability() {
        let cores = ServerConfiguration.eventLoopCountDefault
        #expect(cores == min(ServerConfiguration.eventLoopCountMax, max(1, ProcessInfo.processInfo.activeProcessorCount)))
        #expect(ServerConfiguration.eventLoopCountDefault(for: .always) == max(1, cores - 1))
        #expect(ServerConfiguration.eventLoopCountDefault(for: .none) == max(1, cores - 1))
        #expect(ServerConfiguration.eventLoopCountDefault(for: .interval(.milliseconds(5))) == max(1, cores - 1))
    }

    @Test("connections spread over several loops are each served in order; events and limits span the loops")
    func severalLoops() async throws {
        try await withServer(configure: { $0.eventLoopCount = 3 }) { server in
            // Handed to the loops in turn: with 3 loops, 3 of each.
            let subscriber = try server.client()
            #expect(try subscriber.call(["SUBSCRIBE", "events"]) != nil)
            let clients = try (0..<8).map { _ in try server.client() }
            let ids = try clients.map { try $0.call(["CLIENT", "ID"])?.integerValue }
            #expect(Set(ids).count == clients.count, "connection ids are unique over the loops: \(ids)")
            _ = try clients[0].call(["ADJUST", "SKU", "MAIN", "100000", "REASON", "received"])
            let perClient = 200
            for (k, c) in clients.enumerated() {
                for i in 0..<perClient { c.enqueue(["RESERVE", "c\(k)-\(i)", "SKU", "MAIN", "1"]) }
                try c.flush()
            }
            for (k, c) in clients.enumerated() {
                for i in 0..<perClient {
                    let reply = try c.reply()
                    guard reply?[field: "id"]?.textValue == "c\(k)-\(i)", reply?[field: "status"]?.textValue == "active" else {
                        Issue.record("client \(k), reply \(i): \(String(describing: reply))")
                        return
                    }
                }
            }
            // The subscriber, on the first loop, hears of the ADJUST and of every reservation, whichever
            // loop made it (a missing one times the read out).
            var messages = 0
            while messages < clients.count * perClient + 1, let frame = try subscriber.receive() {
                if case .array(let parts) = frame, parts.first == .text("message") { messages += 1 }
            }
            #expect(messages == clients.count * perClient + 1)
            let info = try clients[5].call(["INFO"])?.textValue ?? ""
            #expect(info.contains("event_loops:3"), "\(info)")
            #expect(info.contains("connected_clients:9"), "\(info)")
        }
    }

    @Test("the client limit counts the connections of every loop")
    func clientLimitOverLoops() async throws {
        try await withServer(configure: { $0.eventLoopCount = 3; $0.clientCountMax = 4 }) { server in
            let clients = try (0..<4).map { _ in try server.client() }
            for c in clients { #expect(try c.call(["PING"]) == .simple("PONG")) }
            let extra = try server.client()
            #expect(try extra.reply()?.errorText == "ERR max number of clients reached")
        }
    }

    @Test("shutdown answers what was received, then closes and stops accepting")
    func shutdown() async throws {
        let server = try TestServer()
        let client = try server.client()
        _ = try client.call(["ADJUST", "SKU", "MAIN", "1000", "REASON", "received"])
        for i in 0..<500 { client.enqueue(["RESERVE", "s\(i)", "SKU", "MAIN", "1"]) }
        try client.flush()
        try await Task.sleep(for: .milliseconds(50))
        await server.stop()
        var answered = 0
        while let reply = try client.reply() {
            #expect(reply[field: "status"]?.textValue == "active")
            answered += 1
        }
        // Everything the server had read was answered; nothing is half-done.
        let stock = await server.engine.cell(variant: "SKU", warehouse: "MAIN").value!
        #expect(Int64(answered) == stock.reserved.units)
        #expect(answered == 500)
        #expect(throws: SocketError.self) { _ = try RESPClient(host: "127.0.0.1", port: server.port) }
    }

    @Test("a batch's replies join the bytes still to write, or take their place when none are; the lent buffer comes back empty")
    func replyBufferHandOff() {
        let c = Connection(id: 1, descriptor: -1, session: SessionState(id: 1, roles: nil), limits: ProtocolLimits())
        c.replies.bytes = Array("+first\r\n".utf8)
        c.enqueue(c.replies)
        #expect(c.outbound == Array("+first\r\n".utf8) && c.replies.bytes.isEmpty)
        // Two bytes written, the rest still queued: the next replies go after them.
        c.outboundOffset = 2
        c.replies.bytes = Array("+second\r\n".utf8)
        c.enqueue(c.replies)
        #expect(Array(c.outbound[c.outboundOffset...]) == Array("irst\r\n+second\r\n".utf8) && c.replies.bytes.isEmpty)
        // Everything written: the replies become the queued bytes as they are.
        c.outboundOffset = c.outbound.count
        c.replies.bytes = Array("+third\r\n".utf8)
        c.enqueue(c.replies)
        #expect(c.outboundOffset == 0 && c.outbound == Array("+third\r\n".utf8) && c.replies.bytes.isEmpty)
    }
}

/// Work on a thread of its own whose result is collected later, for a test that must write and
/// read one connection at the same time.
final class Background<T: Sendable>: @unchecked Sendable {
    private var result: Result<T, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> T) {
        Thread {
            self.result = Result { try body() }
            self.done.signal()
        }.start()
    }

    func value() throws -> T {
        done.wait()
        return try result!.get()
    }
}
