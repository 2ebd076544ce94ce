// The TCP target: a sale's operations are RESP requests to a running server (`stockpile serve`), one
// connection per channel. Every channel asks for RESP3 at connect, so records arrive as maps and are
// read by field name. An error reply whose code is one of the engine's refusal codes is a refusal,
// as the engine would have answered in-process; any other error (ERR, NOAUTH, …) means the request
// never reached the engine's rules, and is thrown.
//
// A channel blocks in `send` and `recv`, so `channelsBlock` is true: the scenario runs each channel
// on a thread of its own.

import Stockpile
import StockpileProtocol
import StockpileClient

public struct RESPSaleTarget: SaleTarget {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)" }
    public var channelsBlock: Bool { true }

    public func openChannel() throws(SaleTargetError) -> any SaleChannel {
        let client: RESPClient
        do {
            client = try RESPClient(host: host, port: port)
        } catch {
            throw SaleTargetError("\(description): \(error) (is `stockpile serve --port \(port)` running?)")
        }
        let channel = RESPSaleChannel(client: client, target: description)
        let hello = try channel.call(["HELLO", "3"])
        if case .error(let text) = hello {
            throw SaleTargetError("\(description) refused HELLO 3: \(text) (the flash sale drives a server without authentication)")
        }
        return channel
    }
}

/// One connection. Unchecked Sendable for the reason `RESPClient` is: one worker uses a channel at a
/// time, on its own thread.
final class RESPSaleChannel: SaleChannel, @unchecked Sendable {
    private let client: RESPClient
    private let target: String
    /// Requests sent before their replies are read, in the audit's bulk reads: a thousand replies stay
    /// far below the server's reply backlog, so neither side can stall.
    private static let batchCount = 1000
    private static let refusalCodes = Dictionary(uniqueKeysWithValues: RefusalCode.allCases.map { ($0.name, $0) })

    init(client: RESPClient, target: String) {
        self.client = client
        self.target = target
    }

    func call(_ words: [String]) throws(SaleTargetError) -> ReplyFrame {
        client.enqueue(words)
        return try nextReply(for: words)
    }

    private func nextReply(for words: [String]) throws(SaleTargetError) -> ReplyFrame {
        let frame: ReplyFrame?
        do {
            frame = try client.reply()
        } catch {
            throw SaleTargetError("\(target): \(words.first ?? "") \(words.dropFirst().first ?? ""): \(error)")
        }
        guard let frame else { throw SaleTargetError("\(target) closed the connection (after \(words.first ?? ""))") }
        return frame
    }

    func reserve(id: String, lines: [SaleLine], ttl: Duration) throws(SaleTargetError) -> Outcome<HoldFigures> {
        var words = ["RESERVE", id]
        for line in lines { words += [line.item, saleWarehouse, String(line.quantity.units)] }
        words += ["TTL", String(ttl.components.seconds)]
        return try hold(call(words), for: words)
    }

    func confirm(id: String) throws(SaleTargetError) -> Outcome<HoldFigures> {
        let words = ["CONFIRM", id]
        return try hold(call(words), for: words)
    }

    func fulfill(id: String, line: SaleLine?) throws(SaleTargetError) -> Outcome<HoldFigures> {
        var words = ["FULFILL", id]
        if let line { words += [line.item, saleWarehouse, String(line.quantity.units)] }
        return try hold(call(words), for: words)
    }

    func release(id: String) throws(SaleTargetError) -> Outcome<HoldFigures> {
        let words = ["RELEASE", id]
        return try hold(call(words), for: words)
    }

    func restock(item: String, units: Quantity) throws(SaleTargetError) -> Outcome<ItemFigures> {
        let words = ["ADJUST", item, saleWarehouse, String(units.units), "REASON", "received"]
        let frame = try call(words)
        if let refusal = try refusal(in: frame, for: words) { return .refused(refusal) }
        return .ok(try cell(frame, for: words))
    }

    func holds(_ ids: [String]) throws(SaleTargetError) -> [Outcome<HoldFigures>] {
        try pipelined(ids.map { ["RESERVATION", $0] }) { frame, words throws(SaleTargetError) in try hold(frame, for: words) }
    }

    func items(_ names: [String]) throws(SaleTargetError) -> [ItemFigures] {
        try pipelined(names.map { ["STOCK", $0, saleWarehouse] }) { frame, words throws(SaleTargetError) in
            if let refusal = try refusal(in: frame, for: words) { throw SaleTargetError("\(words.joined(separator: " ")): \(refusal)") }
            return try cell(frame, for: words)
        }
    }

