// The command table, one table per concern: every command of SPEC §5 read from good words (names and
// options in mixed case), every class of error with its exact reply, and the class of every command.

import StockpileCore
import Testing

@testable import StockpileProtocol

/// Words split at spaces, as an inline request without quotes.
private func words(_ line: String) -> [[UInt8]] {
    line.split(separator: " ").map { Array($0.utf8) }
}

struct ParseCase: Sendable, CustomTestStringConvertible {
    var arguments: [[UInt8]]
    var expected: Request

    init(_ line: String, _ expected: Request) {
        self.arguments = words(line)
        self.expected = expected
    }

    init(_ arguments: [String], _ expected: Request) {
        self.arguments = arguments.map { Array($0.utf8) }
        self.expected = expected
    }

    var testDescription: String { arguments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ") }
}

struct ErrorCase: Sendable, CustomTestStringConvertible {
    var arguments: [[UInt8]]
    var frame: ReplyFrame

    init(_ line: String, _ error: String) {
        self.arguments = words(line)
        self.frame = .error(error)
    }

    init(_ arguments: [[UInt8]], _ error: String) {
        self.arguments = arguments
        self.frame = .error(error)
    }

    var testDescription: String { arguments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ") }
}

private func line(_ v: String, _ w: String, _ q: Int64) -> ReserveLine { ReserveLine(variant: v, warehouse: w, quantity: Quantity(q)) }
private func selector(_ v: String, _ w: String, _ q: Int64) -> LineSelector { LineSelector(variant: v, warehouse: w, quantity: Quantity(q)) }

@Suite("Command table")
struct CommandTableTests {
    static let goodRequests: [ParseCase] = [
        // Mutations.
        ParseCase("reserve o-1 SKU-1 main 2", .mutation(.reserve(ReserveRequest(id: "o-1", lines: [line("SKU-1", "main", 2)])))),
        ParseCase(
            "Reserve o-2 A MAIN 1 B * 3 ttl 600 Customer c-9 strategy SPLIT",
            .mutation(.reserve(ReserveRequest(
                id: "o-2", lines: [line("A", "MAIN", 1), line("B", "*", 3)], ttl: .seconds(600), customer: "c-9", strategy: .split)))),
        ParseCase("RESERVE o-3 A MAIN 1 STRATEGY most", .mutation(.reserve(ReserveRequest(id: "o-3", lines: [line("A", "MAIN", 1)], strategy: .most)))),
        ParseCase("RESERVE o-4 A MAIN 1 strategy Priority", .mutation(.reserve(ReserveRequest(id: "o-4", lines: [line("A", "MAIN", 1)], strategy: .priority)))),
        // An option's value is taken as it stands, even when it is spelled like an option word.
        ParseCase("RESERVE o-5 A MAIN 1 CUSTOMER ttl", .mutation(.reserve(ReserveRequest(id: "o-5", lines: [line("A", "MAIN", 1)], customer: "ttl")))),
        // A reservation id standing first is taken by its position.
        ParseCase("RESERVE TTL A MAIN 1", .mutation(.reserve(ReserveRequest(id: "TTL", lines: [line("A", "MAIN", 1)])))),
        // Limits are the engine's: the table passes 10^12 + 1 on, for `Validation` to refuse as LIMIT.
        ParseCase("RESERVE o-6 A MAIN 1000000000001", .mutation(.reserve(ReserveRequest(id: "o-6", lines: [line("A", "MAIN", 1_000_000_000_001)])))),
        ParseCase("extend o-1 300", .mutation(.extend(id: "o-1", ttl: .seconds(300)))),
        ParseCase("EXTEND o-1 ttl 300", .mutation(.extend(id: "o-1", ttl: .seconds(300)))),
        ParseCase("confirm o-1", .mutation(.confirm(id: "o-1"))),
        ParseCase("CONFIRM KEY", .mutation(.confirm(id: "KEY"))),
        ParseCase("EXTEND o-1 300 KEY x-1", .mutation(.extend(id: "o-1", ttl: .seconds(300), key: "x-1"))),
        ParseCase("extend o-1 ttl 300 key x-1", .mutation(.extend(id: "o-1", ttl: .seconds(300), key: "x-1"))),
        ParseCase("CONFIRM o-1 KEY c-1", .mutation(.confirm(id: "o-1", key: "c-1"))),
        ParseCase("CONFIRM KEY KEY c-1", .mutation(.confirm(id: "KEY", key: "c-1"))),
        ParseCase("WAREHOUSE SET east PRIORITY 5 KEY w-1", .mutation(.setWarehouse(WarehouseChange(code: "east", priority: 5), key: "w-1"))),
        ParseCase("POLICY SET SKU LOWSTOCK 2 KEY p-1", .mutation(.setPolicy(PolicyChange(variant: "SKU", lowStock: 2), key: "p-1"))),
        ParseCase("release o-1", .mutation(.release(id: "o-1"))),
        ParseCase("RELEASE o-1 SKU main 2 reason Lost key k1", .mutation(.release(id: "o-1", line: selector("SKU", "main", 2), reason: .lost, key: "k1"))),
        ParseCase("Release o-1 KEY k1", .mutation(.release(id: "o-1", key: "k1"))),
        ParseCase("fulfill o-1", .mutation(.fulfill(id: "o-1"))),
        ParseCase("Fulfill o-1 SKU main 1 key k2", .mutation(.fulfill(id: "o-1", line: selector("SKU", "main", 1), key: "k2"))),
        ParseCase(
            "adjust SKU main -2 reason DAMAGED ref r-1 note forklift key k3",
            .mutation(.adjust(variant: "SKU", warehouse: "main", delta: -2, reason: .damaged, note: "forklift", reference: "r-1", key: "k3"))),
        ParseCase("ADJUST SKU MAIN +5 REASON found", .mutation(.adjust(variant: "SKU", warehouse: "MAIN", delta: 5, reason: .found))),
        ParseCase(
            ["ADJUST", "SKU", "MAIN", "-2", "REASON", "damaged", "NOTE", "dropped by a forklift"],
            .mutation(.adjust(variant: "SKU", warehouse: "MAIN", delta: -2, reason: .damaged, note: "dropped by a forklift"))),
        ParseCase(
            "setqty SKU main 10 Reason correction if 8 KEY k4",
            .mutation(.setQuantity(variant: "SKU", warehouse: "main", quantity: 10, reason: .correction, ifOnHand: 8, key: "k4"))),
        ParseCase("SETQTY SKU MAIN 0 REASON count", .mutation(.setQuantity(variant: "SKU", warehouse: "MAIN", quantity: 0, reason: .count))),
        ParseCase("count SKU main 7 Note cycle key k5", .mutation(.count(variant: "SKU", warehouse: "main", counted: 7, note: "cycle", key: "k5"))),
        ParseCase("COUNT SKU MAIN 7", .mutation(.count(variant: "SKU", warehouse: "MAIN", counted: 7))),
        ParseCase(
            "transfer SKU main east 3 note move KEY k6",
            .mutation(.transfer(variant: "SKU", from: "main", to: "east", quantity: 3, note: "move", key: "k6"))),
        ParseCase(
            "return SKU main 1 restock REF rma-1 key k7",
            .mutation(.returnStock(variant: "SKU", warehouse: "main", quantity: 1, disposition: .restock, reference: "rma-1", key: "k7"))),
        ParseCase("RETURN SKU MAIN 1 Damaged", .mutation(.returnStock(variant: "SKU", warehouse: "MAIN", quantity: 1, disposition: .damaged))),
        ParseCase(
            "warehouse set east NAME East address Dock-4 PRIORITY 5 active NO",
            .mutation(.setWarehouse(WarehouseChange(code: "east", name: "East", address: "Dock-4", priority: 5, active: false)))),
        ParseCase("WAREHOUSE SET note", .mutation(.setWarehouse(WarehouseChange(code: "note")))),
        ParseCase("Warehouse Set W priority -3 ACTIVE yes", .mutation(.setWarehouse(WarehouseChange(code: "W", priority: -3, active: true)))),
        ParseCase(
            "policy set SKU backorder YES unlimited no lowstock 4",
            .mutation(.setPolicy(PolicyChange(variant: "SKU", backorder: true, unlimited: false, lowStock: 4)))),
        ParseCase("POLICY SET SKU", .mutation(.setPolicy(PolicyChange(variant: "SKU")))),
        // Queries.
        ParseCase("stock SKU", .query(.stock(variant: "SKU", warehouse: nil))),
        ParseCase("STOCK SKU main", .query(.stock(variant: "SKU", warehouse: "main"))),
        ParseCase("reservation o-1", .query(.reservation(id: "o-1"))),
        ParseCase("lowstock", .query(.lowStock(threshold: nil, limit: nil))),
        ParseCase("LOWSTOCK 5", .query(.lowStock(threshold: 5, limit: nil))),
        ParseCase("LowStock 5 limit 10", .query(.lowStock(threshold: 5, limit: 10))),
        ParseCase("lowstock LIMIT 3", .query(.lowStock(threshold: nil, limit: 3))),
        ParseCase("backorders", .query(.backorders(limit: nil))),
        ParseCase("BACKORDERS Limit 20", .query(.backorders(limit: 20))),
        ParseCase("history SKU main", .query(.history(variant: "SKU", warehouse: "main", limit: nil))),
        ParseCase("HISTORY SKU MAIN limit 5", .query(.history(variant: "SKU", warehouse: "MAIN", limit: 5))),
        ParseCase("events 0", .query(.events(from: 0, limit: nil))),
        ParseCase("Events 42 LIMIT 7", .query(.events(from: 42, limit: 7))),
        ParseCase("EVENTS 18446744073709551615", .query(.events(from: .max, limit: nil))),
        ParseCase("warehouse list", .query(.warehouseList)),
        ParseCase("POLICY get SKU", .query(.policy(variant: "SKU"))),
        ParseCase("stats", .query(.stats)),
        ParseCase("INFO", .query(.info(section: nil))),
        ParseCase("info Persistence", .query(.info(section: "persistence"))),
        // Administration.
        ParseCase("Snapshot", .snapshot),
        // Connection commands.
        ParseCase("ping", .session(.ping(message: nil))),
        ParseCase("PiNg hello", .session(.ping(message: Array("hello".utf8)))),
        ParseCase("PING TTL", .session(.ping(message: Array("TTL".utf8)))),
        ParseCase("echo said", .session(.echo(message: Array("said".utf8)))),
        ParseCase("subscribe events", .session(.subscribe(channels: ["events"]))),
        ParseCase("SUBSCRIBE a b", .session(.subscribe(channels: ["a", "b"]))),
        ParseCase("unsubscribe", .session(.unsubscribe(channels: []))),
        ParseCase("UNSUBSCRIBE events", .session(.unsubscribe(channels: ["events"]))),
        ParseCase("auth s3cret", .session(.auth(token: "s3cret"))),
        ParseCase("AUTH default s3cret", .session(.auth(token: "s3cret"))),
        ParseCase("hello", .session(.hello(version: nil, token: nil, clientName: nil))),
        ParseCase("HELLO 3", .session(.hello(version: 3, token: nil, clientName: nil))),
        ParseCase("hello 3 auth default tok setname app", .session(.hello(version: 3, token: "tok", clientName: "app"))),
        ParseCase("HELLO 2 SetName app", .session(.hello(version: 2, token: nil, clientName: "app"))),
        ParseCase("HELLO 4", .session(.hello(version: 4, token: nil, clientName: nil))),
        ParseCase("command", .session(.command(subcommand: nil))),
        ParseCase("COMMAND docs", .session(.command(subcommand: "DOCS"))),
        ParseCase("command count extra", .session(.command(subcommand: "COUNT"))),
        ParseCase("client setname app", .session(.client(subcommand: "SETNAME", arguments: ["app"]))),
        ParseCase("CLIENT SETINFO lib-name redis-py", .session(.client(subcommand: "SETINFO", arguments: ["lib-name", "redis-py"]))),
        ParseCase("client id", .session(.client(subcommand: "ID", arguments: []))),
        ParseCase("select 0", .session(.select(index: 0))),
        ParseCase("config get save", .session(.configGet(patterns: ["save"]))),
        ParseCase("CONFIG GET save appendonly", .session(.configGet(patterns: ["save", "appendonly"]))),
        ParseCase("quit", .session(.quit)),
        ParseCase("QUIT now", .session(.quit)),
    ]

