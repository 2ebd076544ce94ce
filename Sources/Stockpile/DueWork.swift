// Work the engine owes at a time: expiring holds at their deadline and forgetting closed reservations
// and idempotency keys once the retention window has passed. Items come due in (deadline, kind, name)
// order; they wait in one heap per kind, whose items are then only a deadline and the name's hash
// (16 bytes, where a deadline and the name took 24 and one heap of kinded items 32: each open
// reservation with a TTL leaves one item behind, each closed one one, each KEY one: a reservation
// that closes before its first deadline is forgotten through its expiry item, see
// `Engine.expiryThatForgets`). When items come
// due, each hash is turned back into the names the engine keeps under it (`resolve`: the directory's
// ids, or the KEYs), the names of one deadline and kind are sorted, and each is run. A hash the
// engine keeps no name under any more has nothing left to do. Two names under one hash (SipHash,
// 64 bits) are both run for the item of either: running an item is idempotent and checks that its
// name is due, so the other name's run changes nothing that was not due. The earliest deadline is
// mirrored in an atomic so that every operation can ask "is anything due?" with one load. Items are
// never removed early: an item that no longer applies (a hold extended, confirmed or released) is
// recognised and skipped when it comes due.

import StockpileCore
import Synchronization

struct DueItem: Comparable, Sendable {
    enum Kind: Int, Sendable, CaseIterable {
        case expire = 0
        case forgetReservation = 1
        case forgetKey = 2
    }

    var deadline: Timestamp
    var kind: Kind
    var name: String
    /// `name.hashValue`: the caller's, when it has it.
    var hash: Int

    init(deadline: Timestamp, kind: Kind, name: String, hash: Int? = nil) {
        self.deadline = deadline
        self.kind = kind
        self.name = name
        self.hash = hash ?? name.hashValue
    }

    static func == (a: DueItem, b: DueItem) -> Bool { a.deadline == b.deadline && a.kind == b.kind && a.name == b.name }

    static func < (a: DueItem, b: DueItem) -> Bool {
        if a.deadline != b.deadline { return a.deadline < b.deadline }
        if a.kind != b.kind { return a.kind.rawValue < b.kind.rawValue }
        return a.name < b.name
    }
}

final class DueWork: Sendable {
    /// An item as its kind's heap keeps it.
    private struct Waiting: Comparable {
        var deadline: Timestamp
        var hash: Int

        static func < (a: Waiting, b: Waiting) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.hash < b.hash
        }
    }

    private struct State {
        /// One heap per kind, by `DueItem.Kind.rawValue`.
        var heaps = [BinaryHeap<Waiting>](repeating: BinaryHeap(), count: DueItem.Kind.allCases.count)

        /// The earliest deadline of any kind.
        var earliestDeadline: Timestamp? {
            var earliest: Timestamp?
            for i in heaps.indices {
                if let top = heaps[i].min, earliest.map({ top.deadline < $0 }) ?? true { earliest = top.deadline }
            }
            return earliest
        }

        /// The kind and deadline that come due first: the least of the heaps' tops in (deadline, kind)
        /// order.
        var earliest: (deadline: Timestamp, kind: DueItem.Kind)? {
            var best: (deadline: Timestamp, kind: DueItem.Kind)?
            for kind in DueItem.Kind.allCases {
                guard let top = heaps[kind.rawValue].min else { continue }
                if best.map({ top.deadline < $0.deadline }) ?? true { best = (top.deadline, kind) }
            }
            return best
        }
        /// True while one task runs the due items; others wait for it rather than run them twice.
        var running = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let nextDeadline = Atomic<Int64>(.max)
    /// The latest deadline whose items have been taken to run: set before they run, never lowered.
    private let takenThrough = Atomic<Int64>(.min)
    /// The names kept under a hash, for an item of a kind: what the items' hashes are turned back into.
    private let resolve: @Sendable (DueItem.Kind, Int) -> [String]

    init(resolve: @escaping @Sendable (DueItem.Kind, Int) -> [String]) {
        self.resolve = resolve
    }

    /// True when some item's deadline is at or before `now`.
    func isDue(at now: Timestamp) -> Bool {
        nextDeadline.load(ordering: .acquiring) <= now.milliseconds
    }

    func schedule(_ item: DueItem) {
        state.withLock { s in
            s.heaps[item.kind.rawValue].push(Waiting(deadline: item.deadline, hash: item.hash))
            // A push lowers the earliest deadline or leaves it: no heap need be looked at.
            let earliest = Swift.min(nextDeadline.load(ordering: .acquiring), item.deadline.milliseconds)
            nextDeadline.store(earliest, ordering: .releasing)
        }
    }

    /// How many items of `kind` wait (tests).
    func count(of kind: DueItem.Kind) -> Int { state.withLock { $0.heaps[kind.rawValue].count } }

    /// Whether the items due at `deadline` have been taken to run (they may still be running): an item
    /// scheduled for `deadline` from now on would still run, but one that was there ran already or
    /// runs now.
    func hasTaken(through deadline: Timestamp) -> Bool {
        takenThrough.load(ordering: .sequentiallyConsistent) >= deadline.milliseconds
    }

    /// The earliest deadline, if any.
    var earliest: Timestamp? {
        let d = nextDeadline.load(ordering: .acquiring)
        return d == .max ? nil : Timestamp(milliseconds: d)
    }

    /// Runs every item due at `now` with `body`, in order, one at a time. If another task is already
    /// running due items, waits for it to finish and then runs whatever is still due.
    func run(at now: Timestamp, _ body: (DueItem) async -> Void) async {
        while true {
            let mustWait = state.withLock { s -> Bool in
                if s.running { return true }
                s.running = true
                return false
            }
            if !mustWait { break }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    guard s.running else { return true }
                    s.waiters.append(c)
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
        while let (deadline, kind, hashes) = popDue(at: now) {
            // The names of this deadline and kind, in order; a name two items name runs twice, as
            // its two items would (and the second finds nothing left to do).
            var names: [String] = []
            for hash in hashes { names.append(contentsOf: resolve(kind, hash)) }
            names.sort()
            for name in names { await body(DueItem(deadline: deadline, kind: kind, name: name)) }
        }
        let waiters = state.withLock { s in
            s.running = false
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    /// Takes every item of the earliest deadline and kind, when that deadline has come. The earliest
    /// deadline `isDue` reads moves on only once nothing more is due (nil), so that while the items
    /// taken still run, every operation that asks finds work due and waits for this run to finish
    /// rather than going ahead of an expiry.
    private func popDue(at now: Timestamp) -> (Timestamp, DueItem.Kind, [Int])? {
        state.withLock { s in
            guard let (deadline, kind) = s.earliest, deadline <= now else {
                nextDeadline.store(s.earliestDeadline?.milliseconds ?? .max, ordering: .releasing)
                return nil
            }
            // Marked before any of them runs: a change that reads the mark after it is applied either
            // sees it or is seen by the items (`Engine.scheduleFollowUps`).
            if deadline.milliseconds > takenThrough.load(ordering: .relaxed) {
                takenThrough.store(deadline.milliseconds, ordering: .sequentiallyConsistent)
            }
            var hashes: [Int] = []
            while let top = s.heaps[kind.rawValue].min, top.deadline == deadline {
                hashes.append(top.hash)
                _ = s.heaps[kind.rawValue].popMin()
            }
            return (deadline, kind, hashes)
        }
    }
}
