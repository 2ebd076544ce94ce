// A shard's compact reservation table against a Dictionary of whole reservations as the model: random
// reservations of every shape (one line or several, placed or named, with and without TTL, customer,
// a TTL finer than a millisecond, a line too large for 16 bits, an expiry or a closing too far from
// its making for 32 bits of milliseconds, open or closed in each way) stored, replaced, removed and read back
// equal to what was stored, with its cells named from the shard's cell table. Seeded (STOCKPILE_SEED).

import StockpileCore
import Testing

@testable import Stockpile

@Suite("Reservation table")
struct ReservationTableTests {
    @Test("random reservations of every shape read back exactly as stored; closed ones are removed only after their time")
    func readsBackAsStored() {
        let seed = testSeed(fallback: 9696)
        var rng = SplitMix64(seed: seed)
        var cells = CellTable()
        let keys = (0..<50).map { CellKey(variant: "SKU-\($0)", warehouse: $0 % 3 == 0 ? "EAST" : "MAIN") }
        for k in keys { cells[k] = CellSlot(state: .empty) }
        var table = ReservationTable()
        var model: [String: Reservation] = [:]
        var compactCount = 0
        func randomReservation(id: String) -> Reservation {
            let lineCount = rng.next() % 4 == 0 ? 2 : 1
            var lines: [ReservationLine] = []
            for k in keys.shuffled(using: &rng).prefix(lineCount) {
                // Now and then a line too large for the compact entry's 16-bit figures, or just within them.
                let large: Int64 = switch rng.next() % 16 {
                case 0: Int64(UInt32.max) - 4
                case 1: Int64(UInt16.max) - 4
                case 2: Int64(UInt16.max) - 9
                default: 0
                }
                let quantity = Quantity(Int64(1 + rng.next() % 9) + large)
                let fulfilled = Quantity(Int64(rng.next() % UInt64(quantity.units + 1)))
                let released = Quantity(Int64(rng.next() % UInt64(quantity.units - fulfilled.units + 1)))
                lines.append(ReservationLine(
                    variant: k.variant, warehouse: k.warehouse, quantity: quantity, fulfilled: fulfilled, released: released,
                    backordered: Quantity(Int64(rng.next() % 2)), tracked: rng.next() % 5 != 0))
            }
            let ttl: Duration? = switch rng.next() % 4 {
            case 0: nil
            case 1: .seconds(Int64(rng.next() % 600))
            case 2: .milliseconds(Int64(rng.next() % 100_000))
            default: .nanoseconds(Int64(rng.next() % 1_000_000_000))
            }
            let created = Timestamp(milliseconds: Int64(rng.next() % 1_000_000))
            let customer: String? = rng.next() % 3 == 0 ? "C-\(rng.next() % 10)" : nil
            // A request that named its lines, or one whose lines the engine placed (another warehouse).
            let requested = lines.map {
                ReserveLine(variant: $0.variant, warehouse: rng.next() % 4 == 0 ? "WEST" : $0.warehouse, quantity: $0.quantity)
            }
            // Now and then an expiry or a closing too far from the making for the compact entry's
            // 32-bit offset (about 49.7 days), or before it (a clock set back), or just within it.
            let later: Duration = switch rng.next() % 16 {
            case 0: .milliseconds(Int64(UInt32.max))
            case 1: .milliseconds(Int64(UInt32.max) - 1)
            case 2: .seconds(-5)
            default: .seconds(Int64(rng.next() % 100))
            }
            var r = Reservation(
                id: id, lines: lines, expiresAt: ttl.map { _ in created.advanced(by: later) }, customer: customer,
                createdAt: created, fingerprint: ReserveFingerprint(lines: requested, ttl: ttl, customer: customer, strategy: .priority))
            r.settleStatus(at: created.advanced(by: later), byExpiry: rng.next() % 2 == 0)
            return r
        }
        for step in 0..<5_000 {
            let id = "r-\(rng.next() % 700)"
            let hash = id.hashValue
            switch rng.next() % 10 {
            case 0..<6:
                let r = randomReservation(id: id)
                let position = r.lines.count == 1 ? cells.position(of: r.lines[0].cell, hash: CellTable.hash(r.lines[0].cell)) : nil
                table.store(r, hash: hash, cellPosition: position)
                model[id] = r
                if table.stored(id, hash: hash)?.whole == nil { compactCount += 1 }
            case 6:
                table.remove(id, hash: hash)
                model[id] = nil
            case 7:
                let limit = Timestamp(milliseconds: Int64(rng.next() % 1_100_000))
                let removed = table.remove(id, hash: hash, closedNotAfter: limit)
                let expected = model[id].map { !$0.isOpen && $0.closedAt! <= limit } ?? false
                #expect(removed == expected, "seed \(seed) step \(step)")
                if removed { model[id] = nil }
            default:
                #expect(table.stored(id, hash: hash)?.reservation(id: id, cells: cells) == model[id], "seed \(seed) step \(step)")
                #expect(table.openCount == model.values.filter(\.isOpen).count, "seed \(seed) step \(step)")
            }
        }
        #expect(table.count == model.count, "seed \(seed)")
        #expect(table.openCount == model.values.filter(\.isOpen).count, "seed \(seed)")
        let listed = Dictionary(uniqueKeysWithValues: table.all(cells: cells).map { ($0.id, $0) })
        #expect(listed == model, "seed \(seed)")
        // The shapes the engine keeps compact were met, or the test would not test them.
        #expect(compactCount > 500, "seed \(seed)")
    }

    @Test("a reservation kept compact takes 48 bytes besides its id, and its table entry 64 (no hash)")
    func compactSize() {
        // What the retention window keeps per closed reservation starts here; a field added to the
        // entry shows up in this figure before it shows up in memory.
        #expect(MemoryLayout<StoredReservation>.stride == 48)
        #expect(MemoryLayout<IDTable<StoredReservation>.Entry>.stride == 64)
    }
}