    @Test("every command with good arguments becomes the expected request", arguments: goodRequests)
    func goodRequest(_ c: ParseCase) {
        #expect(Request.parse(c.arguments) == .success(c.expected))
    }

    static let errors: [ErrorCase] = [
        // Unknown commands: Redis's wording, trailing space included.
        ErrorCase("FOO a b", "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "),
        ErrorCase("foo", "ERR unknown command 'foo', with args beginning with: "),
        ErrorCase(
            [Array("x".utf8), [UInt8](repeating: UInt8(ascii: "a"), count: 200), Array("b".utf8)],
            "ERR unknown command 'x', with args beginning with: '\(String(repeating: "a", count: 128))' "),
        ErrorCase([[0x66, 0xFF]], "ERR unknown command 'f\u{FFFD}', with args beginning with: "),
        // Wrong number of arguments.
        ErrorCase("RESERVE", "ERR wrong number of arguments for 'reserve' command"),
        ErrorCase("reserve o-1", "ERR wrong number of arguments for 'reserve' command"),
        ErrorCase("RESERVE o-1 A MAIN", "ERR wrong number of arguments for 'reserve' command"),
        ErrorCase("RESERVE o-1 A MAIN 1 B TTL 5", "ERR wrong number of arguments for 'reserve' command"),
        ErrorCase("RESERVE o-1 TTL 5", "ERR wrong number of arguments for 'reserve' command"),
        ErrorCase("EXTEND o-1", "ERR wrong number of arguments for 'extend' command"),
        ErrorCase("EXTEND o-1 TTL", "ERR wrong number of arguments for 'extend' command"),
        ErrorCase("EXTEND o-1 5 6", "ERR wrong number of arguments for 'extend' command"),
        ErrorCase("CONFIRM", "ERR wrong number of arguments for 'confirm' command"),
        ErrorCase("CONFIRM a b", "ERR wrong number of arguments for 'confirm' command"),
        ErrorCase("CONFIRM a KEY", "ERR syntax error: KEY needs a value"),
        ErrorCase("CONFIRM a NOTE n", "ERR syntax error: unknown option 'NOTE' for CONFIRM"),
        ErrorCase("EXTEND o-1 5 KEY k KEY j", "ERR syntax error: KEY given twice"),
        ErrorCase("RELEASE", "ERR wrong number of arguments for 'release' command"),
        ErrorCase("RELEASE o-1 A MAIN REASON lost", "ERR wrong number of arguments for 'release' command"),
        ErrorCase("FULFILL o-1 A", "ERR wrong number of arguments for 'fulfill' command"),
        ErrorCase("ADJUST A MAIN REASON lost", "ERR wrong number of arguments for 'adjust' command"),
        ErrorCase("ADJUST A MAIN 1 2 REASON lost", "ERR wrong number of arguments for 'adjust' command"),
        ErrorCase("SETQTY A MAIN", "ERR wrong number of arguments for 'setqty' command"),
        ErrorCase("COUNT A", "ERR wrong number of arguments for 'count' command"),
        ErrorCase("TRANSFER A MAIN EAST", "ERR wrong number of arguments for 'transfer' command"),
        ErrorCase("RETURN A MAIN 1", "ERR wrong number of arguments for 'return' command"),
        ErrorCase("STOCK", "ERR wrong number of arguments for 'stock' command"),
        ErrorCase("STOCK a b c", "ERR wrong number of arguments for 'stock' command"),
        ErrorCase("RESERVATION", "ERR wrong number of arguments for 'reservation' command"),
        ErrorCase("LOWSTOCK 1 2", "ERR wrong number of arguments for 'lowstock' command"),
        ErrorCase("BACKORDERS 5", "ERR wrong number of arguments for 'backorders' command"),
        ErrorCase("HISTORY A", "ERR wrong number of arguments for 'history' command"),
        ErrorCase("HISTORY A LIMIT 5", "ERR wrong number of arguments for 'history' command"),
        ErrorCase("EVENTS", "ERR wrong number of arguments for 'events' command"),
        ErrorCase("WAREHOUSE", "ERR wrong number of arguments for 'warehouse' command"),
        ErrorCase("WAREHOUSE LIST x", "ERR wrong number of arguments for 'warehouse|list' command"),
        ErrorCase("WAREHOUSE SET", "ERR wrong number of arguments for 'warehouse|set' command"),
        ErrorCase("WAREHOUSE SET E x", "ERR wrong number of arguments for 'warehouse|set' command"),
        ErrorCase("POLICY", "ERR wrong number of arguments for 'policy' command"),
        ErrorCase("POLICY GET", "ERR wrong number of arguments for 'policy|get' command"),
        ErrorCase("POLICY SET", "ERR wrong number of arguments for 'policy|set' command"),
        ErrorCase("STATS now", "ERR wrong number of arguments for 'stats' command"),
        ErrorCase("INFO a b", "ERR wrong number of arguments for 'info' command"),
        ErrorCase("SNAPSHOT now", "ERR wrong number of arguments for 'snapshot' command"),
        ErrorCase("RESET all", "ERR wrong number of arguments for 'reset' command"),
        ErrorCase("PING a b", "ERR wrong number of arguments for 'ping' command"),
        ErrorCase("SUBSCRIBE", "ERR wrong number of arguments for 'subscribe' command"),
        ErrorCase("AUTH", "ERR wrong number of arguments for 'auth' command"),
        ErrorCase("AUTH a b c", "ERR wrong number of arguments for 'auth' command"),
        ErrorCase("CLIENT", "ERR wrong number of arguments for 'client' command"),
        ErrorCase("SELECT", "ERR wrong number of arguments for 'select' command"),
        ErrorCase("CONFIG", "ERR wrong number of arguments for 'config' command"),
        ErrorCase("CONFIG GET", "ERR wrong number of arguments for 'config|get' command"),
        // Numbers that are not decimal integers name the argument.
        ErrorCase("ADJUST A MAIN abc REASON lost", "INVALID delta must be a decimal integer"),
        ErrorCase("ADJUST A MAIN - REASON lost", "INVALID delta must be a decimal integer"),
        ErrorCase("RESERVE o A MAIN 1 B MAIN 1.5", "INVALID quantity of line 2 must be a decimal integer"),
        ErrorCase("RESERVE o A MAIN 1e3", "INVALID quantity of line 1 must be a decimal integer"),
        ErrorCase("RESERVE o A MAIN 1 TTL 5s", "INVALID TTL must be a decimal integer"),
        ErrorCase("EXTEND o 0x10", "INVALID TTL must be a decimal integer"),
        ErrorCase("RELEASE o A MAIN two", "INVALID quantity must be a decimal integer"),
        ErrorCase("SETQTY A MAIN 5 REASON correction IF none", "INVALID IF must be a decimal integer"),
        ErrorCase("COUNT A MAIN x", "INVALID counted must be a decimal integer"),
        ErrorCase("TRANSFER A MAIN EAST 1,000", "INVALID quantity must be a decimal integer"),
        ErrorCase("HISTORY A MAIN LIMIT ten", "INVALID LIMIT must be a decimal integer"),
        ErrorCase("LOWSTOCK low", "INVALID threshold must be a decimal integer"),
        ErrorCase("EVENTS first", "INVALID from-seq must be a decimal integer"),
        ErrorCase("EVENTS -1", "INVALID from-seq must be between 0 and 18446744073709551615"),
        ErrorCase("WAREHOUSE SET E PRIORITY high", "INVALID PRIORITY must be a decimal integer"),
        ErrorCase("POLICY SET A LOWSTOCK some", "INVALID LOWSTOCK must be a decimal integer"),
        ErrorCase("SELECT one", "INVALID SELECT index must be a decimal integer"),
        ErrorCase("HELLO three", "INVALID protover must be a decimal integer"),
        // Integers too large for 64 bits.
        ErrorCase("RESERVE o A MAIN 1000000000000000000000000000000", "LIMIT quantity may not exceed 1000000000000"),
        ErrorCase("ADJUST A MAIN -1000000000000000000000000000000 REASON lost", "LIMIT quantity may not exceed 1000000000000"),
        ErrorCase("ADJUST A MAIN 9223372036854775808 REASON found", "LIMIT quantity may not exceed 1000000000000"),
        ErrorCase("LOWSTOCK LIMIT 99999999999999999999", "LIMIT LIMIT may not exceed 10000"),
        ErrorCase("EXTEND o 99999999999999999999", "INVALID TTL must be between 1 and 2592000 seconds"),
        ErrorCase("WAREHOUSE SET E PRIORITY 99999999999999999999", "INVALID priority must be between -1000000000 and 1000000000"),
        ErrorCase("EVENTS 18446744073709551616", "INVALID from-seq must be between 0 and 18446744073709551615"),
        // The option part.
        ErrorCase("RESERVE o A MAIN 1 TTL 5 FOO bar", "ERR syntax error: unknown option 'FOO' for RESERVE"),
        ErrorCase("RESERVE o A MAIN 1 NOTE x", "ERR syntax error: unknown option 'NOTE' for RESERVE"),
        ErrorCase("ADJUST A MAIN 1 REASON found LIMIT 3", "ERR syntax error: unknown option 'LIMIT' for ADJUST"),
        ErrorCase("RESERVE o A MAIN 1 TTL 5 ttl 6", "ERR syntax error: TTL given twice"),
        ErrorCase("ADJUST A MAIN 1 REASON found NOTE a note b", "ERR syntax error: NOTE given twice"),
        ErrorCase("RESERVE o A MAIN 1 TTL", "ERR syntax error: TTL needs a value"),
        ErrorCase("HISTORY A MAIN LIMIT", "ERR syntax error: LIMIT needs a value"),
        ErrorCase("WAREHOUSE FOO", "ERR syntax error: unknown subcommand 'FOO' of WAREHOUSE (SET or LIST)"),
        ErrorCase("POLICY DROP A", "ERR syntax error: unknown subcommand 'DROP' of POLICY (SET or GET)"),
        ErrorCase("CONFIG SET save x", "ERR syntax error: unknown subcommand 'SET' of CONFIG (GET)"),
        ErrorCase("HELLO 3 FOO", "ERR syntax error: unknown option 'FOO' for HELLO"),
        ErrorCase("HELLO 3 SETNAME a SETNAME b", "ERR syntax error: SETNAME given twice"),
        ErrorCase("HELLO 3 AUTH default", "ERR syntax error: AUTH needs a user name and a token"),
        ErrorCase(words("RESERVE o A MAIN 1 TTL 5") + [Array("x\r\ny".utf8)], "ERR syntax error: unknown option 'x  y' for RESERVE"),
        // Values of the wrong form.
        ErrorCase("WAREHOUSE SET E ACTIVE maybe", "INVALID ACTIVE must be yes or no"),
        ErrorCase("POLICY SET A BACKORDER true", "INVALID BACKORDER must be yes or no"),
        ErrorCase("POLICY SET A UNLIMITED 1", "INVALID UNLIMITED must be yes or no"),
        ErrorCase("RESERVE o A MAIN 1 STRATEGY fastest", "INVALID STRATEGY must be priority, most or split"),
        ErrorCase(
            "ADJUST A MAIN 1 REASON stolen",
            "INVALID REASON must be one of received, returned, damaged, lost, found, correction, count, transfer, import, expired, cancelled, other"),
        ErrorCase("RETURN A MAIN 1 REF x", "INVALID RETURN needs RESTOCK or DAMAGED after the quantity"),
        ErrorCase("ADJUST A MAIN 1", "INVALID ADJUST needs REASON r"),
        ErrorCase("ADJUST A MAIN 1 NOTE n", "INVALID ADJUST needs REASON r"),
        ErrorCase("SETQTY A MAIN 1 IF 0", "INVALID SETQTY needs REASON r"),
        // Words that are not UTF-8.
        ErrorCase([Array("ADJUST".utf8), [0xFF, 0xFE], Array("MAIN".utf8), Array("1".utf8)], "INVALID variant is not valid UTF-8"),
        ErrorCase([Array("RESERVE".utf8), [0xC3], Array("A".utf8), Array("MAIN".utf8), Array("1".utf8)], "INVALID reservation id is not valid UTF-8"),
        ErrorCase(
            [Array("RESERVE".utf8), Array("o".utf8), Array("A".utf8), [0x4D, 0x80], Array("1".utf8)],
            "INVALID warehouse of line 1 is not valid UTF-8"),
        ErrorCase(
            [Array("RESERVE".utf8), Array("o".utf8), Array("A".utf8), Array("MAIN".utf8), Array("1".utf8), Array("CUSTOMER".utf8), [0xED, 0xA0, 0x80]],
            "INVALID CUSTOMER is not valid UTF-8"),
        ErrorCase([Array("SUBSCRIBE".utf8), [0xFF]], "INVALID channel is not valid UTF-8"),
        ErrorCase([Array("AUTH".utf8), [0xFF]], "INVALID token is not valid UTF-8"),
    ]

