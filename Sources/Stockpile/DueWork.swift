// Work the engine owes at a time: expiring holds at their deadline and forgetting closed reservations
// and idempotency keys once the retention window has passed. Items come due in (deadline, kind, name)
// order; they wait in one heap per kind, whose items are then only a deadline and a name (24 bytes
// where one heap of kinded items took 32: each closed reservation leaves two items behind). The
// earliest deadline is mirrored in an atomic so that every operation can ask "is anything due?" with
// one load. Items are never removed early: an item that no longer applies (a hold extended,
// confirmed or released) is recognised and skipped when it comes due.

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
        var name: String

        static func < (a: Waiting, b: Waiting) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.name < b.name
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

        /// The item that comes due first: the least of the heaps' tops in (deadline, kind, name) order.
        var earliest: DueItem? {
            var best: DueItem?
            for kind in DueItem.Kind.allCases {
                guard let top = heaps[kind.rawValue].min else { continue }
                let item = DueItem(deadline: top.deadline, kind: kind, name: top.name)
                if best.map({ item < $0 }) ?? true { best = item }
            }
            return best
        }
        /// True while one task runs the due items; others wait for it rather than run them twice.
        var running = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let nextDeadline = Atomic<Int64>(.max)

    /// True when some item's deadline is at or before `now`.
    func isDue(at now: Timestamp) -> Bool {
        nextDeadline.load(ordering: .acquiring) <= now.milliseconds
    }

    func schedule(_ item: DueItem) {
        state.withLock { s in
            s.heaps[item.kind.rawValue].push(Waiting(deadline: item.deadline, name: item.name))
            // A push lowers the earliest deadline or leaves it: no heap need be looked at.
            let earliest = Swift.min(nextDeadline.load(ordering: .acquiring), item.deadline.milliseconds)
            nextDeadline.store(earliest, ordering: .releasing)
        }
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
        while let item = popDue(at: now) {
            await body(item)
        }
        let waiters = state.withLock { s in
            s.running = false
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    private func popDue(at now: Timestamp) -> DueItem? {
        state.withLock { s in
            guard let top = s.earliest, top.deadline <= now else { return nil }
            _ = s.heaps[top.kind.rawValue].popMin()
            nextDeadline.store(s.earliestDeadline?.milliseconds ?? .max, ordering: .releasing)
            return top
        }
    }
}
