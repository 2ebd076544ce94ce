// A new reservation whose lines name cells in several shards is decided holding those shards, each
// cell read once in its own shard and each entry applied where its cell was read
// (`Engine.reserveAcrossShards`); with one shard the same request is decided inside that shard. The
// same requests must give the same answers and leave the same figures and reservations either way:
// cells not seen before (two of them in one shard, too), a cell named twice, warehouses that do not
// exist or are inactive, short stock, backorder and unlimited variants, and releases and shipments in
// between that change the figures.

import Stockpile
import StockpileCore
import Testing

@Suite("Reservations across shards")
struct AcrossShardsTests {
    static let variants = (0..<12).map { "V\($0)" } + ["BACK", "FREE"]
    static let warehouses = ["MAIN", "W1", "W2", "OFF", "NOPE"]

    /// Warehouses (OFF inactive, NOPE never made), a backorder and an unlimited variant, and stock in
    /// half of the cells: the other half are new to the engine when first reserved.
    static func engine(shards: Int) async -> Engine {
        let engine = Engine(configuration: EngineConfiguration(shardCount: shards), clock: ManualClock())
        var setUp: [Command] = [
            .setWarehouse(WarehouseChange(code: "W1", priority: 10)),
            .setWarehouse(WarehouseChange(code: "W2", priority: 20)),
            .setWarehouse(WarehouseChange(code: "OFF", active: false)),
            .setPolicy(PolicyChange(variant: "BACK", backorder: true)),
            .setPolicy(PolicyChange(variant: "FREE", unlimited: true)),
        ]
        for (i, v) in variants.enumerated() {
            for (j, w) in warehouses.prefix(3).enumerated() where (i + j) % 2 == 0 {
                setUp.append(.adjust(variant: v, warehouse: w, delta: Quantity(Int64(5 + i + j)), reason: .received))
            }
        }
        for command in setUp {
            guard case .ok = await engine.execute(command) else { preconditionFailure("set-up refused: \(command)") }
        }
        return engine
    }

    @Test("random reservations of several lines give the same answers and state with 16 shards as with one", arguments: [UInt64(7), 2026, 31_337])
    func sameAsOneShard(seed: UInt64) async {
        let many = await Self.engine(shards: 16)
        let one = await Self.engine(shards: 1)
        let router = ShardRouter(count: 16)
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        var spanning = 0
        let count = 600
        for i in 0..<count {
            var lines: [ReserveLine] = []
            for _ in 0..<(2 + Int(rng.next() % 3)) {
                // Mostly warehouses that take reservations; now and then one that does not.
                let warehouse = rng.next() % 10 == 0 ? pick(Self.warehouses) : pick(Array(Self.warehouses.prefix(3)))
                lines.append(ReserveLine(variant: pick(Self.variants), warehouse: warehouse, quantity: Quantity(Int64(1 + rng.next() % 6))))
            }
            if rng.next() % 10 == 0, let first = lines.first {
                lines.append(ReserveLine(variant: first.variant, warehouse: first.warehouse, quantity: 1))
            }
            if router.mask(of: lines.map { CellKey(variant: $0.variant, warehouse: $0.warehouse) }).nonzeroBitCount > 1 { spanning += 1 }
            let request = ReserveRequest(id: "r\(i)", lines: lines, ttl: rng.next() % 2 == 0 ? .seconds(600) : nil)
            let (a, b) = (await many.execute(.reserve(request)), await one.execute(.reserve(request)))
            #expect(a == b, "seed \(seed), request \(i): \(lines)")
            // Earlier reservations released or shipped, so that later ones meet changed figures.
            if i >= 10 && rng.next() % 4 == 0 {
                let earlier = "r\(i - 1 - Int(rng.next() % 10))"
                let command: Command = rng.next() % 2 == 0 ? .release(id: earlier) : .fulfill(id: earlier)
                let (c, d) = (await many.execute(command), await one.execute(command))
                #expect(c == d, "seed \(seed), \(command)")
            }
        }
        #expect(spanning >= count / 2, "most requests span shards: \(spanning) of \(count)")
        for v in Self.variants {
            for w in Self.warehouses {
                let (a, b) = (await many.cell(variant: v, warehouse: w), await one.cell(variant: v, warehouse: w))
                #expect(a == b, "seed \(seed), cell \(v) \(w)")
            }
        }
        for i in 0..<count {
            let (a, b) = (await many.reservation("r\(i)"), await one.reservation("r\(i)"))
            #expect(a == b, "seed \(seed), reservation r\(i)")
        }
        #expect(await many.verify().isEmpty)
        #expect(await one.verify().isEmpty)
    }
}
