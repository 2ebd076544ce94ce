// A table of names that must be claimed before use: idempotency keys (the original reply). (Reservation
// ids have a directory of their own, `ReservationDirectory`, which keeps no id for a reservation in
// one shard.) A claim is exclusive: while one request holds a name,
// a second request with the same name waits for the first to finish, then sees its result: a
// committed name (replay or CONFLICT) or a free one (the first was refused and left nothing).
// Striped locks keep unrelated names from contending.
//
// A claimed name holds its value type's claim marker (`ClaimableValue`), a value never committed, so
// an entry is the name and a plain value, where an enum of "claimed, with its waiters" or
// "committed" took 8 bytes more for every name kept. The few requests
// that wait for a claim to settle are kept beside the table, by name.

import StockpileCore
import Synchronization

/// A value an `IdempotencyTable` keeps, with one value set aside to mean "claimed, not yet settled":
/// `claimMarker` is never committed.
protocol ClaimableValue: Sendable {
    static var claimMarker: Self { get }
    var isClaimMarker: Bool { get }
}

/// A shard mask (the tests' value) is never 0: a reservation has a line.
extension UInt64: ClaimableValue {
    static var claimMarker: UInt64 { 0 }
    var isClaimMarker: Bool { self == 0 }
}

/// The requests waiting for claims to settle, by the claimed name (only names waited for): kept by
/// each stripe of a table of claims (`IdempotencyTable`, `ReservationDirectory`) under its lock.
struct ClaimWaiters {
    private var byName: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// Suspends the caller until its claim settles: `park`, run under the stripe's lock, either keeps
    /// the continuation (`add`) because the claim is still in flight, or says it settled already.
    static func wait(_ park: (CheckedContinuation<Void, Never>) -> Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if !park(c) { c.resume() }
        }
    }

    mutating func add(_ c: CheckedContinuation<Void, Never>, for name: String) { byName[name, default: []].append(c) }

    /// Takes the requests waiting for `name`: the name is hashed only when someone waits on the stripe.
    mutating func take(_ name: String) -> [CheckedContinuation<Void, Never>] {
        byName.isEmpty ? [] : byName.removeValue(forKey: name) ?? []
    }

    /// How many requests wait for `name` (tests).
    func count(_ name: String) -> Int { byName[name]?.count ?? 0 }
}

final class IdempotencyTable<Value: ClaimableValue>: Sendable {
    enum Claim {
        /// The caller now holds the name and must `commit` or `abandon` it.
        case claimed
        /// The name is in use.
        case existing(Value)
    }

    private struct StripeState {
        var table = IDTable<Value>()
        /// The requests waiting for a claim to settle, by the claimed name (only names waited for).
        var waiters = ClaimWaiters()
    }

    private final class Stripe: Sendable {
        let state = Mutex(StripeState())
        /// Where the table's index lies, published as it moves, for `prefetch`, which takes no lock.
        let hint = IndexHintCell()

        init() { state.withLock { $0.table.hintCell = hint } }

        func withLock<R>(_ body: (inout IDTable<Value>) -> R) -> R { state.withLock { body(&$0.table) } }
    }

    private static var stripeCount: Int { 64 }
    private let stripes: [Stripe]

    init() {
        stripes = (0..<Self.stripeCount).map { _ in Stripe() }
    }

    /// The stripe of a name's hash (`name.hashValue`): bits 26–31, which neither the tag of an
    /// `IDTable` (the high 32 bits) nor its home slot (the top bits) depends on, so the names of one
    /// stripe still spread over its table.
    private func stripe(_ hash: Int) -> Stripe {
        stripes[stripeIndex(hash)]
    }

    private func stripeIndex(_ hash: Int) -> Int {
        Int(truncatingIfNeeded: UInt(bitPattern: hash) >> 26) & (Self.stripeCount - 1)
    }

    /// Claims `name`, or returns what it holds. Waits while another request holds it. `hash` is
    /// `name.hashValue`, computed once by the caller for every table the request looks in.
    func claim(_ name: String, hash: Int) async -> Claim {
        while true {
            if let result = tryClaim(name, hash: hash) { return result }
            await waitWhileClaimed(name, hash: hash)
        }
    }

    func claim(_ name: String) async -> Claim { await claim(name, hash: name.hashValue) }

    /// Claims `name`, or returns what it holds, without waiting: nil, changing nothing, while
    /// another request holds it (then `claim` waits for it).
    func tryClaim(_ name: String, hash: Int) -> Claim? {
        stripe(hash).withLock { table in
            guard let v = table.value(forKey: name, hash: hash, insertingIfAbsent: .claimMarker) else { return .claimed }
            return v.isClaimMarker ? nil : .existing(v)
        }
    }