    @Test("every class of error gets its exact reply", arguments: errors)
    func errorReply(_ c: ErrorCase) throws {
        guard case .failure(let error) = Request.parse(c.arguments) else {
            Issue.record("\(c.testDescription) was understood")
            return
        }
        #expect(error.frame == c.frame)
    }

    @Test("a quantity too large for 64 bits reads like one just over the engine's limit")
    func hugeQuantityReadsLikeTheEngineLimit() throws {
        let huge = Request.parse(words("ADJUST A MAIN 1000000000000000000000000000000 REASON found"))
        guard case .failure(let error) = huge else {
            Issue.record("10^30 was accepted")
            return
        }
        let overLimit = Command.adjust(variant: "A", warehouse: "MAIN", delta: Quantity(1_000_000_000_001), reason: .found)
        let engine = try #require(Validation.normalize(overLimit).refusal)
        #expect(error.frame == ReplyFrame(engine))
        #expect(error == .refused(engine))
    }

    @Test("the largest and smallest 64-bit integers are read exactly")
    func int64Bounds() {
        #expect(
            Request.parse(words("ADJUST A MAIN 9223372036854775807 REASON found"))
                == .success(.mutation(.adjust(variant: "A", warehouse: "MAIN", delta: Quantity(.max), reason: .found))))
        #expect(
            Request.parse(words("ADJUST A MAIN -9223372036854775808 REASON lost"))
                == .success(.mutation(.adjust(variant: "A", warehouse: "MAIN", delta: Quantity(.min), reason: .lost))))
    }

