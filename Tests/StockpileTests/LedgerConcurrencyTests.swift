// The ledger numbered by shards at once: every shard takes its commits' sequence numbers (and log
// positions) in one atomic step and keeps the entries in a ring without a lock common to all. Under
// concurrent writers on every shard the numbers stay gapless and unique, each cell's entries follow
// the order its changes were made in, readers only ever see consecutive runs, and a restart replays
// the same ledger. Seeded (STOCKPILE_SEED); the seed is printed.

import Foundation
import StockpileCore
import Synchronization
import Testing

@testable import Stockpile

@Suite("Ledger under concurrent shards")
struct LedgerConcurrencyTests {
    @Test("concurrent adjusts on every shard: gapless unique numbers, per-cell order, consecutive reads, the same ledger after a restart")
    func concurrentNumbering() async throws {
        let seed = testSeed(fallback: 20_261_204)
        print("LedgerConcurrencyTests seed \(seed) (set STOCKPILE_SEED to repeat)")
        let directory = NSTemporaryDirectory() + "stockpile-ledger-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ring = 64
        let configuration = EngineConfiguration(shardCount: 4, eventsInMemoryCount: ring)
        let engine = try Engine.open(dataDirectory: directory, durability: .interval(.milliseconds(2)), configuration: configuration, clock: ManualClock())
        let cellCount = 12
        let taskCount = 8
        let perTask = 200
        // Each task's receipts: (cell, seq, on_hand after).
        let receipts = await withTaskGroup(of: [(cell: Int, seq: UInt64, onHand: Int64)].self) { group in
            for t in 0..<taskCount {
                group.addTask {
                    var rng = SplitMix64(seed: seed &+ UInt64(t) &* 0x9E37_79B9)
                    var mine: [(cell: Int, seq: UInt64, onHand: Int64)] = []
                    for _ in 0..<perTask {
                        let cell = Int(rng.next() % UInt64(cellCount))
                        guard let r = await engine.adjust(variant: "SKU-\(cell)", warehouse: "MAIN", by: 1, reason: .received).value else { continue }
                        mine.append((cell, r.seq, r.cell.onHand.units))
                    }
                    return mine
                }
            }
            // A reader at the same time: every answer is a consecutive run.
            group.addTask {
                var problems: [(cell: Int, seq: UInt64, onHand: Int64)] = []
                for i in 0..<400 {
                    let next = engine.nextSeq
                    let from = next > UInt64(ring) ? next - UInt64(ring) : 1
                    let events = await engine.events(from: from, limit: ring)
                    // A durable engine answers from `from` on (from the log what memory no longer keeps).
                    if events.first.map({ $0.seq != from }) ?? false || zip(events, events.dropFirst()).contains(where: { $1.seq != $0.seq + 1 }) {
                        problems.append((-1, UInt64(i), 0))
                    }
                    if case .ok(let history) = await engine.history(variant: "SKU-\(i % cellCount)", warehouse: "MAIN"),
                        zip(history, history.dropFirst()).contains(where: { $1.seq >= $0.seq || $1.onHand.units != $0.onHand.units - 1 })
                    {
                        problems.append((-2, UInt64(i), 0))
                    }
                    await Task.yield()
                }
                return problems
            }
            var all: [(cell: Int, seq: UInt64, onHand: Int64)] = []
            for await part in group { all += part }
            return all
        }
        #expect(!receipts.contains { $0.cell == -1 }, "a reader saw a run of events that is not consecutive, or not from where it asked (seed \(seed))")
        #expect(!receipts.contains { $0.cell == -2 }, "a reader saw a cell's history out of order (seed \(seed))")
        let made = receipts.filter { $0.cell >= 0 }
        #expect(made.count == taskCount * perTask)
        // Gapless and unique over all shards.
        #expect(made.map(\.seq).sorted() == Array(1...UInt64(made.count)), "seed \(seed)")
        // Per cell, the numbers follow the order of the changes: on_hand rises with seq.
        for cell in 0..<cellCount {
            let mine = made.filter { $0.cell == cell }.sorted { $0.seq < $1.seq }
            #expect(mine.map(\.onHand) == Array(1...Int64(mine.count)), "cell \(cell) numbered out of its order (seed \(seed))")
        }
        // The oldest from the log's files, the last `ring` from memory: one gapless run.
        let all = await engine.events(from: 1, limit: 10_000)
        #expect(all.map(\.seq) == Array(1...UInt64(made.count)), "seed \(seed)")
        try engine.close()
        // The log has them in the same order: a restart keeps the same entries and numbering.
        let reopened = try Engine.open(dataDirectory: directory, durability: .always, configuration: configuration, clock: ManualClock())
        #expect(reopened.nextSeq == UInt64(made.count + 1))
        #expect(await reopened.events(from: 1, limit: 10_000) == all, "seed \(seed)")
        try reopened.close()
    }

