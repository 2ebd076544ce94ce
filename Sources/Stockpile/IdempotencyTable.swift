// A table of names that must be claimed before use: reservation ids (where each reservation lives)
// and idempotency keys (the original reply). A claim is exclusive: while one request holds a name,
// a second request with the same name waits for the first to finish, then sees its result: a
// committed name (replay or CONFLICT) or a free one (the first was refused and left nothing).
// Striped locks keep unrelated names from contending.

import StockpileCore
import Synchronization

final class IdempotencyTable<Value: Sendable>: Sendable {
    enum Claim {
        /// The caller now holds the name and must `commit` or `abandon` it.
        case claimed
        /// The name is in use.
        case existing(Value)
    }

    private enum Entry: Sendable {
        case pending(waiters: [CheckedContinuation<Void, Never>])
        case committed(Value)
    }

    private final class Stripe: Sendable {
        let table = Mutex<[String: Entry]>([:])
        func withLock<R>(_ body: (inout [String: Entry]) -> R) -> R { table.withLock { body(&$0) } }
    }

    private static var stripeCount: Int { 64 }
    private let stripes: [Stripe]

    init() {
        stripes = (0..<Self.stripeCount).map { _ in Stripe() }
    }

    /// The stripe of a name: FNV-1a over its bytes, much cheaper than the table's own SipHash, which
    /// every claim would otherwise pay twice. Only spreads names over locks; the tables inside still
    /// use the standard, seeded hash.
    private func stripe(_ name: String) -> Stripe {
        let h = FNV1a.hash(name)
        return stripes[Int((h ^ (h >> 32)) % UInt64(Self.stripeCount))]
    }

    /// Claims `name`, or returns what it holds. Waits while another request holds it.
    func claim(_ name: String) async -> Claim {
        let stripe = stripe(name)
        while true {
            let result: Claim? = stripe.withLock { table in
                switch table[name] {
                case nil:
                    table[name] = .pending(waiters: [])
                    return .claimed
                case .committed(let v):
                    return .existing(v)
                case .pending:
                    return nil
                }
            }
            if let result { return result }
            await waitWhilePending(name, in: stripe)
        }
    }

    /// What `name` holds, waiting while a claim on it is in flight; nil when it is free.
    func lookup(_ name: String) async -> Value? {
        let stripe = stripe(name)
        while true {
            let result: Value?? = stripe.withLock { table in
                switch table[name] {
                case nil: return .some(nil)
                case .committed(let v): return .some(v)
                case .pending: return nil
                }
            }
            if let result { return result }
            await waitWhilePending(name, in: stripe)
        }
    }

    /// True while a request holds a claim on `name` (committed or free names are not in flight).
    func isInFlight(_ name: String) -> Bool {
        stripe(name).withLock { table in
            if case .pending = table[name] { return true }
            return false
        }
    }

    /// What `name` holds now, without waiting (nil when free or in flight).
    func peek(_ name: String) -> Value? {
        stripe(name).withLock { table in
            if case .committed(let v) = table[name] { return v }
            return nil
        }
    }

    private func waitWhilePending(_ name: String, in stripe: Stripe) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = stripe.withLock { table -> Bool in
                guard case .pending(var waiters) = table[name] else { return true }
                waiters.append(c)
                table[name] = .pending(waiters: waiters)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    /// Settles a claim: the name now holds `value`.
    func commit(_ name: String, _ value: Value) {
        settle(name, to: .committed(value))
    }

    /// Gives a claim up: the name is free again.
    func abandon(_ name: String) {
        settle(name, to: nil)
    }

    /// Sets `name` outright (replay of the log, where no request is waiting).
    func restore(_ name: String, _ value: Value) {
        settle(name, to: .committed(value))
    }

    /// Sets `name` outright and returns what it held (replay of the log, where no request is
    /// waiting): one lookup where a `peek` and a `restore` would take two.
    func replace(_ name: String, _ value: Value) -> Value? {
        stripe(name).withLock { table in
            guard case .committed(let old) = table.updateValue(.committed(value), forKey: name) else { return nil }
            return old
        }
    }

    /// Takes a committed name back into a claim, so it can be forgotten without a request slipping in
    /// between. Returns its value, or nil when it is not committed.
    func reclaim(_ name: String) -> Value? {
        stripe(name).withLock { table in
            guard case .committed(let v) = table[name] else { return nil }
            table[name] = .pending(waiters: [])
            return v
        }
    }

    private func settle(_ name: String, to entry: Entry?) {
        let waiters = stripe(name).withLock { table -> [CheckedContinuation<Void, Never>] in
            var waiters: [CheckedContinuation<Void, Never>] = []
            if case .pending(let w) = table[name] { waiters = w }
            table[name] = entry
            return waiters
        }
        for w in waiters { w.resume() }
    }

    /// Forgets every committed name (RESET); claims in flight settle as usual.
    func removeAllCommitted() {
        for s in stripes {
            s.withLock { table in
                table = table.filter { if case .pending = $0.value { return true } else { return false } }
            }
        }
    }

    /// Every name a request holds a claim on now (what a snapshot waits for before it copies the table).
    func pendingNames() -> [String] {
        var out: [String] = []
        for s in stripes {
            s.withLock { table in
                for (k, e) in table { if case .pending = e { out.append(k) } }
            }
        }
        return out
    }

    /// Every committed name and value (for verification and snapshots).
    func all() -> [(String, Value)] {
        var out: [(String, Value)] = []
        for s in stripes {
            s.withLock { table in
                for (k, e) in table { if case .committed(let v) = e { out.append((k, v)) } }
            }
        }
        return out
    }
}