    @Test("the option words of the table are exactly the reserved words of the SPEC")
    func optionWordsMatchIdentifiers() {
        // SPEC §7.14's list, written out: `Identifiers.optionWords` is made from `OptionWord`.
        let spec: Set<String> = [
            "TTL", "CUSTOMER", "STRATEGY", "KEY", "REASON", "NOTE", "REF", "IF", "LIMIT", "RESTOCK", "DAMAGED", "NAME", "ADDRESS",
            "PRIORITY", "ACTIVE", "BACKORDER", "UNLIMITED", "LOWSTOCK",
        ]
        #expect(Set(OptionWord.allCases.map(\.spelling)) == spec)
        #expect(Identifiers.optionWords == spec)
        for word in OptionWord.allCases {
            #expect(OptionWord(Array(word.spelling.lowercased().utf8)) == word)
        }
    }

    @Test("the positional part of RESERVE ends at any reserved word, so a misplaced option is named")
    func reserveEndsAtAnyOptionWord() {
        let parsed = Request.parse(words("RESERVE o A MAIN 1 REF x"))
        #expect(parsed == .failure(.syntax("unknown option 'REF' for RESERVE")))
    }

    /// Every command whose first positional argument is a variant, with an option word (in any case)
    /// where the variant belongs, and the reserved word the refusal must name.
    static let optionWordsAsVariants: [(String, String)] = [
        ("ADJUST note MAIN 1 REASON received", "NOTE"),
        ("ADJUST Reason MAIN 1 REASON received", "REASON"),
        ("SETQTY ttl MAIN 5 REASON correction", "TTL"),
        ("COUNT key MAIN 7", "KEY"),
        ("TRANSFER limit MAIN EAST 1", "LIMIT"),
        ("RETURN restock MAIN 1 RESTOCK", "RESTOCK"),
        ("STOCK damaged", "DAMAGED"),
        ("STOCK Customer MAIN", "CUSTOMER"),
        ("POLICY SET backorder BACKORDER yes", "BACKORDER"),
        ("POLICY SET if", "IF"),
        ("POLICY GET lowstock", "LOWSTOCK"),
        ("HISTORY ref MAIN LIMIT 5", "REF"),
        ("HISTORY strategy MAIN", "STRATEGY"),
    ]

