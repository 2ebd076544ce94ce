// Writes replies as RESP2 or RESP3 bytes, and requests as a client writes them. It keeps true that
// every frame becomes exactly one well-formed RESP value of the connection's version (SPEC §5,
// §7.16): a record is a flat array of name/value pairs in RESP2 and a map in RESP3, a push is a plain
// array in RESP2, and a simple or error line never carries a CR or LF that would end it early.
//
//   frame        RESP2                         RESP3
//   simple       +text CRLF                    same
//   error        -text CRLF                    same
//   integer      :n CRLF                       same
//   bulk, string $len CRLF bytes CRLF          same
//   null         $-1 CRLF                      _ CRLF
//   array        *n CRLF items                 same
//   record       *2n CRLF (name value)…        %n CRLF (name value)…   names as bulk strings
//   push         *n CRLF items                 >n CRLF items

public enum ReplyEncoder {
    /// Appends `frame`, and every frame nested in it, to `out`. O(size of the output); writes
    /// numbers without building strings.
    public static func encode(_ frame: ReplyFrame, version: RESPVersion, into out: inout [UInt8]) {
        switch frame {
        case .simple(let text):
            out.append(UInt8(ascii: "+"))
            appendLine(text, into: &out)
        case .error(let text):
            out.append(UInt8(ascii: "-"))
            appendLine(text, into: &out)
        case .integer(let value):
            out.append(UInt8(ascii: ":"))
            appendDecimal(value, into: &out)
            appendCRLF(into: &out)
        case .bulk(let bytes):
            appendBulk(bytes, into: &out)
        case .string(let text):
            appendBulk(text.utf8, into: &out)
        case .null:
            switch version {
            case .resp2: appendASCII("$-1\r\n", into: &out)
            case .resp3: appendASCII("_\r\n", into: &out)
            }
        case .array(let items):
            appendHeader(UInt8(ascii: "*"), count: items.count, into: &out)
            for item in items { encode(item, version: version, into: &out) }
        case .record(let fields):
            switch version {
            case .resp2: appendHeader(UInt8(ascii: "*"), count: 2 * fields.count, into: &out)
            case .resp3: appendHeader(UInt8(ascii: "%"), count: fields.count, into: &out)
            }
            for field in fields {
                appendBulk(field.name.utf8, into: &out)
                encode(field.value, version: version, into: &out)
            }
        case .push(let items):
            switch version {
            case .resp2: appendHeader(UInt8(ascii: "*"), count: items.count, into: &out)
            case .resp3: appendHeader(UInt8(ascii: ">"), count: items.count, into: &out)
            }
            for item in items { encode(item, version: version, into: &out) }
        }
    }

    /// `frame` as bytes: a convenience for tests and tools; the server appends to a reused buffer.
    public static func encoded(_ frame: ReplyFrame, version: RESPVersion) -> [UInt8] {
        var out: [UInt8] = []
        encode(frame, version: version, into: &out)
        return out
    }

    // MARK: - Pieces, shared with RequestEncoder

    /// The text then CRLF, with any CR or LF inside replaced by a space: a frame built from user
    /// input must not be able to end its line early and inject a reply of its own.
    static func appendLine(_ text: String, into out: inout [UInt8]) {
        let utf8 = text.utf8
        if utf8.contains(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) {
            for byte in utf8 {
                out.append(byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") ? UInt8(ascii: " ") : byte)
            }
        } else {
            out.append(contentsOf: utf8)
        }
        appendCRLF(into: &out)
    }

    static func appendBulk(_ bytes: some Collection<UInt8>, into out: inout [UInt8]) {
        appendHeader(UInt8(ascii: "$"), count: bytes.count, into: &out)
        out.append(contentsOf: bytes)
        appendCRLF(into: &out)
    }

    static func appendHeader(_ marker: UInt8, count: Int, into out: inout [UInt8]) {
        out.append(marker)
        appendDecimal(Int64(count), into: &out)
        appendCRLF(into: &out)
    }

    @inline(__always)
    static func appendCRLF(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\r"))
        out.append(UInt8(ascii: "\n"))
    }

    static func appendASCII(_ text: StaticString, into out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// The decimal digits of `value`, written straight into `out` (no String in between), the way
    /// `ReplyWriter` writes them: a sign and at most 19 digits.
    static func appendDecimal(_ value: Int64, into out: inout [UInt8]) {
        ReplyWriter.write(upTo: 20, into: &out) { $0.putDecimal(value) }
    }
}

/// The client side: a request as Redis clients send it, a RESP2 array of bulk strings.
public enum RequestEncoder {
    /// Appends `*n` and each argument as a bulk string. O(total bytes).
    public static func encode(_ arguments: [[UInt8]], into out: inout [UInt8]) {
        ReplyEncoder.appendHeader(UInt8(ascii: "*"), count: arguments.count, into: &out)
        for argument in arguments { ReplyEncoder.appendBulk(argument, into: &out) }
    }

    /// Appends `*n` and each argument's UTF-8 as a bulk string.
    public static func encode(_ arguments: [String], into out: inout [UInt8]) {
        ReplyEncoder.appendHeader(UInt8(ascii: "*"), count: arguments.count, into: &out)
        for argument in arguments { ReplyEncoder.appendBulk(argument.utf8, into: &out) }
    }
}
