// The shard's flat cell table against a Dictionary as the model: random inserts, updates and reads
// give the same answers, a copy taken before writes (what a snapshot keeps) does not change, and the
// invariants hold after every step. Seeded (STOCKPILE_SEED); the seed is in every failure message.

import StockpileCore
import Testing

@testable import Stockpile

@Suite("Cell table")
struct CellTableTests {
    @Test("random inserts, updates and reads agree with a dictionary; a copy is unaffected by later writes")
    func agreesWithDictionary() {
        let seed = testSeed(fallback: 4242)
        var rng = SplitMix64(seed: seed)
        var table = CellTable()
        var model: [CellKey: CellSlot] = [:]
        var copies: [(CellTable, [CellKey: CellSlot])] = []
        // More codes than the table looks through one by one, some longer than a small string.
        let warehouses = ["MAIN", "EAST", "W-3"] + (1...9).map { "WAREHOUSE-NUMBER-\($0)" }
        // Names of every length the table keeps apart: up to 15 bytes (a small string), 16 to 24
        // (kept in the entry, not in a small string), and more (kept as a string).
        let prefixes = ["S-", "SKU-0000000000-", "SKU-00000000000000000-", "VARIANT-WITH-A-LONG-NAME-"]
        for step in 0..<20_000 {
            let n = rng.next() % 3_000
            let variant = prefixes[Int(n % 4)] + String(n)
            let key = CellKey(variant: variant, warehouse: warehouses[Int(rng.next() % UInt64(n % 7 == 0 ? warehouses.count : 3))])
            switch rng.next() % 10 {
            case 0..<4:
                let slot = CellSlot(state: CellState(onHand: Quantity(Int64(rng.next() % 100)), reserved: .zero), belowZeroAllowed: rng.next() % 2 == 0)
                table[key] = slot
                model[key] = slot
            case 4..<7:
                let add = Quantity(Int64(rng.next() % 5))
                table[key, default: CellSlot(state: .empty)].state.onHand += add
                model[key, default: CellSlot(state: .empty)].state.onHand += add
            case 7:
                if copies.count < 8 { copies.append((table, model)) }
            default:
                #expect(table[key]?.state == model[key]?.state, "seed \(seed) step \(step)")
            }
            if step % 2_000 == 0 { table.checkInvariants() }
        }
        table.checkInvariants()
        #expect(table.count == model.count, "seed \(seed)")
        let listed = Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value.state) })
        #expect(listed == model.mapValues(\.state), "seed \(seed)")
        for (copy, then) in copies {
            copy.checkInvariants()
            #expect(Dictionary(uniqueKeysWithValues: copy.map { ($0.key, $0.value.state) }) == then.mapValues(\.state), "seed \(seed)")
        }
        table.removeAll()
        #expect(table.count == 0 && table[CellKey(variant: "SKU-1", warehouse: "MAIN")] == nil)
        table.reserveCapacity(10_000)
        table[CellKey(variant: "A", warehouse: "MAIN")] = CellSlot(state: .empty)
        table.checkInvariants()
        #expect(table.count == 1)
    }

    @Test("a variant is found by its bytes at every length around the 24 kept in the entry")
    func variantLengths() {
        var table = CellTable()
        let names = (1...40).map { String(repeating: "A", count: $0) } + (1...40).map { String(repeating: "A", count: $0 - 1) + "B" }
        for (i, name) in names.enumerated() {
            table[CellKey(variant: name, warehouse: "MAIN")] = CellSlot(state: CellState(onHand: Quantity(Int64(i)), reserved: .zero))
        }
        table.checkInvariants()
        #expect(table.count == names.count)
        for (i, name) in names.enumerated() {
            #expect(table[CellKey(variant: name, warehouse: "MAIN")]?.state.onHand == Quantity(Int64(i)), "\(name)")
            #expect(table[CellKey(variant: name, warehouse: "EAST")] == nil, "\(name)")
            #expect(table.key(at: i) == CellKey(variant: name, warehouse: "MAIN"))
        }
        #expect(table[CellKey(variant: String(repeating: "A", count: 41), warehouse: "MAIN")] == nil)
        // A name the checks at the edge refuse (a zero byte) is still kept apart from its prefix.
        table[CellKey(variant: "A\u{0}", warehouse: "MAIN")] = CellSlot(state: CellState(onHand: Quantity(99), reserved: .zero))
        #expect(table.count == names.count + 1)
        #expect(table[CellKey(variant: "A", warehouse: "MAIN")]?.state.onHand == .zero)
        #expect(table[CellKey(variant: "A\u{0}", warehouse: "MAIN")]?.state.onHand == Quantity(99))
        table.checkInvariants()
    }
}