    @Test("an option word where a variant belongs is INVALID and named, not a wrong number of arguments", arguments: optionWordsAsVariants)
    func optionWordAsVariant(_ line: String, _ reserved: String) {
        #expect(Request.parse(words(line)) == .failure(.refused(.invalid("variant may not be the option word \(reserved)"))))
        #expect(
            RequestError.refused(.invalid("variant may not be the option word \(reserved)")).frame
                == .error("INVALID variant may not be the option word \(reserved)"))
    }

    @Test("an option word where a sequence number belongs is a wrong number of arguments, not a variant", arguments: ["EVENTS LIMIT 5", "BACKORDERS 3 LIMIT 5"])
    func optionWordWhereNoVariantBelongs(_ line: String) {
        let name = String(line.split(separator: " ")[0]).lowercased()
        #expect(Request.parse(words(line)) == .failure(.wrongArity(command: name)))
    }

    @Test("every command whose first positional is a variant is in the table of option words as variants")
    func optionWordTableCoversEveryVariantCommand() {
        let covered = Set(Self.optionWordsAsVariants.map { $0.0.split(separator: " ").prefix(2).joined(separator: " ").uppercased() })
        for command in ["ADJUST", "SETQTY", "COUNT", "TRANSFER", "RETURN", "STOCK", "HISTORY"] {
            #expect(covered.contains { $0.hasPrefix(command + " ") }, "\(command)")
        }
        #expect(covered.contains { $0.hasPrefix("POLICY SET") } && covered.contains { $0.hasPrefix("POLICY GET") })
    }

    @Test("a variant that only contains an option word, or is longer than one, is read as a variant")
    func variantsNearOptionWords() {
        #expect(
            Request.parse(words("ADJUST notes MAIN 1 REASON received"))
                == .success(.mutation(.adjust(variant: "notes", warehouse: "MAIN", delta: 1, reason: .received))))
        #expect(Request.parse(words("STOCK TTL-1")) == .success(.query(.stock(variant: "TTL-1", warehouse: nil))))
        #expect(Request.parse(words("POLICY GET keys")) == .success(.query(.policy(variant: "keys"))))
    }

    static let classes: [(String, CommandClass)] = [
        ("RESERVE o A MAIN 1", .checkout), ("EXTEND o 5", .checkout), ("CONFIRM o", .checkout), ("RELEASE o", .checkout),
        ("FULFILL o", .fulfillment), ("RETURN A MAIN 1 RESTOCK", .fulfillment),
        ("ADJUST A MAIN 1 REASON found", .inventory), ("SETQTY A MAIN 1 REASON count", .inventory),
        ("COUNT A MAIN 1", .inventory), ("TRANSFER A MAIN E 1", .inventory),
        ("WAREHOUSE SET E", .admin), ("POLICY SET A", .admin), ("SNAPSHOT", .admin), ("RESET", .admin),
        ("STOCK A", .read), ("RESERVATION o", .read), ("LOWSTOCK", .read), ("BACKORDERS", .read),
        ("HISTORY A MAIN", .read), ("EVENTS 0", .read), ("STATS", .read), ("INFO", .read), ("WAREHOUSE LIST", .read),
        ("POLICY GET A", .read), ("SUBSCRIBE events", .read), ("UNSUBSCRIBE", .read),
        ("PING", .session), ("ECHO hi", .session), ("AUTH t", .session), ("HELLO 3", .session), ("QUIT", .session), ("COMMAND", .session),
        ("CONFIG GET save", .session), ("CLIENT SETNAME n", .session), ("SELECT 0", .session),
    ]

    @Test("each command has the class its role grants", arguments: classes)
    func commandClass(_ line: String, _ expected: CommandClass) throws {
        let request = try Request.parse(words(line)).get()
        #expect(request.commandClass == expected)
    }

    @Test("the class of a mutation read from its name alone is the class of the request; other commands have none", arguments: classes)
    func mutationClassAgrees(_ line: String, _ expected: CommandClass) throws {
        let request = try Request.parse(words(line)).get()
        let fromName = Request.mutationClass(of: words(line))
        if case .mutation = request {
            #expect(fromName == expected)
        } else {
            #expect(fromName == nil)
        }
    }

    @Test("a mutation the table refuses still has its class, so the server can count it")
    func mutationClassOfRefusedWords() {
        #expect(Request.mutationClass(of: words("ADJUST s MAIN 1")) == .inventory)
        #expect(Request.mutationClass(of: words("reserve r s MAIN 99999999999999999999")) == .checkout)
        #expect(Request.mutationClass(of: words("WAREHOUSE set E ACTIVE maybe")) == .admin)
        #expect(Request.mutationClass(of: words("POLICY GET note")) == nil)
        #expect(Request.mutationClass(of: words("HISTORY s MAIN LIMIT ten")) == nil)
        #expect(Request.mutationClass(of: words("NOSUCH a")) == nil)
    }

    @Test("every command of the SPEC has a row in the class table")
    func classTableCoversEveryCommand() {
        let named = Set(Self.classes.map { $0.0.split(separator: " ")[0].uppercased() })
        #expect(named == Set(CommandName.allCases.map(\.rawValue)))
    }
}

