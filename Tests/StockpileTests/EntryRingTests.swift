// The ring of recent ledger entries keeps each entry packed in 128 bytes, or boxed when its names do
// not fit: every entry reads back equal to the one kept, whatever its names, type and reason, and
// whether its slot held a packed or a boxed entry before. Seeded (STOCKPILE_SEED).

import Foundation
import Testing
@testable import Stockpile

@Suite struct EntryRingTests {
    static func name(_ rng: inout SplitMix64, room: Int) -> String {
        let pieces = ["", "A", "MAIN", "SKU-000000012345", "é", "倉庫", "🙂", "client-17", "o:12345:67890:13579"]
        var s = ""
        while s.utf8.count < room, rng.next() % 3 != 0 { s += pieces[Int(rng.next() % UInt64(pieces.count))] }
        return s
    }

    @Test("every entry reads back as it was kept, packed or boxed")
    func roundTrip() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 0xE17_2196
        var rng = SplitMix64(seed: seed)
        let ring = EntryRing(capacity: 7)
        var boxed = 0
        for seq in UInt64(1)...5_000 {
            // Mostly short names, now and then a note too long for a slot.
            let room = rng.next() % 10 == 0 ? 120 : 30
            let e = LedgerEntry(
                seq: seq, time: Timestamp(milliseconds: Int64(bitPattern: rng.next())), type: EntryType.allCases[Int(rng.next() % UInt64(EntryType.allCases.count))],
                variant: Self.name(&rng, room: 16), warehouse: Self.name(&rng, room: 8), deltaOnHand: Quantity(Int64(bitPattern: rng.next())),
                deltaReserved: Quantity(Int64(bitPattern: rng.next())), onHand: Quantity(Int64(bitPattern: rng.next())),
                reserved: Quantity(Int64(bitPattern: rng.next())),
                reason: rng.next() % 3 == 0 ? nil : ReasonCode.allCases[Int(rng.next() % UInt64(ReasonCode.allCases.count))],
                note: Self.name(&rng, room: Int(room)), reference: Self.name(&rng, room: 10), reservation: Self.name(&rng, room: 20),
                actor: Self.name(&rng, room: 10))
            let names = [e.variant, e.warehouse, e.note, e.reference, e.reservation, e.actor].reduce(0) { $0 + $1.utf8.count }
            if names > 72 { boxed += 1 }
            ring.keep(e)
            guard case .entry(let kept) = ring.entry(seq), kept == e else {
                Issue.record("seed \(seed): entry \(seq) does not read back as kept: \(e)")
                return
            }
            if seq > 7, case .entry = ring.entry(seq - 7) { Issue.record("seed \(seed): entry \(seq - 7) is still there") }
        }
        #expect(boxed > 100, "seed \(seed): the test keeps entries too long to pack")
    }
}

extension EntryRingTests {
    @Test("every type and every reason packs to its index among the cases")
    func codes() {
        #expect(MemoryLayout<EntryType>.size == 1 && MemoryLayout<ReasonCode>.size == 1)
        for (i, t) in EntryType.allCases.enumerated() { #expect(Int(t.packedCode) == i, "\(t)") }
        for (i, r) in ReasonCode.allCases.enumerated() { #expect(Int(r.packedCode) == i, "\(r)") }
    }
}
