// Tokens and roles (SPEC §5, §7.17): which role may run which class of command, what works before
// AUTH, wrong tokens, both AUTH forms and HELLO's, protected mode, and the auth file's parser. The
// expected permissions are written out here from the SPEC, not derived from the server's own table.

import Foundation
import Stockpile
import StockpileClient
import StockpileProtocol
import Testing

@testable import StockpileServer

/// A token of the test auth file and the roles it grants.
struct Grant: Sendable, CustomTestStringConvertible {
    var token: String
    var roles: Set<Role>

    var testDescription: String { roles.sorted().map(\.rawValue).joined(separator: "+") }

    /// SPEC §5: every role may read; checkout, fulfillment and inventory grant their own class;
    /// admin grants everything.
    func mayRun(_ commandClass: CommandClass) -> Bool {
        if roles.contains(.admin) { return true }
        switch commandClass {
        case .session, .read: return true
        case .checkout: return roles.contains(.checkout)
        case .fulfillment: return roles.contains(.fulfillment)
        case .inventory: return roles.contains(.inventory)
        case .admin: return false
        }
    }
}

/// One command of a class, as a client sends it.
struct Probe: Sendable, CustomStringConvertible {
    var commandClass: CommandClass
    var words: [String]
    var description: String { words.joined(separator: " ") }
}

@Suite("Auth")
struct AuthTests {
    static let authFile = """
        # One token per role, and one for a packing station that both reserves and ships.
        tok-read read
        tok-checkout checkout
        tok-fulfillment fulfillment
        tok-inventory inventory
        tok-admin admin

        tok-packing checkout,fulfillment   # two roles
        """

    static let grants: [Grant] = [
        Grant(token: "tok-read", roles: [.read]),
        Grant(token: "tok-checkout", roles: [.checkout]),
        Grant(token: "tok-fulfillment", roles: [.fulfillment]),
        Grant(token: "tok-inventory", roles: [.inventory]),
        Grant(token: "tok-admin", roles: [.admin]),
        Grant(token: "tok-packing", roles: [.checkout, .fulfillment]),
    ]

    /// At least one command of every class that needs a token. A business refusal (NOTFOUND,
    /// INSUFFICIENT) is an answer from the engine, so it shows the command was permitted.
    static let probes: [Probe] = [
        Probe(commandClass: .read, words: ["STOCK", "SKU", "MAIN"]),
        Probe(commandClass: .read, words: ["STOCK", "SKU"]),
        Probe(commandClass: .read, words: ["RESERVATION", "ord-1"]),
        Probe(commandClass: .read, words: ["LOWSTOCK", "5"]),
        Probe(commandClass: .read, words: ["BACKORDERS"]),
        Probe(commandClass: .read, words: ["HISTORY", "SKU", "MAIN"]),
        Probe(commandClass: .read, words: ["EVENTS", "1"]),
        Probe(commandClass: .read, words: ["STATS"]),
        Probe(commandClass: .read, words: ["INFO"]),
        Probe(commandClass: .read, words: ["WAREHOUSE", "LIST"]),
        Probe(commandClass: .read, words: ["POLICY", "GET", "SKU"]),
        Probe(commandClass: .read, words: ["SUBSCRIBE", "events"]),
        Probe(commandClass: .checkout, words: ["RESERVE", "ord-1", "SKU", "MAIN", "1"]),
        Probe(commandClass: .checkout, words: ["EXTEND", "ord-1", "60"]),
        Probe(commandClass: .checkout, words: ["CONFIRM", "ord-1"]),
        Probe(commandClass: .checkout, words: ["RELEASE", "ord-1"]),
        Probe(commandClass: .fulfillment, words: ["FULFILL", "ord-1"]),
        Probe(commandClass: .fulfillment, words: ["RETURN", "SKU", "MAIN", "1", "RESTOCK"]),
        Probe(commandClass: .inventory, words: ["ADJUST", "SKU", "MAIN", "5", "REASON", "received"]),
        Probe(commandClass: .inventory, words: ["SETQTY", "SKU", "MAIN", "5", "REASON", "correction"]),
        Probe(commandClass: .inventory, words: ["COUNT", "SKU", "MAIN", "5"]),
        Probe(commandClass: .inventory, words: ["TRANSFER", "SKU", "MAIN", "EAST", "1"]),
        Probe(commandClass: .admin, words: ["WAREHOUSE", "SET", "EAST", "PRIORITY", "5"]),
        Probe(commandClass: .admin, words: ["POLICY", "SET", "SKU", "LOWSTOCK", "2"]),
        Probe(commandClass: .admin, words: ["SNAPSHOT"]),
        Probe(commandClass: .admin, words: ["RESET"]),
    ]

