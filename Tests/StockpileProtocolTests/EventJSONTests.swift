// The JSON of pub/sub messages: the exact bytes for an entry and for a low-stock alert, and RFC 8259
// escaping of quotes, backslashes, control characters, with non-ASCII text passed through as UTF-8.

import Foundation
import StockpileCore
import StockpileProtocol
import Testing

private func json(_ event: EngineEvent) -> String {
    String(decoding: EventJSON.encode(event), as: UTF8.self)
}

@Suite("Event JSON")
struct EventJSONTests {
    @Test("a ledger entry is one object with the entry record's field names, in order")
    func entry() {
        let e = LedgerEntry(
            seq: 12, time: Timestamp(milliseconds: 1_700_000_000_123), type: .reserve, variant: "SKU-1", warehouse: "MAIN",
            deltaReserved: 3, onHand: 10, reserved: 3, reservation: "order-1", actor: "checkout")
        #expect(
            json(.entry(e))
                == #"{"seq":12,"time_ms":1700000000123,"type":"reserve","variant":"SKU-1","warehouse":"MAIN","delta_on_hand":0,"delta_reserved":3,"on_hand":10,"reserved":3,"available":7,"reason":"","note":"","ref":"","reservation":"order-1","actor":"checkout"}"#
        )
    }

    @Test("an entry that leaves reserved above on_hand carries shortfall, negative figures as JSON numbers")
    func entryWithShortfall() {
        let e = LedgerEntry(
            seq: 9_223_372_036_854_775_807, time: Timestamp(milliseconds: 0), type: .adjust, variant: "SKU", warehouse: "EAST",
            deltaOnHand: -1_000_000_000_000, onHand: 2, reserved: 5, reason: .lost, note: "n", reference: "r", actor: "ops")
        #expect(
            json(.entry(e))
                == #"{"seq":9223372036854775807,"time_ms":0,"type":"adjust","variant":"SKU","warehouse":"EAST","delta_on_hand":-1000000000000,"delta_reserved":0,"on_hand":2,"reserved":5,"available":-3,"reason":"lost","note":"n","ref":"r","reservation":"","actor":"ops","shortfall":3}"#
        )
    }

    @Test("a low-stock alert says which cell, its available, the threshold and whether it is low", arguments: [true, false])
    func alert(_ isLow: Bool) {
        let alert = LowStockAlert(variant: "SKU", warehouse: "MAIN", available: isLow ? 2 : 6, threshold: 5, isLow: isLow, seq: 44)
        #expect(
            json(.lowStock(alert))
                == #"{"type":"low_stock","seq":44,"variant":"SKU","warehouse":"MAIN","available":\#(isLow ? 2 : 6),"threshold":5,"low":\#(isLow)}"#
        )
    }

    static let escapes: [(String, String)] = [
        ("say \"hi\"", #""say \"hi\"""#),
        (#"C:\path\"#, #""C:\\path\\""#),
        ("line\nbreak\r\ttab", #""line\u000abreak\u000d\u0009tab""#),
        ("\u{0}\u{1}\u{1F}\u{7F} ", "\"\\u0000\\u0001\\u001f\u{7F} \""),
        ("café 東京 😀", "\"café 東京 😀\""),
        ("", "\"\""),
    ]

    @Test("strings are escaped as RFC 8259 asks, non-ASCII kept as UTF-8", arguments: escapes)
    func escaping(_ raw: String, _ escaped: String) {
        let e = LedgerEntry(seq: 1, time: Timestamp(milliseconds: 1), type: .adjust, note: raw)
        #expect(json(.entry(e)).contains(#""note":"# + escaped + #","ref""#))
    }

    @Test("a JSON parser reads every field back as written", arguments: escapes.map(\.0))
    func roundTrip(_ raw: String) throws {
        let e = LedgerEntry(
            seq: 3, time: Timestamp(milliseconds: 77), type: .return, variant: "V", warehouse: "W", deltaOnHand: 2, onHand: 2,
            reason: .returned, note: raw, reference: raw + "!", actor: "a\"b")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(EventJSON.encode(.entry(e)))) as? [String: Any])
        #expect(object["note"] as? String == raw)
        #expect(object["ref"] as? String == raw + "!")
        #expect(object["actor"] as? String == "a\"b")
        #expect((object["delta_on_hand"] as? NSNumber)?.int64Value == 2)
        #expect(object["reason"] as? String == "returned")
        #expect(object.count == 15)
    }
}
