// A flash sale under heavy contention: many tasks reserve from one hot cell at once, mixed with
// reservations that span shards (taken in both orders, which would deadlock a naive lock order) and
// with releases. Whatever the interleaving, the engine must end with exactly the reserved total that
// the successful replies imply, never more than on hand, and every invariant intact.

import Foundation
import Stockpile
import Testing

/// The seed of a randomized test: STOCKPILE_SEED when set, otherwise `fallback`.
func testSeed(fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? fallback
}

@Suite("Flash sale under contention")
struct FlashSaleConcurrencyTests {
    struct TaskTally: Sendable {
        var reservedByCell: [CellKey: Int64] = [:]
        var successes = 0
        var refusals = 0
        var releases = 0
        var problems: [String] = []
    }

    @Test("concurrent reserves, cross-shard reserves and releases never oversell and end exactly as the replies imply")
    func flashSale() async throws {
        let seed = testSeed(fallback: 20_261_123)
        print("FlashSaleConcurrencyTests seed \(seed) (set STOCKPILE_SEED to repeat)")
        let engine = Engine(configuration: EngineConfiguration(shardCount: 8), clock: ManualClock())
        let router = ShardRouter(count: 8)
        let hot = CellKey(variant: "SKU-FLASH", warehouse: "MAIN")
        _ = await engine.adjust(variant: hot.variant, warehouse: hot.warehouse, by: 10_000, reason: .received)

        // Companion cells in shards other than the hot cell's, so multi-line reservations span shards.
        var companions: [CellKey] = []
        var n = 0
        while companions.count < 6 {
            let key = CellKey(variant: "SKU-SIDE-\(n)", warehouse: "MAIN")
            n += 1
            if router.shard(for: key) != router.shard(for: hot) && !companions.contains(where: { router.shard(for: $0) == router.shard(for: key) }) {
                companions.append(key)
            }
            if n > 10_000 { break }
        }
        #expect(companions.count >= 3, "need companion cells in other shards (seed \(seed))")
        for c in companions {
            _ = await engine.adjust(variant: c.variant, warehouse: c.warehouse, by: 3_000, reason: .received)
        }

        let side = companions
        let taskCount = 100
        let attemptsPerTask = 2_000
        let tallies = await withTaskGroup(of: TaskTally.self) { group in
            for t in 0..<taskCount {
                group.addTask {
                    var rng = SplitMix64(seed: seed &+ UInt64(t) &* 0x9E37_79B9)
                    var tally = TaskTally()
                    var held: [(id: String, lines: [ReserveLine])] = []
                    for i in 0..<attemptsPerTask {
                        // A request to one shard never suspends; yield now and then so that the
                        // tasks' requests interleave rather than run task after task.
                        if i % 8 == 0 { await Task.yield() }
                        let roll = rng.next() % 100
                        if roll < 10, !held.isEmpty {
                            let k = Int(rng.next() % UInt64(held.count))
                            let (id, lines) = held.remove(at: k)
                            switch await engine.release(id) {
                            case .ok(let r):
                                if r.reservation.status != .released { tally.problems.append("release of \(id) left status \(r.reservation.status)") }
                                tally.releases += 1
                                for l in lines { tally.reservedByCell[CellKey(variant: l.variant, warehouse: l.warehouse), default: 0] -= l.quantity.units }
                            case .refused(let r):
                                tally.problems.append("release of \(id) refused: \(r)")
                            }
                            continue
                        }
                        var lines = [ReserveLine(variant: hot.variant, warehouse: hot.warehouse, quantity: Quantity(Int64(1 + rng.next() % 3)))]
                        if roll < 35 {
                            // Two companions in a random order, plus the hot cell first or last.
                            let a = side[Int(rng.next() % UInt64(side.count))]
                            var b = side[Int(rng.next() % UInt64(side.count))]
                            if b == a { b = side[(side.firstIndex(of: a)! + 1) % side.count] }
                            let extra = [a, b].map { ReserveLine(variant: $0.variant, warehouse: $0.warehouse, quantity: 1) }
                            lines = rng.next() % 2 == 0 ? lines + extra : extra + lines
                        }
                        let id = "t\(t)-\(i)"
                        switch await engine.reserve(ReserveRequest(id: id, lines: lines)) {
                        case .ok(let record):
                            tally.successes += 1
                            if record.replayed { tally.problems.append("fresh id \(id) answered as a replay") }
                            for l in lines { tally.reservedByCell[CellKey(variant: l.variant, warehouse: l.warehouse), default: 0] += l.quantity.units }
                            held.append((id, lines))
                        case .refused(let r):
                            tally.refusals += 1
                            if r.code != .insufficient {
                                tally.problems.append("reserve \(id) refused with \(r.code.name), expected only INSUFFICIENT")
                            } else if let available = r.available, let requested = r.requested, available >= requested {
                                tally.problems.append("reserve \(id) refused although available \(available) ≥ requested \(requested)")
                            }
                        }
                    }
                    return tally
                }
            }
            var all: [TaskTally] = []
            for await tally in group { all.append(tally) }
            return all
        }

        var expected: [CellKey: Int64] = [:]
        var successes = 0
        var refusals = 0
        for tally in tallies {
            expected.merge(tally.reservedByCell, uniquingKeysWith: +)
            successes += tally.successes
            refusals += tally.refusals
            for p in tally.problems { Issue.record("\(p) (seed \(seed))") }
        }
        print("flash sale: \(successes) reservations, \(refusals) refusals, \(tallies.reduce(0) { $0 + $1.releases }) releases")
        #expect(successes + refusals + tallies.reduce(0) { $0 + $1.releases } == taskCount * attemptsPerTask)
        #expect(refusals > 0, "the hot cell should sell out at some point (seed \(seed))")

        for key in [hot] + companions {
            let cell = try #require(await engine.cell(variant: key.variant, warehouse: key.warehouse).value)
            #expect(cell.reserved.units == expected[key, default: 0], "\(key.variant): reserved \(cell.reserved) but replies imply \(expected[key, default: 0]) (seed \(seed))")
            #expect(cell.reserved <= cell.onHand, "\(key.variant) oversold: reserved \(cell.reserved) > on hand \(cell.onHand) (seed \(seed))")
        }
        let problems = await engine.verify()
        #expect(problems.isEmpty, "invariants broken (seed \(seed)): \(problems.prefix(5))")

        // The ledger is gapless and every reservation's entries are adjacent.
        let stats = await engine.stats()
        #expect(stats.activeReservations == successes - tallies.reduce(0) { $0 + $1.releases })
    }
}