    func counters() throws(SaleTargetError) -> UnitCounters {
        let words = ["STATS"]
        let frame = try call(words)
        var u = UnitCounters()
        u.reserved = try Quantity(integer("units_reserved", in: frame, for: words))
        u.fulfilled = try Quantity(integer("units_fulfilled", in: frame, for: words))
        u.released = try Quantity(integer("units_released", in: frame, for: words))
        u.expired = try Quantity(integer("units_expired", in: frame, for: words))
        return u
    }

    // MARK: Reading replies

    /// Sends the requests a batch at a time and reads each reply with `read`.
    private func pipelined<T>(_ requests: [[String]], read: (ReplyFrame, [String]) throws(SaleTargetError) -> T) throws(SaleTargetError) -> [T] {
        var results: [T] = []
        results.reserveCapacity(requests.count)
        var start = 0
        while start < requests.count {
            let end = min(requests.count, start + Self.batchCount)
            for i in start..<end { client.enqueue(requests[i]) }
            for i in start..<end { results.append(try read(try nextReply(for: requests[i]), requests[i])) }
            start = end
        }
        return results
    }

    private func hold(_ frame: ReplyFrame, for words: [String]) throws(SaleTargetError) -> Outcome<HoldFigures> {
        if let refusal = try refusal(in: frame, for: words) { return .refused(refusal) }
        guard let statusText = text("status", in: frame), let status = ReservationStatus(rawValue: statusText),
            case .array(let lineFrames)? = field("lines", in: frame)
        else { throw unexpected(frame, for: words, expecting: "a reservation record") }
        var lines: [HoldFigures.Line] = []
        for lineFrame in lineFrames {
            guard let item = text("variant", in: lineFrame) else { throw unexpected(frame, for: words, expecting: "lines with a variant") }
            lines.append(
                HoldFigures.Line(
                    item: item, quantity: Quantity(try integer("quantity", in: lineFrame, for: words)),
                    fulfilled: Quantity(try integer("fulfilled", in: lineFrame, for: words)),
                    released: Quantity(try integer("released", in: lineFrame, for: words))))
        }
        return .ok(HoldFigures(status: status, lines: lines))
    }

    private func cell(_ frame: ReplyFrame, for words: [String]) throws(SaleTargetError) -> ItemFigures {
        ItemFigures(onHand: Quantity(try integer("on_hand", in: frame, for: words)), reserved: Quantity(try integer("reserved", in: frame, for: words)))
    }

    /// The refusal an error reply carries; nil when the reply is not an error. An error that is not a
    /// refusal code is thrown: the request never reached the rules.
    private func refusal(in frame: ReplyFrame, for words: [String]) throws(SaleTargetError) -> Refusal? {
        guard case .error(let text) = frame else { return nil }
        let parts = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard let code = Self.refusalCodes[parts[0]] else {
            throw SaleTargetError("\(target): \(words.prefix(2).joined(separator: " ")) answered -\(text)")
        }
        let message = parts.dropFirst().joined(separator: " ")
        // `INSUFFICIENT <variant> <warehouse> available <n> requested <m>` (SPEC §7.8).
        if code == .insufficient, parts.count == 7, parts[3] == "available", let available = Int64(parts[4]), let requested = Int64(parts[6]) {
            return .insufficient(variant: parts[1], warehouse: parts[2], available: Quantity(available), requested: Quantity(requested))
        }
        return Refusal(code, message)
    }

    private func field(_ name: String, in frame: ReplyFrame) -> ReplyFrame? {
        guard case .record(let fields) = frame else { return nil }
        return fields.first { $0.name == name }?.value
    }

    /// A text field, however the reply carries it (bulk bytes or a status line).
    private func text(_ name: String, in frame: ReplyFrame) -> String? {
        switch field(name, in: frame) {
        case .bulk(let bytes)?: String(decoding: bytes, as: UTF8.self)
        case .string(let s)?: s
        case .simple(let s)?: s
        default: nil
        }
    }

    private func integer(_ name: String, in frame: ReplyFrame, for words: [String]) throws(SaleTargetError) -> Int64 {
        guard case .integer(let n)? = field(name, in: frame) else { throw unexpected(frame, for: words, expecting: "an integer \(name)") }
        return n
    }

    private func unexpected(_ frame: ReplyFrame, for words: [String], expecting what: String) -> SaleTargetError {
        SaleTargetError("\(target): \(words.prefix(2).joined(separator: " ")) answered \(frame), not \(what)")
    }
}
