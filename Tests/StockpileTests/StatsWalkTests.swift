// STATS counts distinct variants without a set of names (`Stats(walking:)`): each cell's variant hash
// with the cell's number in its low bits, sorted, names compared only within a run of equal hash
// bits. The count must be exact whatever the hashes share: the tests keep fewer of the hash's bits
// (down to none, one run of every cell) and compare with a set of the names. Many cells are walked on
// a thread of their own; the figures must be the same.

@testable import Stockpile
import StockpileCore
import Testing

private func must<T>(_ outcome: Outcome<T>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    guard case .ok(let value) = outcome else {
        Issue.record("refused: \(outcome)", sourceLocation: sourceLocation)
        throw Refused()
    }
    return value
}

private struct Refused: Error {}

@Suite("STATS walk")
struct StatsWalkTests {
    /// An engine with `rows` loaded, a second warehouse and a variant with a low-stock threshold.
    static func engine(rows: [StockRow]) async throws -> Engine {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 16), clock: ManualClock())
        _ = try must(await engine.setWarehouse(WarehouseChange(code: "EAST")))
        _ = try must(await engine.setPolicy(PolicyChange(variant: "V3", lowStock: 5)))
        _ = try must(await engine.importStock(rows))
        return engine
    }

    /// `count` rows of random variants (each in one or both warehouses), seeded.
    static func rows(count: Int, variants: Int, seed: UInt64) -> [StockRow] {
        var rng = SplitMix64(seed: seed)
        var seen = Set<CellKey>()
        var rows: [StockRow] = []
        while rows.count < count {
            let v = "V\(rng.next() % UInt64(variants))"
            let w = rng.next() % 2 == 0 ? "MAIN" : "EAST"
            guard seen.insert(CellKey(variant: v, warehouse: w)).inserted else { continue }
            rows.append(StockRow(variant: v, warehouse: w, onHand: Quantity(Int64(rng.next() % 10)), line: rows.count + 1))
        }
        return rows
    }

    static func parts(of engine: Engine) -> [ShardStatsPart] {
        engine.shards.map { shard in
            shard.withState { ShardStatsPart(cells: $0.cells, catalog: $0.catalog, activeReservations: $0.reservations.openCount, counters: $0.counters) }
        }
    }

    @Test("distinct variants are counted exactly however many hash bits the runs share", arguments: [UInt64(5), 2026])
    func exactCount(seed: UInt64) async throws {
        let rows = Self.rows(count: 1_500, variants: 1_000, seed: seed)
        let engine = try await Self.engine(rows: rows)
        let expected = Set(rows.map(\.variant)).count
        let lowStock = rows.filter { $0.variant == "V3" && $0.onHand <= 5 }.count
        let parts = Self.parts(of: engine)
        for kept in [64, 12, 3, 1, 0] {
            let s = Stats(walking: parts, keptHashBits: kept)
            #expect(s.variants == expected, "seed \(seed), \(kept) hash bits kept")
            #expect(s.cells == rows.count && s.lowStock == lowStock, "seed \(seed), \(kept) hash bits kept")
            #expect(s.onHand == rows.reduce(Quantity.zero) { $0 + $1.onHand }, "seed \(seed)")
        }
        #expect(await engine.stats().variants == expected, "seed \(seed)")
    }

    @Test("many cells are walked on a thread of their own, to the same figures")
    func offThread() async throws {
        let seed: UInt64 = 77
        let rows = Self.rows(count: Engine.statsWalkOffThreadCellCount + 1_000, variants: 80_000, seed: seed)
        let engine = try await Self.engine(rows: rows)
        let first = rows.first { $0.onHand > 0 }!
        _ = try must(await engine.reserve(ReserveRequest(id: "r1", lines: [ReserveLine(variant: first.variant, warehouse: first.warehouse, quantity: 1)])))
        let s = await engine.stats()
        #expect(s == Stats(walking: Self.parts(of: engine)).with(warehouses: 2, refused: s.refused), "seed \(seed)")
        #expect(s.variants == Set(rows.map(\.variant)).count && s.cells == rows.count && s.activeReservations == 1, "seed \(seed)")
    }
}

extension Stats {
    /// With the figures `Engine.stats` adds to the walk's.
    fileprivate func with(warehouses: Int, refused: [RefusalCode: Int]) -> Stats {
        var s = self
        s.warehouses = warehouses
        s.refused = refused
        return s
    }
}
