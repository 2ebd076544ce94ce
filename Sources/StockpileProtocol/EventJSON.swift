// The JSON of a pub/sub message (SPEC §5): one object per event, with the field names of the ledger
// entry record, so a subscriber and a HISTORY reader see the same names. Written by hand into one
// byte buffer because it runs for every event of every subscriber; strings are escaped per RFC 8259
// (quote, backslash and every control character), and the output is always valid UTF-8 because its
// strings come from Swift Strings.

import StockpileCore

public enum EventJSON {
    /// The event as one JSON object. Cost: one allocation, linear in the event's text.
    public static func encode(_ event: EngineEvent) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        switch event {
        case .entry(let e):
            out.append(UInt8(ascii: "{"))
            number("seq", e.seq, &out, first: true)
            number("time_ms", e.time.milliseconds, &out)
            string("type", e.type.rawValue, &out)
            string("variant", e.variant, &out)
            string("warehouse", e.warehouse, &out)
            number("delta_on_hand", e.deltaOnHand.units, &out)
            number("delta_reserved", e.deltaReserved.units, &out)
            number("on_hand", e.onHand.units, &out)
            number("reserved", e.reserved.units, &out)
            number("available", e.available.units, &out)
            string("reason", e.reason?.rawValue ?? "", &out)
            string("note", e.note, &out)
            string("ref", e.reference, &out)
            string("reservation", e.reservation, &out)
            string("actor", e.actor, &out)
            // SPEC §7.10: a physical loss below what is reserved is reported, never hidden.
            if e.reserved > e.onHand { number("shortfall", (e.reserved - e.onHand).units, &out) }
            out.append(UInt8(ascii: "}"))
        case .lowStock(let alert):
            out.append(UInt8(ascii: "{"))
            string("type", "low_stock", &out, first: true)
            number("seq", alert.seq, &out)
            string("variant", alert.variant, &out)
            string("warehouse", alert.warehouse, &out)
            number("available", alert.available.units, &out)
            number("threshold", alert.threshold.units, &out)
            key("low", &out)
            out.append(contentsOf: alert.isLow ? "true".utf8 : "false".utf8)
            out.append(UInt8(ascii: "}"))
        case .ended(.fellBehind(let backlogLimit, let resumeSeq)):
            out.append(UInt8(ascii: "{"))
            string("type", "ended", &out, first: true)
            string("reason", "fell_behind", &out)
            number("backlog_limit", Int64(backlogLimit), &out)
            number("resume_seq", resumeSeq, &out)
            out.append(UInt8(ascii: "}"))
        }
        return out
    }

    /// `"name":`, preceded by a comma unless it is the object's first member. Names are plain ASCII.
    static func key(_ name: StaticString, _ out: inout [UInt8], first: Bool = false) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    static func number(_ name: StaticString, _ value: Int64, _ out: inout [UInt8], first: Bool = false) {
        key(name, &out, first: first)
        if value < 0 { out.append(UInt8(ascii: "-")) }
        digits(value.magnitude, &out)
    }

    static func number(_ name: StaticString, _ value: UInt64, _ out: inout [UInt8], first: Bool = false) {
        key(name, &out, first: first)
        digits(value, &out)
    }

    /// The decimal digits of `value`, without building a String.
    static func digits(_ value: UInt64, _ out: inout [UInt8]) {
        guard value >= 10 else {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        let start = out.count
        var v = value
        while v > 0 {
            out.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        }
        out[start...].reverse()
    }

    static func string(_ name: StaticString, _ value: String, _ out: inout [UInt8], first: Bool = false) {
        key(name, &out, first: first)
        escaped(value, &out)
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `value` as a JSON string (RFC 8259 §7): `"` and `\` escaped with a backslash, control
    /// characters (U+0000–U+001F) as `\u00xx`, everything else, non-ASCII included, as its UTF-8 bytes.
    static func escaped(_ value: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0x00..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
