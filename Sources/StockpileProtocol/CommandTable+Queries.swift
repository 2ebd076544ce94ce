// The queries of SPEC §5 and the connection commands Redis clients send (PING, AUTH, HELLO, COMMAND,
// CLIENT, SELECT, CONFIG GET, QUIT, SUBSCRIBE, UNSUBSCRIBE). Queries create nothing, so their readers
// only check shape and form; the engine judges names and ranges as it does for mutations.

import StockpileCore

extension CommandTable {
    static let limitOptions = OptionWords(.limit)

    /// `STOCK variant [warehouse]`
    static func stock(_ a: ArgumentList) throws(RequestError) -> Query {
        try Words.refuseOptionWordAsVariant(a, at: 1)
        guard a.count == 2 || a.count == 3 else { throw .wrongArity(command: "stock") }
        let variant = try Words.text(a[1], "variant")
        let warehouse = a.count == 3 ? try Words.text(a[2], "warehouse") : nil
        return .stock(variant: variant, warehouse: warehouse)
    }

    /// `RESERVATION id`
    static func reservation(_ a: ArgumentList) throws(RequestError) -> Query {
        try expectCount(a, 2, .reservation)
        return .reservation(id: try Words.text(a[1], "reservation id"))
    }

    /// Reads `[LIMIT n]` from `start` on.
    static func limitOption(_ a: ArgumentList, from start: Int, command: String) throws(RequestError) -> Int? {
        var limit: Int?
        try Words.options(a, from: start, accepted: limitOptions, command: command) { _, value throws(RequestError) in
            limit = try Words.limit(value)
        }
        return limit
    }

    /// `LOWSTOCK [threshold] [LIMIT n]`
    static func lowStock(_ a: ArgumentList) throws(RequestError) -> Query {
        let end = Words.optionBoundary(a, from: 1)
        guard end <= 2 else { throw .wrongArity(command: "lowstock") }
        let threshold = end == 2 ? try Words.quantity(a[1], "threshold") : nil
        return .lowStock(threshold: threshold, limit: try limitOption(a, from: end, command: "LOWSTOCK"))
    }

    /// `BACKORDERS [LIMIT n]`
    static func backorders(_ a: ArgumentList) throws(RequestError) -> Query {
        let end = try positional(a, 0, .backorders, variantFirst: false)
        return .backorders(limit: try limitOption(a, from: end, command: "BACKORDERS"))
    }

    /// `HISTORY variant warehouse [LIMIT n]`
    static func history(_ a: ArgumentList) throws(RequestError) -> Query {
        let end = try positional(a, 2, .history)
        let variant = try Words.text(a[1], "variant")
        let warehouse = try Words.text(a[2], "warehouse")
        return .history(variant: variant, warehouse: warehouse, limit: try limitOption(a, from: end, command: "HISTORY"))
    }

    /// `EVENTS from-seq [LIMIT n]`
    static func events(_ a: ArgumentList) throws(RequestError) -> Query {
        let end = try positional(a, 1, .events, variantFirst: false)
        let from = try Words.seq(a[1], "from-seq")
        return .events(from: from, limit: try limitOption(a, from: end, command: "EVENTS"))
    }

    /// `INFO [section]`; the section is lower-cased, as Redis matches section names in any case.
    static func info(_ a: ArgumentList) throws(RequestError) -> Query {
        guard a.count <= 2 else { throw .wrongArity(command: "info") }
        let section = a.count == 2 ? try Words.text(a[1], "section").lowercased() : nil
        return .info(section: section)
    }

    /// The connection commands. They answer what Redis clients expect, so their shapes follow Redis.
    static func session(_ name: CommandName, _ a: ArgumentList) throws(RequestError) -> SessionRequest {
        switch name {
        case .ping:
            guard a.count <= 2 else { throw .wrongArity(command: "ping") }
            // The message is echoed as bytes: it need not be text.
            return .ping(message: a.count == 2 ? Array(a[1]) : nil)
        case .echo:
            guard a.count == 2 else { throw .wrongArity(command: "echo") }
            return .echo(message: Array(a[1]))
        case .subscribe:
            guard a.count >= 2 else { throw .wrongArity(command: "subscribe") }
            return .subscribe(channels: try texts(a, from: 1, "channel"))
        case .unsubscribe:
            return .unsubscribe(channels: try texts(a, from: 1, "channel"))
        case .auth:
            // `AUTH token` or `AUTH user token`: the user name is ignored (clients send `default`).
            guard a.count == 2 || a.count == 3 else { throw .wrongArity(command: "auth") }
            return .auth(token: try Words.text(a[a.count - 1], "token"))
        case .hello:
            return try hello(a)
        case .command:
            // `COMMAND DOCS`, `COMMAND COUNT`, …: only the subcommand matters to the answer.
            return .command(subcommand: a.count >= 2 ? try Words.upper(a[1], "subcommand") : nil)
        case .client:
            guard a.count >= 2 else { throw .wrongArity(command: "client") }
            return .client(subcommand: try Words.upper(a[1], "subcommand"), arguments: try texts(a, from: 2, "argument"))
        case .select:
            try expectCount(a, 2, .select)
            let index = try Words.int64(a[1], "SELECT index", outOfRange: .invalid("SELECT index is out of range"))
            guard let index = Int(exactly: index) else { throw .refused(.invalid("SELECT index is out of range")) }
            return .select(index: index)
        case .config:
            guard a.count >= 2 else { throw .wrongArity(command: "config") }
            guard Words.equalsIgnoringCase(a[1], "GET") else {
                throw .syntax("unknown subcommand '\(Words.echo(a[1]))' of CONFIG (GET)")
            }
            guard a.count >= 3 else { throw .wrongArity(command: "config|get") }
            return .configGet(patterns: try texts(a, from: 2, "pattern"))
        case .quit:
            // Redis ignores whatever follows QUIT; a client closing its connection should not be refused.
            return .quit
        default:
            preconditionFailure("\(name.rawValue) is not a connection command")
        }
    }

    /// `HELLO [protover [AUTH user token] [SETNAME name]]`
    static func hello(_ a: ArgumentList) throws(RequestError) -> SessionRequest {
        guard a.count >= 2 else { return .hello(version: nil, token: nil, clientName: nil) }
        let version = try Words.int64(a[1], "protover", outOfRange: .invalid("protover is out of range"))
        var token: String?
        var clientName: String?
        var i = 2
        while i < a.count {
            if Words.equalsIgnoringCase(a[i], "AUTH") {
                guard token == nil else { throw .syntax("AUTH given twice") }
                guard i + 2 < a.count else { throw .syntax("AUTH needs a user name and a token") }
                token = try Words.text(a[i + 2], "token")
                i += 3
            } else if Words.equalsIgnoringCase(a[i], "SETNAME") {
                guard clientName == nil else { throw .syntax("SETNAME given twice") }
                guard i + 1 < a.count else { throw .syntax("SETNAME needs a value") }
                clientName = try Words.text(a[i + 1], "SETNAME")
                i += 2
            } else {
                throw .syntax("unknown option '\(Words.echo(a[i]))' for HELLO")
            }
        }
        return .hello(version: Int(exactly: version) ?? Int.max, token: token, clientName: clientName)
    }

    /// The words `a[start...]` as text.
    static func texts(_ a: ArgumentList, from start: Int, _ what: String) throws(RequestError) -> [String] {
        var result: [String] = []
        result.reserveCapacity(max(0, a.count - start))
        for index in start..<max(start, a.count) { result.append(try Words.text(a[index], what)) }
        return result
    }
}
