// A framing error: bytes that cannot be read as RESP. On the server it ends the connection after
// one `-ERR Protocol error: …` reply, as Redis does (SPEC §7.15), because after a framing error the
// parser no longer knows where the next request starts. The messages keep Redis's wording where
// Redis has one, so clients and operators recognise them.

public struct ProtocolError: Error, Hashable, Sendable {
    /// What was wrong, without the `ERR Protocol error: ` prefix. Never contains CR or LF.
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    /// The reply a server sends before it closes the connection.
    public var frame: ReplyFrame { .error("ERR Protocol error: " + message) }
}

extension ProtocolError {
    static let invalidMultibulkLength = ProtocolError("invalid multibulk length")
    static let invalidBulkLength = ProtocolError("invalid bulk length")
    static let multibulkCountTooLong = ProtocolError("too big mbulk count string")
    static let bulkCountTooLong = ProtocolError("too big bulk count string")
    static let missingCRLFAfterBulk = ProtocolError("missing CRLF after bulk string")
    static let inlineRequestTooLong = ProtocolError("too big inline request")
    static let unbalancedQuotes = ProtocolError("unbalanced quotes in request")

    static func tooManyArguments(limit: Int) -> ProtocolError {
        ProtocolError("too many arguments (the limit is \(limit))")
    }

    static func requestTooLarge(limit: Int) -> ProtocolError {
        ProtocolError("request too large (the limit is \(limit) bytes)")
    }

    /// Redis writes the byte as it is; a control byte is written as `\xHH` here so that the message
    /// stays one printable line.
    static func expectedDollar(got byte: UInt8) -> ProtocolError {
        ProtocolError("expected '$', got '\(printable(byte))'")
    }

    static func printable(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7F { return String(UnicodeScalar(byte)) }
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
    }
}