    static func table() throws -> AuthTable {
        try AuthTable(parsing: authFile, source: "test.auth")
    }

    /// A reply that shows the request was refused for want of a role, or never understood at all (a
    /// typo in the probe table must not pass for "permitted").
    static func verdict(_ reply: ReplyFrame?) -> (noPermission: Bool, understood: Bool) {
        let error = reply?.errorText ?? ""
        let notUnderstood = reply == nil || error.hasPrefix("NOAUTH") || error.hasPrefix("ERR unknown command")
            || error.hasPrefix("ERR wrong number") || error.hasPrefix("ERR syntax")
        return (error.hasPrefix("NOPERM "), !notUnderstood)
    }

    @Test("the probes cover every class of command that needs a token")
    func probesCoverEveryClass() {
        #expect(Set(Self.probes.map(\.commandClass)) == Set(CommandClass.allCases).subtracting([.session]))
    }

    @Test("each token runs exactly the command classes its roles grant; the others are NOPERM", arguments: grants)
    func rolePermissions(_ grant: Grant) async throws {
        let table = try Self.table()
        try await withLiveServer(configure: { $0.auth = table }) { server in
            for probe in Self.probes {
                // A connection per probe: SUBSCRIBE would otherwise leave the connection in pub/sub mode.
                let client = try server.client()
                #expect(try await client.ask(["AUTH", grant.token]) == .ok)
                let reply = try await client.ask(probe.words)
                let verdict = Self.verdict(reply)
                if grant.mayRun(probe.commandClass) {
                    #expect(!verdict.noPermission && verdict.understood, "\(probe) should be permitted, got \(String(describing: reply))")
                } else {
                    #expect(verdict.noPermission, "\(probe) should be NOPERM, got \(String(describing: reply))")
                }
            }
        }
    }

    @Test("a command refused with NOPERM changes nothing")
    func noPermissionChangesNothing() async throws {
        let table = try Self.table()
        try await withLiveServer(configure: { $0.auth = table }) { server in
            let reader = try server.client()
            #expect(try await reader.ask(["AUTH", "tok-read"]) == .ok)
            #expect(try await reader.ask(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])?.errorText?.hasPrefix("NOPERM ") == true)
            #expect(try await reader.ask(["WAREHOUSE", "SET", "EAST"])?.errorText?.hasPrefix("NOPERM ") == true)
            #expect(try await reader.ask(["STOCK", "SKU", "MAIN"])?[field: "on_hand"] == .integer(0))
            #expect(try await reader.ask(["EVENTS", "1"]) == .array([]))
            guard case .array(let warehouses) = try await reader.ask(["WAREHOUSE", "LIST"]) else {
                Issue.record("WAREHOUSE LIST did not give a list")
                return
            }
            #expect(warehouses.map { $0[field: "code"]?.textValue } == ["MAIN"])
        }
    }

    @Test("before AUTH every stock command is NOAUTH, and the connection commands work")
    func beforeAuth() async throws {
        let table = try Self.table()
        try await withLiveServer(configure: { $0.auth = table }) { server in
            let client = try server.client()
            for probe in Self.probes {
                let reply = try await client.ask(probe.words)
                #expect(reply?.errorText?.hasPrefix("NOAUTH ") == true, "\(probe) before AUTH gave \(String(describing: reply))")
            }
            #expect(try await client.ask(["PING"]) == .simple("PONG"))
            #expect(try await client.ask(["PING", "hello"]) == .text("hello"))
            let hello = try await client.ask(["HELLO"])
            #expect(hello?[field: "server"]?.textValue == "stockpile", "\(String(describing: hello))")
            #expect(hello?[field: "proto"] == .integer(2), "\(String(describing: hello))")
            guard case .array(let commands) = try await client.ask(["COMMAND"]) else {
                Issue.record("COMMAND did not give a list")
                return
            }
            #expect(commands.contains(.text("reserve")), "\(commands)")
            let config = try await client.ask(["CONFIG", "GET", "save"])
            #expect(config?[field: "save"] != nil, "\(String(describing: config))")
            #expect(try await client.ask(["CLIENT", "SETNAME", "checkout-7"]) == .ok)
            #expect(try await client.ask(["SELECT", "0"]) == .ok)
            // None of them authenticated the connection.
            #expect(try await client.ask(["STOCK", "SKU", "MAIN"])?.errorText?.hasPrefix("NOAUTH ") == true)
            #expect(try await client.ask(["QUIT"]) == .ok)
            #expect(try await client.nextReply() == nil, "QUIT should close the connection")

            // Nothing the unauthenticated probes tried was done.
            let admin = try server.client()
            #expect(try await admin.ask(["AUTH", "tok-admin"]) == .ok)
            #expect(try await admin.ask(["EVENTS", "1"]) == .array([]))
        }
    }

