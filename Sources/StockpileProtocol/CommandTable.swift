// The command table: the words of one request become a `Request`, or the `RequestError` that tells the
// caller why not (SPEC §5, §7.14). It converts forms only: a number must be a decimal integer and a
// boolean yes or no here, but whether a quantity is in range or a name well formed is the engine's
// `Validation`, so the wire and the Swift API can never disagree about what is valid.
//
// Reading rules, the same for every command:
// - The command name, subcommands and option words are case-insensitive.
// - Positional arguments come first, options after. The positional part ends at the first option
//   word (option words are reserved), except that a reservation id or a warehouse code standing
//   first is taken by its position, since those may be spelled like an option word. A variant may
//   not be: an option word where a command's variant stands first is INVALID, naming the word.
// - Too few or too many positional arguments is `ERR wrong number of arguments`; in the option part,
//   an unknown word, a repeated option or an option without its value is `ERR syntax error`.

import StockpileCore

/// The commands of SPEC §5, spelled as on the wire.
enum CommandName: String, CaseIterable {
    case ping = "PING", reserve = "RESERVE", extend = "EXTEND", confirm = "CONFIRM", release = "RELEASE",
        fulfill = "FULFILL", adjust = "ADJUST", setQuantity = "SETQTY", count = "COUNT", transfer = "TRANSFER",
        returnStock = "RETURN", stock = "STOCK", reservation = "RESERVATION", lowStock = "LOWSTOCK",
        backorders = "BACKORDERS", history = "HISTORY", events = "EVENTS", warehouse = "WAREHOUSE",
        policy = "POLICY", stats = "STATS", info = "INFO", snapshot = "SNAPSHOT", subscribe = "SUBSCRIBE",
        unsubscribe = "UNSUBSCRIBE", auth = "AUTH", hello = "HELLO", command = "COMMAND", client = "CLIENT",
        select = "SELECT", config = "CONFIG", quit = "QUIT", echo = "ECHO", reset = "RESET"

    /// The command a word names, in any ASCII case; nil for an unknown command.
    init?(_ word: Word) {
        guard let name = Self.table.value(of: word) else { return nil }
        self = name
    }

    private static let table = SpellingTable(allCases.map { ($0.rawValue, $0) })

    /// The name in error messages, lower-cased as Redis writes it.
    var lowercased: String { rawValue.lowercased() }
}

extension Request {
    /// Understands the words of one request, the command name first.
    ///
    /// - Parameter arguments: at least one word.
    /// - Returns: the request, or why it could not be understood (see `RequestError.frame` for the
    ///   reply). Cost: one pass over the words, and the Strings the request keeps; command names
    ///   and option words are matched in place.
    public static func parse(_ arguments: ArgumentList) -> Result<Request, RequestError> {
        var none = SpareLines()
        return parse(arguments, reusing: &none)
    }

    /// `parse`, a RESERVE's array of lines taken from `spare` when it has one (see `SpareLines`).
    public static func parse(_ arguments: ArgumentList, reusing spare: inout SpareLines) -> Result<Request, RequestError> {
        precondition(!arguments.isEmpty, "a request has at least its command name")
        do {
            return .success(try parsed(arguments, spare: &spare))
        } catch {
            return .failure(error)
        }
    }

    /// `parse` of the words given one by one (tests, tools).
    public static func parse(_ arguments: [[UInt8]]) -> Result<Request, RequestError> {
        parse(ArgumentList(arguments))
    }

    static func parsed(_ a: ArgumentList, spare: inout SpareLines) throws(RequestError) -> Request {
        guard let name = CommandName(a[0]) else { throw unknownCommand(a) }
        switch name {
        case .reserve: return .mutation(try CommandTable.reserve(a, spare: &spare))
        case .extend: return .mutation(try CommandTable.extend(a))
        case .confirm: return .mutation(try CommandTable.confirm(a))
        case .release: return .mutation(try CommandTable.release(a))
        case .fulfill: return .mutation(try CommandTable.fulfill(a))
        case .adjust: return .mutation(try CommandTable.adjust(a))
        case .setQuantity: return .mutation(try CommandTable.setQuantity(a))
        case .count: return .mutation(try CommandTable.count(a))
        case .transfer: return .mutation(try CommandTable.transfer(a))
        case .returnStock: return .mutation(try CommandTable.returnStock(a))
        case .warehouse: return try CommandTable.warehouse(a)
        case .policy: return try CommandTable.policy(a)
        case .stock: return .query(try CommandTable.stock(a))
        case .reservation: return .query(try CommandTable.reservation(a))
        case .lowStock: return .query(try CommandTable.lowStock(a))
        case .backorders: return .query(try CommandTable.backorders(a))
        case .history: return .query(try CommandTable.history(a))
        case .events: return .query(try CommandTable.events(a))
        case .stats:
            try CommandTable.expectCount(a, 1, .stats)
            return .query(.stats)
        case .info: return .query(try CommandTable.info(a))
        case .snapshot:
            try CommandTable.expectCount(a, 1, .snapshot)
            return .snapshot
        case .reset:
            try CommandTable.expectCount(a, 1, .reset)
            return .reset
        case .ping, .echo, .subscribe, .unsubscribe, .auth, .hello, .command, .client, .select, .config, .quit:
            return .session(try CommandTable.session(name, a))
        }
    }

