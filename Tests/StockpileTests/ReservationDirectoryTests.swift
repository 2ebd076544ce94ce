// The reservation directory on its own, against a model: its slots (hash tags and shards, no ids)
// and the exact table beside them, with shards faked as sets of ids. Tags are made to collide (all but
// a few bits of each hash left out), so that the shards' answers decide nearly every claim and lookup.

import Dispatch
import Foundation
import StockpileCore
import Synchronization
import Testing

@testable import Stockpile

/// Shards as sets of ids, answering the directory's questions as a shard's reservation table would.
final class FakeShards: Sendable {
    let sets: Mutex<[Set<String>]>

    init(count: Int) { sets = Mutex(Array(repeating: [], count: count)) }

    func questions() -> ShardQuestions {
        ShardQuestions(
            keeps: { s, id, _ in self.sets.withLock { $0[s].contains(id) } },
            ids: { s, hash, lowMask in
                let tag = ShardSlots.tag(hash, lowMask: lowMask)
                return self.sets.withLock { $0[s].filter { ShardSlots.tag($0.hashValue, lowMask: lowMask) == tag } }
            })
    }

    func insert(_ id: String, shard: Int) { _ = sets.withLock { $0[shard].insert(id) } }
    func remove(_ id: String, shard: Int) { _ = sets.withLock { $0[shard].remove(id) } }
}

@Suite("Reservation directory")
struct ReservationDirectoryTests {
    /// 3 bits of tag: 8 tags for every id.
    static let collidingLowMask: UInt64 = 0x1FFF_FFFF_FFFF_FFFF

    @Test("slots: random inserts and removals agree with a multiset, with and without colliding tags", arguments: [ShardSlots.shardMask, collidingLowMask])
    func slotsAgreeWithMultiset(lowMask: UInt64) {
        let seed = testSeed(fallback: 31)
        var rng = SplitMix64(seed: seed)
        var slots = ShardSlots(lowMask: lowMask)
        var model: [UInt64: Int] = [:]
        let hashes = (0..<300).map { _ in Int(bitPattern: UInt(rng.next())) }
        for step in 0..<20_000 {
            let hash = hashes[Int(rng.next() % UInt64(hashes.count))]
            let shard = Int(rng.next() % 64)
            let key = slots.slot(hash: hash, shard: shard)
            if rng.next() % 3 != 0 {
                slots.insert(hash: hash, shard: shard)
                model[key, default: 0] += 1
            } else {
                let removed = slots.remove(hash: hash, shard: shard)
                #expect(removed == (model[key, default: 0] > 0), "step \(step) (seed \(seed))")
                if removed { model[key]! -= 1 }
            }
            #expect(slots.count(hash: hash, shard: shard) == model[key, default: 0], "step \(step) (seed \(seed))")
            let expectedShards = model.reduce(UInt64(0)) { mask, e in
                e.value > 0 && e.key & ~lowMask == slots.tag(hash) ? mask | 1 << ((e.key & 0x7F) - 1) : mask
            }
            #expect(slots.shards(hash: hash) == expectedShards, "step \(step) (seed \(seed))")
            if step % 1000 == 999 { slots.checkInvariants() }
        }
        #expect(slots.count == model.values.reduce(0, +))
    }

