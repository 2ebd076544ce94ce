// The engine's due work against a sorted list as the model: random items of every kind, with
// deadlines that often tie, come due in (deadline, kind, name) order, only once due, each once; the
// earliest deadline the engine reads with one load is always the model's. Items keep their names'
// hashes, turned back into names when they come due. Seeded (STOCKPILE_SEED).

import StockpileCore
import Testing

@testable import Stockpile

@Suite("Due work")
struct DueWorkTests {
    @Test("items of every kind come due in (deadline, kind, name) order, only when due, each once")
    func dueInOrder() async {
        let seed = testSeed(fallback: 4242)
        var rng = SplitMix64(seed: seed)
        // An item keeps its name's hash; the names it is turned back into are these.
        let names = Dictionary(grouping: (0..<30).map { "n-\($0)" }, by: \.hashValue)
        let work = DueWork { _, hash in names[hash] ?? [] }
        var model: [DueItem] = []
        var now: Int64 = 0
        for round in 0..<50 {
            for _ in 0..<Int(rng.next() % 40) {
                let kind = DueItem.Kind.allCases[Int(rng.next() % 3)]
                let item = DueItem(deadline: Timestamp(milliseconds: now + Int64(rng.next() % 20)), kind: kind, name: "n-\(rng.next() % 30)")
                work.schedule(item)
                model.append(item)
            }
            #expect(work.earliest == model.min()?.deadline, "seed \(seed) round \(round)")
            now += Int64(rng.next() % 15)
            let at = Timestamp(milliseconds: now)
            var ran: [DueItem] = []
            await work.run(at: at) { ran.append($0) }
            let due = model.filter { $0.deadline <= at }.sorted()
            model.removeAll { $0.deadline <= at }
            #expect(ran == due, "seed \(seed) round \(round)")
            #expect(work.isDue(at: at) == false, "seed \(seed) round \(round)")
            #expect(work.earliest == model.min()?.deadline, "seed \(seed) round \(round)")
        }
    }

    @Test("an item runs for the names kept under its hash when it comes due: none, or each in name order")
    func resolvedNames() async {
        // Hash 1 stands for two names, hash 2 for none (forgotten meanwhile).
        let work = DueWork { kind, hash in kind == .expire && hash == 1 ? ["b", "a"] : [] }
        work.schedule(DueItem(deadline: Timestamp(milliseconds: 5), kind: .expire, name: "a", hash: 1))
        work.schedule(DueItem(deadline: Timestamp(milliseconds: 5), kind: .expire, name: "gone", hash: 2))
        work.schedule(DueItem(deadline: Timestamp(milliseconds: 6), kind: .forgetKey, name: "k", hash: 1))
        var ran: [String] = []
        await work.run(at: Timestamp(milliseconds: 10)) { ran.append("\($0.kind) \($0.name)") }
        #expect(ran == ["expire a", "expire b"])
        #expect(work.earliest == nil)
    }

    @Test("while due items run, work stays due, so that other operations wait for them")
    func dueUntilRun() async {
        let work = DueWork { _, hash in ["n\(hash)"] }
        for h in 1...3 { work.schedule(DueItem(deadline: Timestamp(milliseconds: 5), kind: .expire, name: "n\(h)", hash: h)) }
        work.schedule(DueItem(deadline: Timestamp(milliseconds: 7), kind: .forgetKey, name: "k", hash: 9))
        work.schedule(DueItem(deadline: Timestamp(milliseconds: 50), kind: .expire, name: "later", hash: 10))
        var seen: [Bool] = []
        await work.run(at: Timestamp(milliseconds: 10)) { _ in seen.append(work.isDue(at: Timestamp(milliseconds: 10))) }
        #expect(seen == [true, true, true, true])
        #expect(!work.isDue(at: Timestamp(milliseconds: 10)) && work.earliest == Timestamp(milliseconds: 50))
    }
}