    @Test("the ring never lets an entry kept late replace a newer one in its slot")
    func lateKeep() {
        let ring = EntryRing(capacity: 4)
        let entry = { (seq: UInt64) in LedgerEntry(seq: seq, time: Timestamp(milliseconds: 0), type: .adjust, variant: "SKU", warehouse: "MAIN") }
        ring.keep(entry(9))
        // Entry 5 shares 9's slot: its thread was overtaken by a whole ring's worth of entries.
        ring.keep(entry(5))
        guard case .entry(let kept) = ring.entry(9) else {
            Issue.record("entry 9 was replaced by the older entry 5")
            return
        }
        #expect(kept.seq == 9)
        guard case .overwritten = ring.entry(5) else {
            Issue.record("entry 5 is gone from memory: the slot holds a newer one")
            return
        }
        guard case .notYet = ring.entry(10) else {
            Issue.record("entry 10 is not kept yet")
            return
        }
    }

    @Test("subscribing while every shard's writers run: each subscriber hears every entry from where it came in, in order, none missed", arguments: [false, true])
    func subscribeWhileWriting(durable: Bool) async throws {
        let seed = testSeed(fallback: 20_261_205)
        print("LedgerConcurrencyTests subscribe seed \(seed) (set STOCKPILE_SEED to repeat)")
        let directory = NSTemporaryDirectory() + "stockpile-subscribe-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = EngineConfiguration(shardCount: 4)
        let engine = durable
            ? try Engine.open(dataDirectory: directory, durability: .interval(.milliseconds(2)), configuration: configuration, clock: ManualClock())
            : Engine(configuration: configuration, clock: ManualClock())
        final class Flag: Sendable { let raised = Atomic<Bool>(false) }
        let stop = Flag()
        // Writers on every shard, numbering without the ledger's lock until someone subscribes: plain
        // threads, so that they run beside the subscriber however busy the task pool is.
        let finished = DispatchGroup()
        for t in 0..<3 {
            finished.enter()
            Thread {
                var rng = SplitMix64(seed: seed &+ UInt64(t))
                while !stop.raised.load(ordering: .relaxed) {
                    let command = Command.adjust(variant: "SKU-\(rng.next() % 16)", warehouse: "MAIN", delta: 1, reason: .received)
                    _ = engine.executeWithoutWaiting(command)
                }
                finished.leave()
            }.start()
        }
        var problems: [String] = []
        for round in 0..<20 {
            // Each subscription comes in while appends are under way on the path without the lock.
            try await Task.sleep(for: .milliseconds(2))
            // As `Engine.subscribe` adds one (every shard held), reading there the first seq it is owed.
            let (stream, owed) = engine.holdingShards(engine.allShards) { (engine.ledger.subscribe(backlogLimit: 1_000_000), engine.ledger.nextSeq) }
            var seqs: [UInt64] = []
            for await event in stream {
                guard case .entry(let e) = event else { continue }
                seqs.append(e.seq)
                if seqs.count == 300 { break }
            }
            // The first entry owed is the one numbered next when it subscribed; from there on, none is
            // missing (an append that numbered without the lock after the subscriber came in would be).
            if let first = seqs.first, first != owed { problems.append("round \(round): first event \(first), \(owed) was owed first") }
            if zip(seqs, seqs.dropFirst()).contains(where: { $1 != $0 + 1 }) { problems.append("round \(round): a gap or a disorder in \(seqs.prefix(20))…") }
        }
        stop.raised.store(true, ordering: .relaxed)
        finished.wait()
        #expect(problems.isEmpty, "\(problems.prefix(5)) (seed \(seed))")
        if durable { try engine.close() }
    }
}
