// RESP requests written straight into one reused buffer, for the inner loop of TCP mode: a RESERVE
// costs no `String` and no allocation once the buffer has grown to a batch's size. The bytes are
// those `RequestEncoder` writes: `*<count>` then each argument as `$<length>` and its bytes, each
// line ending in CRLF.

struct RequestWriter {
    private(set) var bytes: [UInt8] = []

    mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// `*<count>\r\n`: the start of a request of `count` arguments.
    mutating func arrayHeader(_ count: Int) {
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(count)
        appendCRLF()
    }

    /// One argument.
    mutating func bulk(_ word: [UInt8]) {
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(word.count)
        appendCRLF()
        bytes.append(contentsOf: word)
        appendCRLF()
    }

    /// One argument made of `prefix` followed by `number` in decimal (a unique id).
    mutating func bulk(_ prefix: [UInt8], _ number: Int) {
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(prefix.count + RequestWriter.digitCount(number))
        appendCRLF()
        bytes.append(contentsOf: prefix)
        appendDecimal(number)
        appendCRLF()
    }

    static func digitCount(_ n: Int) -> Int {
        precondition(n >= 0, "only counts and lengths are written")
        var count = 1
        var rest = n
        while rest >= 10 {
            rest /= 10
            count += 1
        }
        return count
    }

    private mutating func appendDecimal(_ n: Int) {
        precondition(n >= 0, "only counts and lengths are written")
        var divisor = 1
        while divisor <= n / 10 { divisor *= 10 }
        var rest = n
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    private mutating func appendCRLF() {
        bytes.append(UInt8(ascii: "\r"))
        bytes.append(UInt8(ascii: "\n"))
    }
}