    @Test("a wrong token is WRONGPASS, in AUTH and in HELLO, and leaves the connection unauthenticated")
    func wrongToken() async throws {
        let table = try Self.table()
        try await withLiveServer(configure: { $0.auth = table }) { server in
            let client = try server.client()
            for words in [["AUTH", "tok-nope"], ["AUTH", "default", "tok-nope"], ["AUTH", "tok-read", "tok-nope"]] {
                let reply = try await client.ask(words)
                #expect(reply?.errorText?.hasPrefix("WRONGPASS ") == true, "\(words) gave \(String(describing: reply))")
                #expect(try await client.ask(["STOCK", "SKU", "MAIN"])?.errorText?.hasPrefix("NOAUTH ") == true)
            }
            let hello = try await client.ask(["HELLO", "3", "AUTH", "default", "tok-nope"])
            #expect(hello?.errorText?.hasPrefix("WRONGPASS ") == true, "\(String(describing: hello))")
            #expect(try await client.ask(["STOCK", "SKU", "MAIN"])?.errorText?.hasPrefix("NOAUTH ") == true)
            // The refused HELLO did not switch the protocol either.
            #expect(try await client.ask(["HELLO"])?[field: "proto"] == .integer(2))
            // The connection can still authenticate.
            #expect(try await client.ask(["AUTH", "tok-read"]) == .ok)
            #expect(try await client.ask(["STOCK", "SKU", "MAIN"])?[field: "on_hand"] == .integer(0))
        }
    }

    @Test("`AUTH user token` and `HELLO 3 AUTH user token` authenticate with the token's roles")
    func authForms() async throws {
        let table = try Self.table()
        try await withLiveServer(configure: { $0.auth = table }) { server in
            let twoWords = try server.client()
            #expect(try await twoWords.ask(["AUTH", "default", "tok-inventory"]) == .ok)
            #expect(try await twoWords.ask(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])?[field: "on_hand"] == .integer(5))
            #expect(try await twoWords.ask(["RESERVE", "ord-1", "SKU", "MAIN", "1"])?.errorText?.hasPrefix("NOPERM ") == true)

            let hello = try server.client()
            let facts = try await hello.ask(["HELLO", "3", "AUTH", "default", "tok-checkout"])
            guard case .record = facts else {
                Issue.record("HELLO 3 should answer with a map, got \(String(describing: facts))")
                return
            }
            #expect(facts?[field: "proto"] == .integer(3))
            let reservation = try await hello.ask(["RESERVE", "ord-1", "SKU", "MAIN", "2"])
            guard case .record = reservation else {
                Issue.record("RESERVE on a RESP3 connection should answer with a map, got \(String(describing: reservation))")
                return
            }
            #expect(reservation?[field: "status"]?.textValue == "active")
            #expect(try await hello.ask(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])?.errorText?.hasPrefix("NOPERM ") == true)
            #expect(try await hello.ask(["STOCK", "SKU", "MAIN"])?[field: "reserved"] == .integer(2))
        }
    }

    @Test("a non-loopback host needs an auth file, or --insecure")
    func protectedMode() async throws {
        let refused = #expect(throws: ServerStartError.self) {
            _ = try Server(engine: Engine(), configuration: ServerConfiguration(host: "0.0.0.0", port: 0), log: { _ in })
        }
        #expect(refused?.description.contains("--insecure") == true, "\(String(describing: refused))")

        let insecure = try Server(engine: Engine(), configuration: ServerConfiguration(host: "0.0.0.0", port: 0, insecure: true), log: { _ in })
        let open = try await Self.callOnThread(port: insecure.port, ["STOCK", "SKU", "MAIN"])
        await insecure.stop()
        #expect(open?[field: "on_hand"] == .integer(0), "\(String(describing: open))")

