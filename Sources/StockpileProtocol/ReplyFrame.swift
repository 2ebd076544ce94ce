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

public indirect enum ReplyFrame: Sendable {
    /// `+text`: a status line such as OK or PONG. Must not contain CR or LF.
    case simple(String)
    /// `-CODE message`: the whole text after the dash. Must not contain CR or LF.
    case error(String)
    case integer(Int64)
    /// `$n` with any bytes.
    case bulk([UInt8])
    /// `$n` with the UTF-8 bytes of text: the same on the wire as `.bulk`, but a short string costs
    /// no allocation until it is written. Equal to the `.bulk` of the same bytes.
    case string(String)
    /// RESP2 `$-1`, RESP3 `_`.
    case null
    case array([ReplyFrame])
    /// RESP2: a flat array `name value name value …`; RESP3: a map `%`.
    case record([RecordField])
    /// RESP3: a push `>` (pub/sub messages); RESP2: a plain array.
    case push([ReplyFrame])

    /// A bulk string of UTF-8 text.
    public static func text(_ s: String) -> ReplyFrame { .string(s) }

    public static let ok = ReplyFrame.simple("OK")
}

extension ReplyFrame: Hashable {
    /// The bytes of a bulk string, however it is held.
    public var bulkBytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .string(let text): Array(text.utf8)
        default: nil
        }
    }

    /// Frames are equal when they write the same RESP: `.string` and `.bulk` of the same bytes are.
    public static func == (a: ReplyFrame, b: ReplyFrame) -> Bool {
        switch (a, b) {
        case (.simple(let x), .simple(let y)), (.error(let x), .error(let y)): return x == y
        case (.integer(let x), .integer(let y)): return x == y
        case (.null, .null): return true
        case (.array(let x), .array(let y)), (.push(let x), .push(let y)): return x == y
        case (.record(let x), .record(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        default:
            guard let x = a.bulkBytes, let y = b.bulkBytes else { return false }
            return x == y
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .simple(let s): hasher.combine(0); hasher.combine(s)
        case .error(let s): hasher.combine(1); hasher.combine(s)
        case .integer(let n): hasher.combine(2); hasher.combine(n)
        case .bulk, .string: hasher.combine(3); hasher.combine(bulkBytes!)
        case .null: hasher.combine(4)
        case .array(let items): hasher.combine(5); hasher.combine(items)
        case .record(let fields): hasher.combine(6); hasher.combine(fields)
        case .push(let items): hasher.combine(7); hasher.combine(items)
        }
    }
}