@Suite("Spare arrays of lines")
struct SpareLinesTests {
    private func reserve(_ line: String, _ spare: inout SpareLines) -> Command? {
        guard case .success(.mutation(let command)) = Request.parse(ArgumentList(words(line)), reusing: &spare) else { return nil }
        return command
    }

    @Test("a RESERVE parsed into a kept array reads as one parsed afresh, and the request that kept it is unchanged")
    func reuseIsInvisible() throws {
        var spare = SpareLines()
        let lines = (1...12).map { n in (1...(1 + n % 4)).map { "V\(n)-\($0) MAIN \($0)" }.joined(separator: " ") }
        var kept: [Command] = []
        for (n, text) in lines.enumerated() {
            let line = "RESERVE r\(n) \(text)" + (n % 3 == 0 ? " TTL 30" : "")
            let parsed = try #require(reserve(line, &spare))
            #expect(parsed == (try Request.parse(ArgumentList(words(line))).get()).mutation, "\(line)")
            // Kept while the request is still alive (as a reply is written before the request goes).
            spare.keep(linesOf: parsed)
            kept.append(parsed)
        }
        // Every earlier request still holds its own lines, whatever was parsed into the arrays since.
        for (n, text) in lines.enumerated() {
            let line = "RESERVE r\(n) \(text)" + (n % 3 == 0 ? " TTL 30" : "")
            #expect(kept[n] == (try Request.parse(ArgumentList(words(line))).get()).mutation, "\(line)")
        }
        // Requests let go once answered, as a server does: their arrays are emptied and filled again
        // in place, longer and shorter in turn.
        kept.removeAll()
        for round in 0..<3 {
            for (n, text) in lines.enumerated().reversed() {
                let line = "RESERVE q\(round)-\(n) \(text)"
                let parsed = try #require(reserve(line, &spare))
                #expect(parsed == (try Request.parse(ArgumentList(words(line))).get()).mutation, "\(line)")
                spare.keep(linesOf: parsed)
            }
        }
    }
}

