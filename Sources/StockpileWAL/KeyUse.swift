// What a `keyUse` record stores (wal/FORMAT.md §2.3, §3.6): an idempotency KEY used by a success that
// changed nothing. Such a success writes no commit, yet its key is used — a retry must replay it and
// another command with the key is CONFLICT — so the log records the key, the command and the reply,
// and replay restores them. A key used by a commit travels inside the commit instead.

import StockpileCore

public struct KeyUse: Hashable, Sendable {
    /// When the key was used: its retention window runs from here.
    public var time: Timestamp
    /// The command as it was first sent; it carries the key.
    public var command: Command
    /// The reply it got (not marked as a replay).
    public var reply: Reply

    public init(time: Timestamp, command: Command, reply: Reply) {
        precondition(command.key != nil, "a key use needs a command that carries a key")
        self.time = time
        self.command = command
        self.reply = reply
    }

    /// The key.
    public var key: String { command.key ?? "" }
}