        let guarded = try Server(
            engine: Engine(), configuration: ServerConfiguration(host: "0.0.0.0", port: 0, auth: try Self.table()), log: { _ in })
        let closed = try await Self.callOnThread(port: guarded.port, ["STOCK", "SKU", "MAIN"])
        await guarded.stop()
        #expect(closed?.errorText?.hasPrefix("NOAUTH ") == true, "\(String(describing: closed))")
    }

    /// One request on a new loopback connection, from a thread of its own (the client blocks).
    static func callOnThread(port: Int, _ words: [String]) async throws -> ReplyFrame? {
        try await onThread { Result { () throws(SocketError) -> ReplyFrame? in try RESPClient(host: "127.0.0.1", port: port).call(words) } }.get()
    }

    @Test("an auth file may have comments, blank lines, tabs and several roles per token")
    func parsesAuthFile() throws {
        let text = "# Stockpile tokens\n\n   \ntok-a read\ntok-b checkout,fulfillment   # the packing station\n\tTok-C\tAdmin\n# the end"
        let table = try AuthTable(parsing: text, source: "tokens.auth")
        #expect(table.tokenCount == 3)
        #expect(table.roles(of: "tok-a") == [.read])
        #expect(table.roles(of: "tok-b") == [.checkout, .fulfillment])
        #expect(table.roles(of: "Tok-C") == [.admin])
        #expect(table.roles(of: "tok-c") == nil, "tokens are case-sensitive")
        #expect(table.roles(of: "#") == nil)

        let file = try ExternalProcess.temporaryFile(named: "tokens.auth", contents: Self.authFile)
        defer { ExternalProcess.cleanUp(file) }
        let loaded = try AuthTable.load(path: file.path)
        #expect(loaded.tokenCount == 6)
        #expect(loaded.roles(of: "tok-packing") == [.checkout, .fulfillment])
    }

    @Test("an auth file with CRLF line ends reads the same as with LF")
    func parsesCRLFAuthFile() throws {
        // A file saved by a Windows editor. Swift reads "\r\n" as one Character, so the file must not
        // be split on the Character "\n" alone.
        let text = "# tokens\r\ntok-a read\r\ntok-b checkout,fulfillment\r\n"
        let table = try AuthTable(parsing: text, source: "tokens.auth")
        #expect(table.tokenCount == 2)
        #expect(table.roles(of: "tok-a") == [.read])
        #expect(table.roles(of: "tok-b") == [.checkout, .fulfillment])
    }

    /// A bad auth file and what its error must say.
    struct BadFile: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var mention: String
        var testDescription: String { name }
    }

    static let badFiles: [BadFile] = [
        BadFile(name: "unknown role", text: "tok-a read\ntok-b reader\n", mention: "tokens.auth line 2"),
        BadFile(name: "unknown role in a list", text: "# tokens\ntok-a read,superuser\n", mention: "tokens.auth line 2"),
        BadFile(name: "missing role", text: "tok-a read\n\n# the next has none\ntok-b\n", mention: "tokens.auth line 4"),
        BadFile(name: "empty role list", text: "tok-a ,\n", mention: "tokens.auth line 1"),
        BadFile(name: "a third word", text: "tok-a read admin\n", mention: "tokens.auth line 1"),
        BadFile(name: "duplicate token", text: "tok-a read\ntok-b admin\ntok-a checkout\n", mention: "tokens.auth line 3"),
        BadFile(name: "empty file", text: "", mention: "tokens.auth"),
        BadFile(name: "only comments", text: "# nothing yet\n\n", mention: "tokens.auth"),
    ]

    @Test("a bad auth file is refused whole, naming the file and the line", arguments: badFiles)
    func refusesBadFile(_ bad: BadFile) {
        let error = #expect(throws: AuthFileError.self) { try AuthTable(parsing: bad.text, source: "tokens.auth") }
        #expect(error?.description.contains(bad.mention) == true, "\(String(describing: error))")
    }

    @Test("an auth file that cannot be read is refused, naming the path")
    func refusesMissingFile() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).auth").path
        let error = #expect(throws: AuthFileError.self) { try AuthTable.load(path: path) }
        #expect(error?.description.contains(path) == true, "\(String(describing: error))")
    }
}