    /// Redis's error for an unknown command keeps the name as typed and the first arguments; only as
    /// many are kept as the message can show.
    static func unknownCommand(_ a: ArgumentList) -> RequestError {
        var shown: [String] = []
        var byteCount = 0
        for index in 1..<a.count where byteCount < RequestError.echoByteCountMax {
            let word = a[index]
            let text = String(decoding: word.prefix(RequestError.echoByteCountMax), as: UTF8.self)
            byteCount += text.utf8.count + 3
            shown.append(text)
        }
        return .unknownCommand(name: String(decoding: a[0].prefix(RequestError.echoByteCountMax), as: UTF8.self), arguments: shown)
    }

    /// The class of the mutation `arguments` name, judged by the command name alone (and the
    /// subcommand of WAREHOUSE and POLICY); nil when they name no mutation. It serves a request the
    /// command table refused, for which no `Request` exists: the server counts such a refused mutation
    /// in STATS (SPEC §7.12) when the connection may run it. It agrees with `commandClass`.
    public static func mutationClass(of arguments: ArgumentList) -> CommandClass? {
        guard !arguments.isEmpty, let name = CommandName(arguments[0]) else { return nil }
        switch name {
        case .reserve, .extend, .confirm, .release: return .checkout
        case .fulfill, .returnStock: return .fulfillment
        case .adjust, .setQuantity, .count, .transfer: return .inventory
        case .warehouse, .policy:
            // WAREHOUSE LIST and POLICY GET are queries.
            guard arguments.count >= 2, Words.equalsIgnoringCase(arguments[1], "SET") else { return nil }
            return .admin
        default: return nil
        }
    }

    /// `mutationClass(of:)` of the words given one by one (tests, tools).
    public static func mutationClass(of arguments: [[UInt8]]) -> CommandClass? {
        mutationClass(of: ArgumentList(arguments))
    }

    /// Who may run the request (SPEC §5 roles, §7.17).
    public var commandClass: CommandClass {
        switch self {
        case .mutation(let command):
            switch command {
            case .reserve, .extend, .confirm, .release: .checkout
            case .fulfill, .returnStock: .fulfillment
            case .adjust, .setQuantity, .count, .transfer: .inventory
            // Loading stock from outside replaces counts wholesale: an administrator's act.
            case .setWarehouse, .setPolicy, .importStock: .admin
            }
        case .query: .read
        case .session(let session):
            switch session {
            // Pub/sub delivers the event stream, which is read access; unsubscribing belongs with it.
            case .subscribe, .unsubscribe: .read
            case .ping, .echo, .auth, .hello, .command, .client, .select, .configGet, .quit: .session
            }
        case .snapshot, .reset: .admin
        }
    }
}

extension RequestError {
    /// Redis cuts what it repeats of a caller's words at 128 bytes; so does Stockpile.
    static let echoByteCountMax = 128

    /// The reply to a request that could not be understood. The connection stays usable.
    public var frame: ReplyFrame {
        switch self {
        case .unknownCommand(let name, let arguments):
            // Redis's exact wording, trailing space included, so clients that match on it keep working.
            var args = ""
            for argument in arguments where args.utf8.count < Self.echoByteCountMax {
                let room = Self.echoByteCountMax - args.utf8.count
                args += "'" + String(decoding: argument.utf8.prefix(room), as: UTF8.self) + "' "
            }
            let shownName = String(decoding: name.utf8.prefix(Self.echoByteCountMax), as: UTF8.self)
            return .error(ReplyFrame.oneLine("ERR unknown command '\(shownName)', with args beginning with: \(args)"))
        case .wrongArity(let command):
            return .error("ERR wrong number of arguments for '\(command)' command")
        case .syntax(let message):
            return .error(ReplyFrame.oneLine("ERR syntax error: \(message)"))
        case .refused(let refusal):
            return ReplyFrame(refusal)
        }
    }
}

/// The readers of each command, one function per command of SPEC §5. Each takes every word of the
/// request, the command name at index 0.
enum CommandTable {
    /// Throws `wrongArity` unless the request has exactly `count` words, the name included.
    static func expectCount(_ a: ArgumentList, _ count: Int, _ name: CommandName) throws(RequestError) {
        guard a.count == count else { throw .wrongArity(command: name.lowercased) }
    }
}
