// TCP mode's setup and check, over the wire: reading cells with `STOCK variant MAIN` and stocking them
// with `ADJUST variant MAIN n REASON received`, pipelined in batches. A batch is sent whole and its
// replies read before the next, so the server's reply backlog never holds more than one batch.

import Stockpile
import StockpileProtocol
import StockpileClient

/// Why TCP mode could not set up or check a run; the text says what happened and what to do.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What a cell holds, as `STOCK` reports it.
struct CellFigures: Sendable {
    var onHand: Int64
    var reserved: Int64
}

enum WireCells {
    /// Requests per batch: replies of a thousand cell records stay far below the server's reply
    /// backlog (4 MiB), so sending a whole batch before reading cannot stall either side.
    static let batchCount = 1000

    static func connect(_ target: TCPTarget) throws(BenchFailure) -> RESPClient {
        do {
            return try RESPClient(host: target.host, port: target.port)
        } catch {
            throw BenchFailure("\(target): \(error) (is `stockpile serve --port \(target.port)` running?)")
        }
    }

    /// The figures of `variant MAIN` for every variant, in order.
    static func read(_ variants: [String], over client: RESPClient) throws(BenchFailure) -> [CellFigures] {
        var figures: [CellFigures] = []
        figures.reserveCapacity(variants.count)
        try exchange(variants.count, over: client, request: { ["STOCK", variants[$0], "MAIN"] }) { i, frame throws(BenchFailure) in
            guard let onHand = integerField("on_hand", in: frame), let reserved = integerField("reserved", in: frame) else {
                throw BenchFailure("STOCK \(variants[i]) MAIN: expected a cell record, got \(describe(frame))")
            }
            figures.append(CellFigures(onHand: onHand, reserved: reserved))
        }
        return figures
    }

    /// Adds `units` to the on_hand of `variant MAIN` for every variant.
    static func stock(_ variants: [String], units: Int64, over client: RESPClient) throws(BenchFailure) {
        let delta = String(units)
        try exchange(variants.count, over: client, request: { ["ADJUST", variants[$0], "MAIN", delta, "REASON", "received"] }) { i, frame throws(BenchFailure) in
            if case .error(let text) = frame {
                throw BenchFailure(
                    "ADJUST \(variants[i]) MAIN \(delta): \(text) (a cell holds at most \(Limits.cellQuantityMax.units) units:"
                        + " restart the server without its data, or give a smaller --stock)")
            }
        }
    }

    /// Sends `request(i)` for every i below `count`, a batch at a time, and hands each reply to `reply`.
    private static func exchange(
        _ count: Int, over client: RESPClient, request: (Int) -> [String], reply: (Int, ReplyFrame) throws(BenchFailure) -> Void
    ) throws(BenchFailure) {
        var start = 0
        while start < count {
            let end = min(count, start + batchCount)
            for i in start..<end { client.enqueue(request(i)) }
            do {
                try client.flush()
            } catch {
                throw BenchFailure("sending to the server: \(error)")
            }
            for i in start..<end {
                let frame: ReplyFrame?
                do {
                    frame = try client.receive()
                } catch {
                    throw BenchFailure("reading from the server: \(error)")
                }
                guard let frame else { throw BenchFailure("the server closed the connection") }
                if case .error(let text) = frame, text.hasPrefix("NOAUTH") {
                    throw BenchFailure("the server asks for AUTH (\(text)); TCP mode drives a server without authentication, on loopback")
                }
                try reply(i, frame)
            }
            start = end
        }
    }

    /// The integer field `name` of a record: a map in RESP3, a flat `name value …` array in RESP2.
    static func integerField(_ name: String, in frame: ReplyFrame) -> Int64? {
        switch frame {
        case .record(let fields):
            guard case .integer(let n)? = fields.first(where: { $0.name == name })?.value else { return nil }
            return n
        case .array(let items):
            let key = Array(name.utf8)
            var i = 0
            while i + 1 < items.count {
                if items[i].bulkBytes == key || items[i] == .simple(name) {
                    guard case .integer(let n) = items[i + 1] else { return nil }
                    return n
                }
                i += 2
            }
            return nil
        default:
            return nil
        }
    }

    static func describe(_ frame: ReplyFrame) -> String {
        switch frame {
        case .error(let text): "the error '\(text)'"
        case .simple(let text): "'\(text)'"
        case .integer(let n): "the integer \(n)"
        case .null: "null"
        default: "\(frame)"
        }
    }
}
