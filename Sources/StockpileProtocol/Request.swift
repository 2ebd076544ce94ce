// What one request asks for once its words are understood: a mutation of the engine (a `Command`), a
// query, something about the connection itself, or an administrative action. The command table
// (CommandTable.swift) turns words into a `Request`; the server decides who may run it by its class.

import StockpileCore

public enum Query: Hashable, Sendable {
    /// `STOCK variant [warehouse]`: one cell, or every warehouse plus totals.
    case stock(variant: String, warehouse: String?)
    case reservation(id: String)
    case lowStock(threshold: Quantity?, limit: Int?)
    case backorders(limit: Int?)
    case history(variant: String, warehouse: String, limit: Int?)
    case events(from: UInt64, limit: Int?)
    case warehouseList
    case policy(variant: String)
    case stats
    /// `INFO [section]`: Redis-style text; nil means every section.
    case info(section: String?)
}

/// Requests about the connection rather than the stock; they answer what Redis clients expect.
public enum SessionRequest: Hashable, Sendable {
    case ping(message: [UInt8]?)
    /// `ECHO message`: the message back (redis-cli --pipe ends its input with one).
    case echo(message: [UInt8])
    /// `AUTH token` or `AUTH user token` (the user name is ignored).
    case auth(token: String)
    /// `HELLO [version [AUTH user token] [SETNAME name]]`.
    case hello(version: Int?, token: String?, clientName: String?)
    /// `COMMAND`, `COMMAND DOCS`, `COMMAND COUNT`, …: the subcommand upper-cased, nil for none.
    case command(subcommand: String?)
    /// `CLIENT SETNAME name`, `CLIENT SETINFO …`, `CLIENT GETNAME`, `CLIENT ID`, …: the subcommand
    /// upper-cased and its arguments.
    case client(subcommand: String, arguments: [String])
    case select(index: Int)
    /// `CONFIG GET pattern…`.
    case configGet(patterns: [String])
    case quit
    case subscribe(channels: [String])
    case unsubscribe(channels: [String])
}

public enum Request: Hashable, Sendable {
    case mutation(Command)
    case query(Query)
    case session(SessionRequest)
    /// `SNAPSHOT`: write a snapshot now.
    case snapshot
    /// `RESET`: empty the engine (only on a server started with --allow-reset).
    case reset
}

/// Who may run a request (SPEC §5, §7.17). Roles grant classes; every role may read.
public enum CommandClass: String, Sendable, Hashable, CaseIterable {
    /// Works before AUTH: PING, ECHO, AUTH, HELLO, QUIT, COMMAND, CONFIG GET, CLIENT, SELECT.
    case session
    /// STOCK, RESERVATION, LOWSTOCK, BACKORDERS, HISTORY, EVENTS, STATS, INFO, WAREHOUSE LIST,
    /// POLICY GET, SUBSCRIBE.
    case read
    /// RESERVE, EXTEND, CONFIRM, RELEASE.
    case checkout
    /// FULFILL, RETURN.
    case fulfillment
    /// ADJUST, SETQTY, COUNT, TRANSFER.
    case inventory
    /// WAREHOUSE SET, POLICY SET, SNAPSHOT, RESET.
    case admin
}

/// Why words could not be understood as a request. The connection stays usable.
public enum RequestError: Error, Hashable, Sendable {
    /// `-ERR unknown command 'name', with args beginning with: …` (Redis's wording).
    case unknownCommand(name: String, arguments: [String])
    /// `-ERR wrong number of arguments for 'name' command`.
    case wrongArity(command: String)
    /// `-ERR message`: a syntax error Redis would also call ERR (an unknown option word, say).
    case syntax(String)
    /// `-INVALID …` or `-LIMIT …`: a value of the wrong form, out of range, or over a limit.
    case refused(Refusal)
}
