// A reservation's fingerprint (SPEC §7.3: its request's lines as a multiset): a reservation whose own
// lines are its request's lines, in any order, keeps no copy of them, reads its fingerprint back in the
// canonical order, and takes the same lines in any order as its own request. Seeded (STOCKPILE_SEED);
// the seed is in every failure message.

import Foundation
import StockpileCore
import Testing

@Suite("Reservation fingerprints")
struct ReservationFingerprintTests {
    private static let seed: UInt64 = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap { UInt64($0) } ?? 2026

    private static func line(_ variant: String, _ warehouse: String, _ quantity: Int64) -> ReserveLine {
        ReserveLine(variant: variant, warehouse: warehouse, quantity: Quantity(quantity))
    }

    private static func line(_ variant: String, _ quantity: Int64) -> ReserveLine { line(variant, "MAIN", quantity) }

    /// The reservation `request` makes with its own lines (each held in full), fingerprinted as the
    /// request lists its lines, or in canonical order.
    private static func made(_ request: ReserveRequest, canonical: Bool) -> Reservation {
        let lines = request.lines.map { ReservationLine(variant: $0.variant, warehouse: $0.warehouse, quantity: $0.quantity) }
        let fingerprint = canonical
            ? ReserveFingerprint(request, strategy: .priority)
            : ReserveFingerprint(lines: request.lines, ttl: request.ttl, customer: request.customer, strategy: .priority)
        return Reservation(new: request, lines: lines, fingerprint: fingerprint, at: Timestamp(milliseconds: 1_000))
    }

    @Test("lines requested out of canonical order: no copy kept, the fingerprint reads back canonical, and either way of fingerprinting makes the same reservation")
    func outOfOrder() {
        let request = ReserveRequest(id: "r", lines: [Self.line("SKU-9", 2), Self.line("SKU-1", 1), Self.line("SKU-5", "EAST", 3)], ttl: .seconds(60))
        let canonical = ReserveFingerprint(request, strategy: .priority)
        #expect(canonical.lines.map(\.variant) == ["SKU-1", "SKU-5", "SKU-9"])
        for asGiven in [false, true] {
            let r = Self.made(request, canonical: asGiven)
            #expect(r.fingerprintLinesAreOwnLines, "fingerprinted \(asGiven ? "canonically" : "as given")")
            #expect(r.fingerprint == canonical)
            #expect(r.isRequested(by: canonical))
        }
        #expect(Self.made(request, canonical: false) == Self.made(request, canonical: true))
    }

    @Test("the same lines in any order are the request; other quantities, a line more or less, or a line twice are not", arguments: [2, 3, 5, 64, 65, 100])
    func permutations(count: Int) {
        var rng = SplitMix64(seed: Self.seed &+ UInt64(count))
        let lines: [ReserveLine] = (0..<count).map { (i: Int) -> ReserveLine in
            let warehouse = i % 3 == 0 ? "EAST" : "MAIN"
            return Self.line("SKU-\(i)", warehouse, Int64(i % 4 + 1))
        }
        let r = Self.made(ReserveRequest(id: "r", lines: lines.shuffled(using: &rng)), canonical: false)
        #expect(r.fingerprintLinesAreOwnLines, "seed \(Self.seed)")
        func asked(_ lines: [ReserveLine]) -> ReserveFingerprint { ReserveFingerprint(lines: lines, ttl: nil, customer: nil, strategy: .priority) }
        for _ in 0..<5 {
            #expect(r.isRequested(by: asked(lines.shuffled(using: &rng))), "seed \(Self.seed), \(count) lines")
        }
        var changed = lines.shuffled(using: &rng)
        changed[Int(rng.next() % UInt64(count))].quantity = Quantity(99)
        #expect(!r.isRequested(by: asked(changed)), "seed \(Self.seed): another quantity")
        #expect(!r.isRequested(by: asked(Array(lines.shuffled(using: &rng).dropLast()))), "seed \(Self.seed): a line less")
        #expect(!r.isRequested(by: asked(lines.shuffled(using: &rng) + [Self.line("SKU-X", 1)])), "seed \(Self.seed): a line more")
        var twice = lines.shuffled(using: &rng)
        twice[0] = twice[1]
        #expect(!r.isRequested(by: asked(twice)), "seed \(Self.seed): one line twice, another missing")
    }

    @Test("a request whose lines are not the reservation's own (a line placed by the engine) keeps them, and is matched in any order")
    func placedLines() {
        let request = ReserveRequest(id: "r", lines: [Self.line("SKU-2", "*", 2), Self.line("SKU-1", 1)])
        // The engine placed SKU-2 in EAST: the reservation's lines are not the request's.
        let own = [ReservationLine(variant: "SKU-2", warehouse: "EAST", quantity: 2), ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 1)]
        let r = Reservation(new: request, lines: own, fingerprint: ReserveFingerprint(request, strategy: .priority), at: Timestamp(milliseconds: 1))
        #expect(!r.fingerprintLinesAreOwnLines)
        #expect(r.fingerprint == ReserveFingerprint(request, strategy: .priority))
        #expect(r.isRequested(by: ReserveFingerprint(lines: request.lines, ttl: nil, customer: nil, strategy: .priority)))
        #expect(!r.isRequested(by: ReserveFingerprint(lines: [Self.line("SKU-2", "EAST", 2), Self.line("SKU-1", 1)], ttl: nil, customer: nil, strategy: .priority)))
    }
}