@Suite("The last long variant name, shared")
struct SharedVariantTests {
    private func variants(_ line: String, _ spare: inout SpareLines) -> [String]? {
        guard case .success(.mutation(.reserve(let r))) = Request.parse(ArgumentList(words(line)), reusing: &spare) else { return nil }
        return r.lines.map(\.variant)
    }

    /// Where a string keeps its bytes: the same address for two strings means one shared object.
    private func storage(_ s: String) -> UInt? {
        s.utf8.withContiguousStorageIfAvailable { UInt(bitPattern: $0.baseAddress) }
    }

    @Test("a RESERVE naming the long variant the one before it named shares its string; any other name is read afresh")
    func lastLongVariantShared() throws {
        var spare = SpareLines()
        let a = "SKU-000000012345", b = "SKU-000000067890", longer = "SKU-0000000123456", short = "SKU-12345"
        let first = try #require(variants("RESERVE r1 \(a) MAIN 1", &spare))
        let second = try #require(variants("RESERVE r2 \(a) MAIN 1", &spare))
        #expect(first == [a] && second == [a])
        #expect(storage(first[0]) != nil && storage(first[0]) == storage(second[0]), "the second RESERVE shares the first's string")
        // Another name, one longer by a byte, a short one: each read as itself.
        let other = try #require(variants("RESERVE r3 \(b) MAIN 1 \(longer) MAIN 1 \(short) MAIN 1", &spare))
        #expect(other == [b, longer, short])
        #expect(storage(other[0]) != storage(first[0]) && storage(other[1]) != storage(first[0]))
        // The last long name kept is `longer`: `a` again is read afresh, then shared by the next.
        let again = try #require(variants("RESERVE r4 \(a) MAIN 1", &spare))
        let next = try #require(variants("RESERVE r5 \(a) MAIN 2", &spare))
        #expect(again == [a] && next == [a])
        #expect(storage(again[0]) != storage(first[0]) && storage(next[0]) == storage(again[0]))
        // A long name that is not UTF-8 is refused as before, and leaves the kept name as it was.
        var bad = Array(a.utf8)
        bad[bad.count - 1] = 0xFF
        let refused = Request.parse(ArgumentList([Array("RESERVE".utf8), Array("r6".utf8), bad, Array("MAIN".utf8), Array("1".utf8)]), reusing: &spare)
        guard case .failure = refused else { Issue.record("a variant that is not UTF-8 was accepted"); return }
        let after = try #require(variants("RESERVE r7 \(a) MAIN 1", &spare))
        #expect(after == [a] && storage(after[0]) == storage(again[0]))
        // A name of 15 bytes is kept inside its string: read as itself, and the long name kept stays.
        let fifteen = "SKU-00000001234"
        let inline = try #require(variants("RESERVE r10 \(fifteen) MAIN 1", &spare))
        let kept = try #require(variants("RESERVE r11 \(a) MAIN 1", &spare))
        #expect(inline == [fifteen] && kept == [a] && storage(kept[0]) == storage(again[0]))
        // Names of several bytes a character compare by their bytes (the engine takes ASCII names only;
        // the command table reads any UTF-8).
        let dress = "ÉTÉ-2026-ROBE-ROUGE-38"
        let d1 = try #require(variants("RESERVE r8 \(dress) MAIN 1", &spare))
        let d2 = try #require(variants("RESERVE r9 \(dress) MAIN 1 \(a) MAIN 1", &spare))
        #expect(d1 == [dress] && d2 == [dress, a] && storage(d2[0]) == storage(d1[0]))
    }
}

extension Request {
    fileprivate var mutation: Command? {
        if case .mutation(let c) = self { return c }
        return nil
    }
}
