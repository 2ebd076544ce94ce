// Tokens and the roles they grant (SPEC §5, §7.17). The file has one `token role[,role…]` per line;
// `#` starts a comment. A bad line refuses the whole file, naming the line, so a typo never leaves
// a token with fewer or more rights than meant. What a set of roles permits is a bitmask of command
// classes, worked out once when a session authenticates: every request tests one bit, and neither
// builds a set nor hashes a role.

import Foundation
import StockpileProtocol

public enum Role: String, Sendable, Hashable, CaseIterable, Comparable {
    case read, checkout, fulfillment, inventory, admin

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
    private var rank: Int { Role.allCases.firstIndex(of: self)! }

    /// The classes of command this role may run. Every role may read.
    var permittedClasses: CommandClassSet {
        switch self {
        case .read: [.session, .read]
        case .checkout: [.session, .read, .checkout]
        case .fulfillment: [.session, .read, .fulfillment]
        case .inventory: [.session, .read, .inventory]
        case .admin: .all
        }
    }
}

/// A set of command classes as one bit each: what a session may run, tested on every request.
public struct CommandClassSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The set of the one class.
    public init(_ commandClass: CommandClass) {
        // A switch rather than an index into `allCases`, which would build an array per call.
        switch commandClass {
        case .session: rawValue = 1 << 0
        case .read: rawValue = 1 << 1
        case .checkout: rawValue = 1 << 2
        case .fulfillment: rawValue = 1 << 3
        case .inventory: rawValue = 1 << 4
        case .admin: rawValue = 1 << 5
        }
    }

    /// What `roles` permit together; only the connection commands (`session`) when there are none,
    /// which is what an unauthenticated session may run.
    public init(granting roles: Set<Role>?) {
        self = [.session]
        for role in roles ?? [] { formUnion(role.permittedClasses) }
    }

    public static let session = CommandClassSet(.session)
    public static let read = CommandClassSet(.read)
    public static let checkout = CommandClassSet(.checkout)
    public static let fulfillment = CommandClassSet(.fulfillment)
    public static let inventory = CommandClassSet(.inventory)
    public static let admin = CommandClassSet(.admin)
    public static let all: CommandClassSet = [.session, .read, .checkout, .fulfillment, .inventory, .admin]

    @inline(__always)
    public func contains(_ commandClass: CommandClass) -> Bool { contains(CommandClassSet(commandClass)) }
}

/// Why an auth file could not be used.
public struct AuthFileError: Error, CustomStringConvertible {
    public var description: String
}

public struct AuthTable: Sendable {
    private var roles: [String: Set<Role>]

    public init(_ roles: [String: Set<Role>]) {
        self.roles = roles
    }

    /// The roles a token grants; nil for a token that is not in the table.
    public func roles(of token: String) -> Set<Role>? { roles[token] }

    public var tokenCount: Int { roles.count }

    /// Parses the text of an auth file. `source` names it in errors.
    public init(parsing text: String, source: String) throws(AuthFileError) {
        var roles: [String: Set<Role>] = [:]
        // Split on every kind of line end: "\r\n" is one Character in Swift, so a split on "\n" alone
        // would read a file saved with CRLF line ends as one line.
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            let at = "\(source) line \(index + 1)"
            guard words.count == 2 else { throw AuthFileError(description: "\(at): expected `token role[,role…]`, found \(words.count) words") }
            let token = String(words[0])
            var granted = Set<Role>()
            for name in words[1].split(separator: ",") {
                guard let role = Role(rawValue: name.lowercased()) else {
                    throw AuthFileError(description: "\(at): unknown role '\(name)' (roles: \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                granted.insert(role)
            }
            guard !granted.isEmpty else { throw AuthFileError(description: "\(at): no role given") }
            guard roles[token] == nil else { throw AuthFileError(description: "\(at): the token is listed twice") }
            roles[token] = granted
        }
        guard !roles.isEmpty else { throw AuthFileError(description: "\(source): no tokens (one `token role[,role…]` per line)") }
        self.roles = roles
    }

    /// Reads and parses an auth file.
    public static func load(path: String) throws(AuthFileError) -> AuthTable {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw AuthFileError(description: "cannot read the auth file \(path)")
        }
        return try AuthTable(parsing: text, source: path)
    }
}
