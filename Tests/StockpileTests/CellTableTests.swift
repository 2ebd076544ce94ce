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
        let warehouses = ["MAIN", "EAST", "W-3"]
        for step in 0..<20_000 {
            let key = CellKey(variant: "SKU-\(rng.next() % 3_000)", warehouse: warehouses[Int(rng.next() % 3)])
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
}