    @Test("slots that empty give their room back, and every slot left is found")
    func slotsShrink() {
        let seed = testSeed(fallback: 5150)
        var rng = SplitMix64(seed: seed)
        var slots = ShardSlots(lowMask: ShardSlots.shardMask)
        var made = (0..<100_000).map { _ in (hash: Int(bitPattern: UInt(rng.next())), shard: Int(rng.next() % 16)) }
        for m in made { slots.insert(hash: m.hash, shard: m.shard) }
        let peak = slots.slots.count
        made.shuffle(using: &rng)
        for (n, m) in made.dropLast(100).enumerated() {
            let removed = slots.remove(hash: m.hash, shard: m.shard)
            #expect(removed, "seed \(seed): slot \(n) is there")
            if n % 9_973 == 0 { slots.checkInvariants() }
        }
        slots.checkInvariants()
        #expect(slots.count == 100)
        #expect(slots.slots.count <= 1_024, "seed \(seed): \(slots.slots.count) slots left of \(peak)")
        for m in made.suffix(100) { #expect(slots.count(hash: m.hash, shard: m.shard) >= 1, "seed \(seed)") }
    }

    @Test("claims, lookups, forgetting and left-over slots agree with a model of where each id lives")
    func agreesWithModel() {
        let seed = testSeed(fallback: 77)
        var rng = SplitMix64(seed: seed)
        let shardCount = 6
        let shards = FakeShards(count: shardCount)
        let directory = ReservationDirectory(lowMask: Self.collidingLowMask, questions: shards.questions())
        var model: [String: UInt64] = [:]
        let ids = (0..<120).map { "id-\($0)" }
        var (made, existing, forgotten, kept, stale) = (0, 0, 0, 0, 0)
        for step in 0..<6_000 {
            let id = ids[Int(rng.next() % UInt64(ids.count))]
            let hash = id.hashValue
            let where_ = "step \(step), \(id) (seed \(seed))"
            switch rng.next() % 8 {
            case 0, 1, 2:
                // RESERVE: claim; a new id is made in one shard or, now and then, across shards.
                switch directory.tryClaim(id, hash: hash) {
                case .claimed?:
                    #expect(model[id] == nil, "\(where_): claimed an id that lives in \(model[id]!)")
                    let home = Int(rng.next() % UInt64(shardCount))
                    var mask: UInt64 = 1 << UInt64(home)
                    if rng.next() % 5 == 0 { mask |= 1 << UInt64((home + 1 + Int(rng.next() % UInt64(shardCount - 1))) % shardCount) }
                    if rng.next() % 6 == 0 {
                        // Refused: nothing made.
                        directory.abandon(id, hash: hash)
                    } else {
                        shards.insert(id, shard: mask.trailingZeroBitCount)
                        directory.commit(id, hash: hash, mask)
                        model[id] = mask
                        made += 1
                    }
                case .existing(let mask)?:
                    #expect(model[id] == mask, "\(where_): existing in \(mask), model \(String(describing: model[id]))")
                    existing += 1
                case nil:
                    Issue.record("\(where_): nothing is in flight here")
                }
            case 3, 4:
                #expect(directory.tryLookup(id, hash: hash) == .some(model[id]), "\(where_)")
            case 5:
                // Forgetting: reclaimed, removed from its home, dropped; or kept when not due.
                guard let mask = directory.reclaim(id) else {
                    #expect(model[id] == nil, "\(where_): reclaim found nothing, model \(String(describing: model[id]))")
                    continue
                }
                #expect(model[id] == mask, "\(where_)")
                #expect(directory.isInFlight(id), "\(where_)")
                if rng.next() % 3 == 0 {
                    directory.keep(id)
                    kept += 1
                } else {
                    shards.remove(id, shard: mask.trailingZeroBitCount)
                    directory.drop(id)
                    model[id] = nil
                    forgotten += 1
                }
            case 6:
                // A slot left over (a RESET between a reservation's commit and its entry).
                guard model[id] == nil else { continue }
                directory.restore(id, 1 << UInt64(rng.next() % UInt64(shardCount)))
                #expect(directory.peek(id) == nil, "\(where_): a left-over slot names nothing")
                stale += 1
            default:
                #expect(Set(directory.names(withHash: hash)) == (model[id] == nil ? [] : [id]), "\(where_)")
            }
        }
        #expect(made > 300 && existing > 200 && forgotten > 100 && kept > 50 && stale > 50, "made \(made), existing \(existing), forgotten \(forgotten), kept \(kept), left over \(stale) (seed \(seed))")
        // Asking about every id settles every left-over slot: then each slot is one id's.
        for id in ids { #expect(directory.peek(id) == model[id], "\(id) (seed \(seed))") }
        let contents = directory.contents()
        let inOneShard = model.values.filter { $0.nonzeroBitCount == 1 }.count
        #expect(contents.slots.count == inOneShard, "\(contents.slots.count) slots for \(inOneShard) ids in one shard (seed \(seed))")
        #expect(contents.acrossShards.count == model.count - inOneShard)
        #expect(contents.inFlight.isEmpty)
        directory.checkInvariants()
    }

    /// Two ids of one tag in one stripe (`collidingLowMask`), found by trying names.
    static func collidingPair() -> (String, String) {
        let lowMask = collidingLowMask
        var seen: [UInt64: String] = [:]
        for i in 0... {
            let id = "pair-\(i)"
            let h = UInt64(UInt(bitPattern: id.hashValue))
            // The tag (top 3 bits) and the stripe (bits 26–31).
            let key = (h & ~lowMask) | (h >> 26 & 63)
            if let other = seen[key] { return (other, id) }
            seen[key] = id
        }
        fatalError("unreachable")
    }

    @Test("an id being forgotten across a RESET leaves alone the slot of another id of its tag made after it")
    func dropAfterResetKeepsAnotherIdsSlot() {
        let shards = FakeShards(count: 2)
        let directory = ReservationDirectory(lowMask: Self.collidingLowMask, questions: shards.questions())
        let (x, y) = Self.collidingPair()
        #expect(directory.tryClaim(x, hash: x.hashValue).map { if case .claimed = $0 { true } else { false } } == true)
        shards.insert(x, shard: 1)
        directory.commit(x, hash: x.hashValue, 0b10)
        // Forgetting x: taken back, let go by its shard; then a RESET, and y made in the same shard.
        #expect(directory.reclaim(x) == 0b10)
        shards.remove(x, shard: 1)
        directory.removeAllCommitted()
        #expect(directory.tryClaim(y, hash: y.hashValue).map { if case .claimed = $0 { true } else { false } } == true)
        shards.insert(y, shard: 1)
        directory.commit(y, hash: y.hashValue, 0b10)
        directory.drop(x)
        #expect(directory.peek(y) == 0b10, "y keeps its slot")
        #expect(directory.peek(x) == nil)
        #expect(directory.contents().slots.count == 1)
        // A reclaim kept across a RESET does not bring back a reservation across shards either.
        let z = "across"
        _ = directory.tryClaim(z, hash: z.hashValue)
        shards.insert(z, shard: 0)
        directory.commit(z, hash: z.hashValue, 0b11)
        #expect(directory.reclaim(z) == 0b11)
        directory.removeAllCommitted()
        directory.keep(z)
        #expect(directory.peek(z) == nil)
    }

    @Test("two threads claiming the same ids with colliding tags: each id is made once")
    func concurrentClaimsAreExclusive() {
        let shardCount = 4
        let shards = FakeShards(count: shardCount)
        let directory = ReservationDirectory(lowMask: Self.collidingLowMask, questions: shards.questions())
        let ids = (0..<12_000).map { "c-\($0)" }
        let made = Mutex([Int](repeating: 0, count: ids.count))
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            for k in ids.indices {
                let i = thread == 0 ? k : ids.count - 1 - k
                let (id, hash) = (ids[i], ids[i].hashValue)
                while true {
                    switch directory.tryClaim(id, hash: hash) {
                    case .claimed?:
                        let shard = i % shardCount
                        shards.insert(id, shard: shard)
                        made.withLock { $0[i] += 1 }
                        directory.commit(id, hash: hash, 1 << UInt64(shard))
                    case .existing(let mask)?:
                        #expect(mask == 1 << UInt64(i % shardCount))
                    case nil:
                        continue  // in flight on the other thread
                    }
                    break
                }
            }
        }
        let wrong = made.withLock { counts in counts.indices.filter { counts[$0] != 1 } }
        #expect(wrong.isEmpty, "ids made other than once: \(wrong.prefix(5).map { ids[$0] })")
        #expect(directory.contents().slots.count == ids.count)
    }
}

/// The engine with colliding directory tags under concurrency: tasks reserve and release ids from one
/// small pool (each id always with the same request), so claims of one id race each other and ids of
/// one tag race in every stripe. Each id is made once: every other RESERVE of it is a replay.
@Suite("Reservation directory under contention")
struct ReservationDirectoryContentionTests {
    @Test("racing claims of shared ids with colliding tags make each id once and leave the directory exact")
    func racingClaimsMakeEachIdOnce() async {
        let seed = testSeed(fallback: 5150)
        var configuration = EngineConfiguration(shardCount: 8)
        configuration.directoryLowMask = ReservationDirectoryTests.collidingLowMask
        let engine = Engine(configuration: configuration, clock: ManualClock())
        let variants = (0..<16).map { "V\($0)" }
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 1_000_000, reason: .received) }
        let ids = (0..<400).map { "shared-\($0)" }
        func request(_ k: Int) -> ReserveRequest {
            // One line, or (one id in five) two lines, most likely in two shards.
            var lines = [ReserveLine(variant: variants[k % 16], warehouse: "MAIN", quantity: 1)]
            if k % 5 == 0 { lines.append(ReserveLine(variant: variants[(k % 16 + 1 + (k / 16) % 15) % 16], warehouse: "MAIN", quantity: 1)) }
            return ReserveRequest(id: ids[k], lines: lines)
        }
        let made = await withTaskGroup(of: [Int].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var rng = SplitMix64(seed: seed &+ UInt64(t))
                    var madeHere: [Int] = []
                    for i in 0..<3_000 {
                        if i % 4 == 0 { await Task.yield() }
                        let k = Int(rng.next() % UInt64(ids.count))
                        if rng.next() % 4 == 0 {
                            _ = await engine.release(ids[k])
                        } else if case .ok(let r) = await engine.reserve(request(k)), !r.replayed {
                            madeHere.append(k)
                        }
                    }
                    return madeHere
                }
            }
            var all: [Int] = []
            for await m in group { all += m }
            return all
        }
        let counts = Dictionary(grouping: made, by: { $0 }).mapValues(\.count)
        #expect(counts.values.allSatisfy { $0 == 1 }, "ids made twice: \(counts.filter { $0.value > 1 }.keys.sorted().prefix(5)) (seed \(seed))")
        #expect(counts.count > 300, "most ids should be made (seed \(seed))")
        for k in ids.indices {
            let found = await engine.reservation(ids[k]).value != nil
            #expect(found == (counts[k] != nil), "\(ids[k]) (seed \(seed))")
        }
        #expect(await engine.verify().isEmpty, "(seed \(seed))")
        engine.directory.checkInvariants()
    }
}
