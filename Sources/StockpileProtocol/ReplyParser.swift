// The client side of the wire (`stockpile cli`, the benchmark's TCP client, tests): turns a
// server's bytes into reply frames, RESP2 or RESP3, incrementally. It keeps true that bytes split
// anywhere give the same frames, that each finished item is consumed at once (so a long reply that
// arrives in pieces is not parsed again from its start), and that hostile input cannot exhaust memory
// or the stack: bulk and line sizes and the nesting depth are bounded, and nesting is kept on an
// explicit stack rather than by recursion.
//
// What each type byte becomes:
//
//   + simple    - error     : integer    $ bulk ($-1: null)    * array (*-1: null)    _ null
//   % map -> record (keys must be bulk or simple strings)      > push    ~ set -> array
//   # boolean -> integer 1/0    , double -> simple (its text)    ( big number -> simple (its text)
//   = verbatim -> bulk of the text after its `xxx:` format     ! blob error -> error

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct ReplyParser: Sendable {
    /// The largest bulk, verbatim or blob error payload accepted.
    public let bulkByteCountMax: Int
    /// The longest line (a simple string, an error, a number or a header) accepted, CRLF excluded.
    public let lineByteCountMax: Int
    /// The deepest nesting of aggregates accepted.
    public let depthMax: Int

    public static let bulkByteCountDefault = 512 * 1024 * 1024
    public static let lineByteCountDefault = 1024 * 1024
    public static let depthDefault = 64

    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where the search for the CR that ends the line at `readIndex` resumes (absolute; values
    /// below `readIndex + 1` are stale).
    private var lineScanIndex = 0
    /// The aggregates opened and not yet complete, outermost first.
    private var open: [Aggregate] = []

    private struct Aggregate: Sendable {
        enum Kind: Sendable { case array, push, map }
        var kind: Kind
        /// Items still expected; for a map, keys and values both count.
        var remaining: Int
        var items: [ReplyFrame] = []
        var fields: [RecordField] = []
        /// A map's key whose value has not arrived yet.
        var key: String?
    }

    /// One item read: a whole value, or the header of an aggregate whose items follow.
    private enum Item {
        case value(ReplyFrame)
        case aggregate(Aggregate.Kind, count: Int)
    }

    static let compactionByteCountMin = 16 * 1024
    /// Whether `byte` may start a reply; `nextItem()` handles each such byte.
    static func isTypeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "$"), UInt8(ascii: "*"),
            UInt8(ascii: "_"), UInt8(ascii: "%"), UInt8(ascii: ">"), UInt8(ascii: "#"), UInt8(ascii: ","),
            UInt8(ascii: "="), UInt8(ascii: "("), UInt8(ascii: "!"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    public init(
        bulkByteCountMax: Int = ReplyParser.bulkByteCountDefault,
        lineByteCountMax: Int = ReplyParser.lineByteCountDefault,
        depthMax: Int = ReplyParser.depthDefault
    ) {
        precondition(bulkByteCountMax >= 0 && lineByteCountMax >= 32 && depthMax >= 1, "limits too small to read a reply")
        self.bulkByteCountMax = bulkByteCountMax
        self.lineByteCountMax = lineByteCountMax
        self.depthMax = depthMax
    }

    /// Bytes received but not yet consumed (finished items of an open aggregate are consumed).
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        bytes.withMemoryRebound(to: UInt8.self) { buffer.append(contentsOf: $0) }
    }

    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// The next complete reply, or nil when more bytes are needed.
    ///
    /// - Throws: `ProtocolError` when the bytes are not RESP or pass a limit; the parser is then in
    ///   an unspecified state and the connection is to be closed.
    public mutating func next() throws(ProtocolError) -> ReplyFrame? {
        while true {
            guard let item = try nextItem() else { return nil }
            var frame: ReplyFrame
            switch item {
            case .value(let value):
                frame = value
            case .aggregate(let kind, let count):
                if count > 0 {
                    guard open.count < depthMax else {
                        throw ProtocolError("nesting too deep (the limit is \(depthMax))")
                    }
                    open.append(Aggregate(kind: kind, remaining: count))
                    continue
                }
                frame = Self.empty(kind)
            }
            // Hand the finished value to the aggregates it completes, innermost first.
            while !open.isEmpty {
                let top = open.count - 1
                open[top].remaining -= 1
                if open[top].kind == .map {
                    if let key = open[top].key {
                        open[top].fields.append(RecordField(key, frame))
                        open[top].key = nil
                    } else {
                        switch frame {
                        case .bulk(let bytes): open[top].key = String(decoding: bytes, as: UTF8.self)
                        case .simple(let text): open[top].key = text
                        default: throw ProtocolError("map key is not a string")
                        }
                    }
                } else {
                    open[top].items.append(frame)
                }
                guard open[top].remaining == 0 else { break }
                let done = open.removeLast()
                switch done.kind {
                case .array: frame = .array(done.items)
                case .push: frame = .push(done.items)
                case .map: frame = .record(done.fields)
                }
            }
            if open.isEmpty { return frame }
        }
    }

    private static func empty(_ kind: Aggregate.Kind) -> ReplyFrame {
        switch kind {
        case .array: .array([])
        case .push: .push([])
        case .map: .record([])
        }
    }

    // MARK: - Items

    /// Reads the item at `readIndex` and consumes it, or returns nil (consuming nothing) when it
    /// is not complete.
    private mutating func nextItem() throws(ProtocolError) -> Item? {
        guard readIndex < buffer.count else { return nil }
        let type = buffer[readIndex]
        // An unknown type byte is refused at once rather than after its line arrives, which may
        // be never.
        guard Self.isTypeByte(type) else {
            throw ProtocolError("unexpected byte '\(ProtocolError.printable(type))' where a reply starts")
        }
        guard let lineEnd = try lineEnd() else { return nil }
        let text = buffer[(readIndex + 1)..<lineEnd]
        let afterLine = lineEnd + 2
        let item: Item
        switch type {
        case UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: "("):
            item = .value(.simple(String(decoding: text, as: UTF8.self)))
        case UInt8(ascii: "-"):
            item = .value(.error(String(decoding: text, as: UTF8.self)))
        case UInt8(ascii: ":"):
            guard let value = Self.integer(text) else { throw ProtocolError("invalid integer") }
            item = .value(.integer(value))
        case UInt8(ascii: "_"):
            guard text.isEmpty else { throw ProtocolError("invalid null") }
            item = .value(.null)
        case UInt8(ascii: "#"):
            switch text.first {
            case UInt8(ascii: "t") where text.count == 1: item = .value(.integer(1))
            case UInt8(ascii: "f") where text.count == 1: item = .value(.integer(0))
            default: throw ProtocolError("invalid boolean")
            }
        case UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "!"):
            guard let length = Self.integer(text), length >= -1, length <= bulkByteCountMax else {
                throw .invalidBulkLength
            }
            if length == -1 {
                guard type == UInt8(ascii: "$") else { throw .invalidBulkLength }
                item = .value(.null)
                break
            }
            let payloadEnd = afterLine + Int(length)
            if buffer.count > payloadEnd {
                guard buffer[payloadEnd] == UInt8(ascii: "\r") else { throw .missingCRLFAfterBulk }
                if buffer.count > payloadEnd + 1 {
                    guard buffer[payloadEnd + 1] == UInt8(ascii: "\n") else { throw .missingCRLFAfterBulk }
                }
            }
            guard buffer.count >= payloadEnd + 2 else { return nil }
            let payload = buffer[afterLine..<payloadEnd]
            switch type {
            case UInt8(ascii: "="):
                // A verbatim string starts with a three-letter format and a colon (`txt:`).
                guard payload.count >= 4, payload[afterLine + 3] == UInt8(ascii: ":") else {
                    throw ProtocolError("invalid verbatim string")
                }
                item = .value(.bulk(Array(payload.dropFirst(4))))
            case UInt8(ascii: "!"):
                item = .value(.error(String(decoding: payload, as: UTF8.self)))
            default:
                item = .value(.bulk(Array(payload)))
            }
            consume(upTo: payloadEnd + 2)
            return item
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: "%"), UInt8(ascii: ">"):
            // A count can promise far more items than will ever come; only items that arrive take
            // memory, so the bound is on the count's range, not on what it reserves.
            guard let count = Self.integer(text), count >= -1, count <= Int64(Int32.max) else {
                throw .invalidMultibulkLength
            }
            if count == -1 {
                guard type == UInt8(ascii: "*") else { throw .invalidMultibulkLength }
                item = .value(.null)
                break
            }
            switch type {
            case UInt8(ascii: "%"): item = .aggregate(.map, count: 2 * Int(count))
            case UInt8(ascii: ">"): item = .aggregate(.push, count: Int(count))
            default: item = .aggregate(.array, count: Int(count))
            }
        default:
            preconditionFailure("isTypeByte and this switch disagree")
        }
        consume(upTo: afterLine)
        return item
    }

    /// The index of the CR that ends the line at `readIndex`, or nil while it has not arrived.
    private mutating func lineEnd() throws(ProtocolError) -> Int? {
        let searchStart = max(lineScanIndex, readIndex + 1)
        // The type byte, the line, then its CR: the CR may sit at most this far in.
        let searchEnd = min(buffer.count, readIndex + 1 + lineByteCountMax + 1)
        let found: Int? = buffer.withUnsafeBufferPointer { bytes in
            guard searchStart < searchEnd, let base = bytes.baseAddress else { return nil }
            guard let hit = memchr(base + searchStart, Int32(UInt8(ascii: "\r")), searchEnd - searchStart) else {
                return nil
            }
            return UnsafeRawPointer(hit) - UnsafeRawPointer(base)
        }
        guard let found else {
            if searchEnd == readIndex + 1 + lineByteCountMax + 1 {
                throw ProtocolError("line too long (the limit is \(lineByteCountMax) bytes)")
            }
            lineScanIndex = searchEnd
            return nil
        }
        lineScanIndex = found
        guard found + 1 < buffer.count else { return nil }
        guard buffer[found + 1] == UInt8(ascii: "\n") else { throw ProtocolError("expected CRLF") }
        return found
    }

    private mutating func consume(upTo index: Int) {
        readIndex = index
        lineScanIndex = index
    }

    /// A RESP integer: an optional sign and at least one digit, within Int64's range.
    static func integer(_ text: ArraySlice<UInt8>) -> Int64? {
        var index = text.startIndex
        var isNegative = false
        if index < text.endIndex && (text[index] == UInt8(ascii: "-") || text[index] == UInt8(ascii: "+")) {
            isNegative = text[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < text.endIndex else { return nil }
        var magnitude: UInt64 = 0
        while index < text.endIndex {
            let digit = text[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow && !carry else { return nil }
            magnitude = sum
            index += 1
        }
        return signed(magnitude, isNegative)
    }

    private static func signed(_ magnitude: UInt64, _ isNegative: Bool) -> Int64? {
        if isNegative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return Int64(truncatingIfNeeded: 0 &- magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    // MARK: - Buffer

    /// Drops the consumed prefix when it is at least `compactionByteCountMin` and at least what is
    /// left, so each byte is moved a bounded number of times.
    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else if readIndex >= Self.compactionByteCountMin && readIndex >= buffer.count - readIndex {
            buffer.removeSubrange(0..<readIndex)
        } else {
            return
        }
        lineScanIndex = max(0, lineScanIndex - readIndex)
        readIndex = 0
    }
}
