// Syntax of names and the status rule, tested exhaustively where the space is small.

import StockpileCore
import Testing

@Suite("Identifiers")
struct IdentifiersTests {
    @Test("variant ids accept the SPEC's alphabet up to 64 bytes", arguments: ["A", "SKU-1", "a.b_c:d/e-f", String(repeating: "x", count: 64), "TTLX", "KEYS"])
    func validVariants(_ v: String) {
        #expect(Identifiers.isValidVariant(v))
    }

    @Test("variant ids refuse empty, long, foreign characters and option words",
          arguments: ["", String(repeating: "x", count: 65), "a b", "é", "SKU#1", "TTL", "ttl", "Key", "unlimited", "LowStock", "*"])
    func invalidVariants(_ v: String) {
        #expect(!Identifiers.isValidVariant(v))
    }

    @Test("every option word is refused as a variant in any case; words one letter off are not")
    func optionWordsInAnyCase() {
        for word in Identifiers.optionWords {
            let mixed = String(word.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.lowercased()) : $0.element })
            for spelling in [word, word.lowercased(), mixed] {
                #expect(!Identifiers.isValidVariant(spelling), "\(spelling)")
            }
            for nearMiss in [word + "S", "X" + word, String(word.dropLast()) + (word.last == "Z" ? "Y" : "Z"), String(word.dropFirst())] {
                #expect(Identifiers.isValidVariant(nearMiss) == !Identifiers.optionWords.contains(nearMiss.uppercased()), "\(nearMiss)")
            }
        }
    }

    @Test("warehouse codes are upper-cased and limited to 32 of [A-Za-z0-9_-]")
    func warehouseCodes() {
        #expect(Identifiers.normalizedWarehouse("main") == "MAIN")
        #expect(Identifiers.normalizedWarehouse("East_2-b") == "EAST_2-B")
        #expect(Identifiers.normalizedWarehouse(String(repeating: "w", count: 32)) == String(repeating: "W", count: 32))
        #expect(Identifiers.normalizedWarehouse(String(repeating: "w", count: 33)) == nil)
        #expect(Identifiers.normalizedWarehouse("") == nil)
        #expect(Identifiers.normalizedWarehouse("a.b") == nil)
        #expect(Identifiers.normalizedWarehouse("*") == nil)
    }

    @Test("reservation ids are 1-128 bytes of ASCII 0x21-0x7E")
    func reservationIDs() {
        #expect(Identifiers.isValidReservationID("order-1001"))
        #expect(Identifiers.isValidReservationID("!~"))
        #expect(Identifiers.isValidReservationID(String(repeating: "r", count: 128)))
        #expect(!Identifiers.isValidReservationID(String(repeating: "r", count: 129)))
        #expect(!Identifiers.isValidReservationID(""))
        #expect(!Identifiers.isValidReservationID("a b"))
        #expect(!Identifiers.isValidReservationID("a\u{7F}"))
        #expect(!Identifiers.isValidReservationID("ünïcode"))
    }

    @Test("every reason parses case-insensitively and ADJUST signs follow SPEC §7.10", arguments: ReasonCode.allCases)
    func reasons(_ r: ReasonCode) {
        #expect(ReasonCode(parsing: r.rawValue.uppercased()) == r)
        switch r {
        case .received, .returned, .found: #expect(r.adjustSign == 1)
        case .damaged, .lost: #expect(r.adjustSign == -1)
        case .correction, .other: #expect(r.adjustSign == 0)
        default: #expect(r.adjustSign == nil)
        }
    }
}

@Suite("Reservation status")
struct ReservationStatusTests {
    /// Every combination of a line's fulfilled/released split (quantity 2) and whether expiry ended it.
    static let cases: [(fulfilled: Int64, released: Int64, byExpiry: Bool)] = {
        var out: [(Int64, Int64, Bool)] = []
        for f in 0...2 { for r in 0...(2 - f) { for e in [false, true] { out.append((Int64(f), Int64(r), e)) } } }
        return out
    }()

    @Test("status follows from the lines as SPEC §7.5 says", arguments: cases)
    func status(_ c: (fulfilled: Int64, released: Int64, byExpiry: Bool)) {
        let request = ReserveRequest(id: "r", lines: [ReserveLine(variant: "V", warehouse: "MAIN", quantity: 2)])
        var r = Reservation(
            id: "r", lines: [ReservationLine(variant: "V", warehouse: "MAIN", quantity: 2, fulfilled: Quantity(c.fulfilled), released: Quantity(c.released))],
            expiresAt: Timestamp(milliseconds: 5), customer: nil, createdAt: Timestamp(milliseconds: 0), fingerprint: ReserveFingerprint(request, strategy: .priority))
        r.settleStatus(at: Timestamp(milliseconds: 3), byExpiry: c.byExpiry)
        let remaining = 2 - c.fulfilled - c.released
        let expected: ReservationStatus =
            remaining > 0 ? (c.fulfilled > 0 ? .partiallyFulfilled : .active) : (c.fulfilled > 0 ? .fulfilled : (c.byExpiry ? .expired : .released))
        #expect(r.status == expected)
        #expect(r.isOpen == (remaining > 0))
        #expect((r.closedAt != nil) == (remaining == 0))
        #expect((r.expiresAt == nil) == (remaining == 0))
    }

    @Test("the replay fingerprint ignores line order and nothing else")
    func fingerprint() {
        let a = ReserveRequest(id: "r", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1), ReserveLine(variant: "B", warehouse: "MAIN", quantity: 2)], ttl: .seconds(60))
        var b = a
        b.lines.reverse()
        #expect(ReserveFingerprint(a, strategy: .priority) == ReserveFingerprint(b, strategy: .priority))
        #expect(ReserveFingerprint(a, strategy: .priority) != ReserveFingerprint(a, strategy: .most))
        var c = a
        c.ttl = .seconds(61)
        #expect(ReserveFingerprint(a, strategy: .priority) != ReserveFingerprint(c, strategy: .priority))
        var d = a
        d.lines[1].quantity = 3
        #expect(ReserveFingerprint(a, strategy: .priority) != ReserveFingerprint(d, strategy: .priority))
    }
}
