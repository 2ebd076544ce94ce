// Batches from many tasks at once: runs of commands on one hot shard, commands that span shards
// (taking shard locks in ascending order), releases of reservations whose homes may be any shard,
// and ids another task made. Nothing may deadlock, nothing may be oversold, and the cells must end
// exactly as the replies imply. Seeded (STOCKPILE_SEED); the seed is printed.

import Stockpile
import Testing

@Suite("Batches under contention")
struct BatchConcurrencyTests {
    @Test("concurrent batches with runs on one shard, cross-shard commands and foreign ids never deadlock or oversell")
    func concurrentBatches() async throws {
        let seed = testSeed(fallback: 20_261_203)
        print("BatchConcurrencyTests seed \(seed) (set STOCKPILE_SEED to repeat)")
        let shardCount = 4
        let engine = Engine(configuration: EngineConfiguration(shardCount: shardCount), clock: ManualClock())
        let router = ShardRouter(count: shardCount)
        // One cell per shard; the first is the hot one every run goes to.
        var cells: [CellKey] = []
        var n = 0
        while cells.count < shardCount, n < 10_000 {
            let key = CellKey(variant: "SKU-\(n)", warehouse: "MAIN")
            if !cells.contains(where: { router.shard(for: $0) == router.shard(for: key) }) { cells.append(key) }
            n += 1
        }
        try #require(cells.count == shardCount, "need a cell in every shard (seed \(seed))")
        for c in cells { _ = await engine.adjust(variant: c.variant, warehouse: c.warehouse, by: 5_000, reason: .received) }

        let taskCount = 12
        let batchesPerTask = 150
        let known = cells
        // Per task: units reserved by successful replies less those released, by cell index.
        let tallies = await withTaskGroup(of: (reserved: [Int64], problems: [String]).self) { group in
            for t in 0..<taskCount {
                group.addTask {
                    var rng = SplitMix64(seed: seed &+ UInt64(t) &* 0x9E37_79B9)
                    var reserved = [Int64](repeating: 0, count: known.count)
                    var problems: [String] = []
                    var made: [(id: String, cells: [Int])] = []
                    var counter = 0
                    for _ in 0..<batchesPerTask {
                        var batch: [Command] = []
                        var plans: [[Int]] = []  // the cells of each reserve, or [] for other commands
                        var releasing: [Int?] = []  // index into `made` of each release
                        for _ in 0..<Int(1 + rng.next() % 24) {
                            let roll = rng.next() % 100
                            counter += 1
                            let id = "t\(t)-\(counter)"
                            if roll < 15, !made.isEmpty {
                                let k = Int(rng.next() % UInt64(made.count))
                                batch.append(.release(id: made[k].id, line: nil, reason: nil, key: nil))
                                plans.append([])
                                releasing.append(k)
                            } else if roll < 30 {
                                // Spans two shards: the hot cell and another.
                                let other = 1 + Int(rng.next() % UInt64(known.count - 1))
                                batch.append(.reserve(ReserveRequest(id: id, lines: [
                                    ReserveLine(variant: known[other].variant, warehouse: "MAIN", quantity: 1),
                                    ReserveLine(variant: known[0].variant, warehouse: "main", quantity: 1),
                                ])))
                                plans.append([other, 0])
                                releasing.append(nil)
                            } else if roll < 35 {
                                // An id another task may have made: a replay, or a conflict whose home
                                // may be any shard (or, when no one made it yet, a new reservation).
                                let other = (t + 1) % taskCount
                                batch.append(.reserve(ReserveRequest(id: "t\(other)-\(1 + rng.next() % UInt64(counter))", lines: [
                                    ReserveLine(variant: known[0].variant, warehouse: "MAIN", quantity: 1),
                                ])))
                                plans.append([0])
                                releasing.append(nil)
                            } else {
                                let c = rng.next() % 4 == 0 ? Int(rng.next() % UInt64(known.count)) : 0
                                batch.append(.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: known[c].variant, warehouse: "MAIN", quantity: 1)])))
                                plans.append([c])
                                releasing.append(nil)
                            }
                        }
                        let outcomes = await engine.execute(batch)
                        var released: Set<Int> = []
                        for (i, outcome) in outcomes.enumerated() {
                            if let k = releasing[i] {
                                guard !released.contains(k) else { continue }  // released twice in one batch
                                if case .ok(let r) = outcome, r.reservationRecord?.replayed == false || r.reservationRecord?.reservation.status == .released {
                                    for c in made[k].cells { reserved[c] -= 1 }
                                    released.insert(k)
                                } else {
                                    problems.append("release of \(made[k].id) answered \(outcome)")
                                }
                            } else if case .ok(let r) = outcome, r.reservationRecord?.replayed == false {
                                for c in plans[i] { reserved[c] += 1 }
                                if case .reserve(let request) = batch[i] { made.append((request.id, plans[i])) }
                            }
                        }
                        for k in released.sorted(by: >) { made.remove(at: k) }
                    }
                    return (reserved, problems)
                }
            }
            var all: [(reserved: [Int64], problems: [String])] = []
            for await r in group { all.append(r) }
            return all
        }
        for (i, cell) in known.enumerated() {
            let expected = tallies.reduce(0) { $0 + $1.reserved[i] }
            let state = try #require(await engine.cell(variant: cell.variant, warehouse: cell.warehouse).value)
            #expect(state.reserved.units == expected, "seed \(seed): \(cell) reserved \(state.reserved) where the replies imply \(expected)")
            #expect(state.reserved <= state.onHand, "seed \(seed): \(cell) oversold")
        }
        let problems = tallies.flatMap(\.problems)
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))")
        #expect(await engine.verify().isEmpty, "seed \(seed)")
    }
}

extension Reply {
    fileprivate var reservationRecord: ReservationRecord? {
        if case .reservation(let r) = self { return r }
        return nil
    }
}
