// The id table against a Dictionary as the model: random inserts, updates, removals and reads give
// the same answers; the invariants hold after each burst of steps (removals shift entries back, so
// they are where bugs would hide); a copy taken before writes does not change. Names are long and
// share prefixes, as wire ids do. Seeded (STOCKPILE_SEED); the seed is in every failure message.

import StockpileCore
import Testing

@testable import Stockpile

@Suite("ID table")
struct IDTableTests {
    @Test("random inserts, updates, removals and reads agree with a dictionary")
    func agreesWithDictionary() {
        let seed = testSeed(fallback: 9090)
        var rng = SplitMix64(seed: seed)
        var table = IDTable<Int>()
        var model: [String: Int] = [:]
        var copies: [(IDTable<Int>, [String: Int])] = []
        for step in 0..<40_000 {
            // Few enough names that removals and re-inserts meet the same names often.
            let key = rng.next() % 2 == 0 ? "o:000000\(rng.next() % 1_500):000000000000" : "r\(rng.next() % 1_500)"
            switch rng.next() % 10 {
            case 0..<4:
                let value = Int(rng.next() % 1_000)
                switch rng.next() % 4 {
                case 0:
                    table[key] = value
                    model[key] = value
                case 1:
                    #expect(table.updateValue(value, forKey: key, hash: key.hashValue) == model[key], "seed \(seed) step \(step)")
                    model[key] = value
                case 2:
                    #expect(table.exchange(key, hash: key.hashValue, with: value) == model[key], "seed \(seed) step \(step)")
                    model[key] = value
                default:
                    // Inserted only when absent; what is there stays.
                    #expect(table.value(forKey: key, hash: key.hashValue, insertingIfAbsent: value) == model[key], "seed \(seed) step \(step)")
                    if model[key] == nil { model[key] = value }
                }
            case 4..<7:
                if rng.next() % 2 == 0 {
                    table[key] = nil
                } else {
                    #expect(table.exchange(key, hash: key.hashValue, with: nil) == model[key], "seed \(seed) step \(step)")
                }
                model[key] = nil
            default:
                #expect(table[key] == model[key], "seed \(seed) step \(step): \(key)")
                // A hash comes back as the names kept under it: this one, when it is there.
                #expect(table.keys(withHash: key.hashValue) == (model[key] == nil ? [] : [key]), "seed \(seed) step \(step): \(key)")
            }
            #expect(table.count == model.count, "seed \(seed) step \(step)")
            if step % 1_000 == 0 {
                table.checkInvariants()
                copies.append((table, model))
            }
        }
        table.checkInvariants()
        #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model, "seed \(seed)")
        for (copy, expected) in copies {
            copy.checkInvariants()
            #expect(Dictionary(uniqueKeysWithValues: copy.map { ($0.key, $0.value) }) == expected, "seed \(seed)")
        }
        table.removeAll(where: { $0.value % 2 != 0 })
        table.checkInvariants()
        #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model.filter { $0.value % 2 == 0 }, "seed \(seed)")
    }

    /// A table of the names `name(0..<count)`, then all but `keeping` of them removed in a random
    /// order, each found before it goes, the invariants checked along the way: the table, the names
    /// left, and the index's slot count at the peak.
    private static func emptied(
        count: Int, keeping: Int, seed: UInt64, name: (Int) -> String
    ) -> (table: IDTable<Int>, kept: ArraySlice<String>, peakSlots: Int) {
        var rng = SplitMix64(seed: seed)
        var table = IDTable<Int>()
        var keys = (0..<count).map(name)
        for (i, k) in keys.enumerated() { table[k] = i }
        let peak = table.indexCapacity
        keys.shuffle(using: &rng)
        for (n, k) in keys.dropLast(keeping).enumerated() {
            #expect(table[k] != nil, "seed \(seed): \(k)")
            table[k] = nil
            if n % 499 == 0 { table.checkInvariants() }
        }
        table.checkInvariants()
        return (table, keys.suffix(keeping), peak)
    }

    @Test("removing every entry in random order leaves an empty, usable table")
    func removeEverything() {
        let seed = testSeed(fallback: 77)
        var (table, _, _) = Self.emptied(count: 5_000, keeping: 0, seed: seed) { "id-\($0)" }
        #expect(table.isEmpty)
        table["again"] = 1
        #expect(table["again"] == 1)
    }

    @Test("a table that empties gives its index's room back, and finds what is left")
    func shrinks() {
        let seed = testSeed(fallback: 4242)
        var (table, kept, peak) = Self.emptied(count: 100_000, keeping: 100, seed: seed) { "o:\($0):000000000000" }
        #expect(table.count == 100)
        #expect(table.indexCapacity <= 1_024, "seed \(seed): \(table.indexCapacity) slots left of \(peak)")
        for k in kept { #expect(table[k] != nil, "seed \(seed): \(k)") }
        // And it grows again.
        for i in 0..<10_000 { table["again-\(i)"] = i }
        table.checkInvariants()
        #expect(table.count == 10_100 && table["again-9999"] == 9_999)
    }
}
