// A reply as the wire carries it, before it is written as RESP2 or RESP3. Records are kept as
// records until the last moment, because the two versions spell them differently: a flat array of
// field/value pairs in RESP2, a map in RESP3 (SPEC §5, §7.16).

/// The wire version a connection speaks. Every connection starts with RESP2; `HELLO 3` switches it.
public enum RESPVersion: Int, Sendable, Hashable {
    case resp2 = 2
    case resp3 = 3
}

/// One field of a record: a name and its value.
public struct RecordField: Hashable, Sendable {
    public var name: String
    public var value: ReplyFrame

    public init(_ name: String, _ value: ReplyFrame) {
        self.name = name
        self.value = value
    }
}

public indirect enum ReplyFrame: Hashable, Sendable {
    /// `+text`: a status line such as OK or PONG. Must not contain CR or LF.
    case simple(String)
    /// `-CODE message`: the whole text after the dash. Must not contain CR or LF.
    case error(String)
    case integer(Int64)
    /// `$n` with any bytes.
    case bulk([UInt8])
    /// RESP2 `$-1`, RESP3 `_`.
    case null
    case array([ReplyFrame])
    /// RESP2: a flat array `name value name value …`; RESP3: a map `%`.
    case record([RecordField])
    /// RESP3: a push `>` (pub/sub messages); RESP2: a plain array.
    case push([ReplyFrame])

    /// A bulk string of UTF-8 text.
    public static func text(_ s: String) -> ReplyFrame { .bulk(Array(s.utf8)) }

    public static let ok = ReplyFrame.simple("OK")
}