    /// Asks the processor to bring in where a lookup of a name with `hash` starts (a hint, for a
    /// caller that knows its next names ahead: the replay of the log, a run of new reservations).
    /// Takes no lock.
    func prefetch(hash: Int) {
        stripe(hash).hint.prefetch(hash: UInt(bitPattern: hash))
    }

    /// What `name` holds, waiting while a claim on it is in flight; nil when it is free.
    func lookup(_ name: String, hash: Int) async -> Value? {
        while true {
            if let result = tryLookup(name, hash: hash) { return result }
            await waitWhileClaimed(name, hash: hash)
        }
    }

    func lookup(_ name: String) async -> Value? { await lookup(name, hash: name.hashValue) }

    /// What `name` holds without waiting: `.some(nil)` when it is free, nil while a claim on it is in
    /// flight (then `lookup` waits for it).
    func tryLookup(_ name: String, hash: Int) -> Value?? {
        stripe(hash).withLock { table in
            guard let v = table[name, hash: hash] else { return .some(nil) }
            return v.isClaimMarker ? nil : .some(v)
        }
    }

    /// True while a request holds a claim on `name` (committed or free names are not in flight).
    func isInFlight(_ name: String) -> Bool {
        let hash = name.hashValue
        return stripe(hash).withLock { table in table[name, hash: hash]?.isClaimMarker ?? false }
    }

    /// What `name` holds now, without waiting (nil when free or in flight).
    func peek(_ name: String) -> Value? {
        let hash = name.hashValue
        return stripe(hash).withLock { table in table[name, hash: hash].flatMap { $0.isClaimMarker ? nil : $0 } }
    }

    /// Waits until no request holds a claim on `name` (at once when none does).
    func waitWhileClaimed(_ name: String, hash: Int) async {
        let stripe = self.stripe(hash)
        await ClaimWaiters.wait { c in
            stripe.state.withLock { s in
                guard s.table[name, hash: hash]?.isClaimMarker == true else { return false }
                s.waiters.add(c, for: name)
                return true
            }
        }
    }

    /// How many requests wait for the claim on `name` to settle (tests).
    func waiterCount(_ name: String) -> Int {
        stripe(name.hashValue).state.withLock { $0.waiters.count(name) }
    }

    /// Settles a claim: the name now holds `value` (never the claim marker).
    func commit(_ name: String, hash: Int, _ value: Value) {
        precondition(!value.isClaimMarker, "the claim marker is not a value")
        settle(name, hash: hash, to: value)
    }

    func commit(_ name: String, _ value: Value) { commit(name, hash: name.hashValue, value) }

    /// Gives a claim up: the name is free again.
    func abandon(_ name: String, hash: Int) {
        settle(name, hash: hash, to: nil)
    }

    func abandon(_ name: String) { abandon(name, hash: name.hashValue) }

    /// Sets `name` outright (replay of the log, where no request is waiting).
    func restore(_ name: String, _ value: Value) {
        commit(name, value)
    }

    /// The names kept under `hash` (`name.hashValue`), claimed or committed.
    func names(withHash hash: Int) -> [String] {
        stripe(hash).withLock { $0.keys(withHash: hash) }
    }

    /// Takes a committed name back into a claim, so it can be forgotten without a request slipping in
    /// between. Returns its value, or nil when it is not committed.
    func reclaim(_ name: String) -> Value? {
        let hash = name.hashValue
        return stripe(hash).withLock { table in
            guard let v = table[name, hash: hash], !v.isClaimMarker else { return nil }
            table[name, hash: hash] = .claimMarker
            return v
        }
    }

    /// Settles `name`'s claim to `value` (nil: free) and wakes whoever waited for it.
    private func settle(_ name: String, hash: Int, to value: Value?) {
        let waiters = stripe(hash).state.withLock { s -> [CheckedContinuation<Void, Never>] in
            let old = s.table.exchange(name, hash: hash, with: value)
            return old?.isClaimMarker == true ? s.waiters.take(name) : []
        }
        for w in waiters { w.resume() }
    }

    /// Forgets every committed name (RESET); claims in flight settle as usual.
    func removeAllCommitted() {
        for s in stripes {
            s.withLock { table in
                table.removeAll { !$0.value.isClaimMarker }
            }
        }
    }

    /// Every name a request holds a claim on now (what a snapshot waits for before it copies the table).
    func pendingNames() -> [String] {
        var out: [String] = []
        for s in stripes {
            s.withLock { table in
                for (k, v) in table where v.isClaimMarker { out.append(k) }
            }
        }
        return out
    }

    /// Every committed name and value (for verification and snapshots).
    func all() -> [(String, Value)] {
        var out: [(String, Value)] = []
        for s in stripes {
            s.withLock { table in
                for (k, v) in table where !v.isClaimMarker { out.append((k, v)) }
            }
        }
        return out
    }
}
