// Where each reservation lives (SPEC §2: a reservation id names one reservation), and the claims that
// make a new id exclusive. A reservation whose lines are all in one shard (nearly all are) is kept as
// one 8-byte slot of an open-addressing index: its id's hash with the low 7 bits replaced by its
// shard + 1, and no id: the shard keeps the id, in its reservation's own entry, and is asked whether
// it keeps it when a slot's tag matches. A tag is 57 bits of SipHash, so two ids share one only by
// chance; when they do, the slot of each is a candidate for both, and the shard's answer tells them
// apart. (The directory kept each id beside its shard mask, 24 bytes and an index slot, for every
// reservation the engine keeps: about 40 of the 155–170 bytes of a one-line reservation.)
//
// Beside the slots, each stripe keeps by id what is rare or short-lived: the claims in flight (new ids
// being decided) and the entries taken back to be forgotten (`reclaim`), in a short list; and the
// masks of reservations across shards, in a table. An entry taken back notes the stripe's count of
// RESETs: one since has emptied the slots, so its own is gone and one of its tag is another id's.
//
// What holds true:
// - every reservation kept in one shard has a slot of its hash's tag and its shard (a slot may be left
//   over: a RESET between a reservation's commit and its entry, or a reservation made again during a
//   replay, whose old slot replay cannot tell from another id's); a left-over slot costs a question to
//   the shard, and is removed when a question finds its shard keeps fewer ids of that tag than the
//   directory has slots for (`reconcile`);
// - a claim is exclusive: a new id is claimed only once the shard of every candidate slot said it
//   does not keep the id, and nothing was committed on the stripe since the question was asked
//   (`version`); the shards are asked with no stripe lock held, so a stripe lock is never held while
//   a shard's is taken (`verify` holds every shard, then reads the stripes).

import StockpileCore
import Synchronization

/// The slots of the reservations kept in one shard: 8 bytes each, 0 for empty, or the hash's tag (its
/// bits outside `lowMask`) with the shard + 1 in the low 7 bits; linear probing from the home slot
/// (the top bits of the tag), backward-shift deletion, at most 3/4 full. Two reservations of one tag
/// in one shard have two equal slots.
struct ShardSlots: Sendable {
    private(set) var slots: [UInt64] = []
    /// 64 − log2(slot count): a slot's home is `slot >> shift`.
    private var shift: UInt64 = 64
    private(set) var count = 0
    /// The bits of a hash that are not its tag; the low 7 hold the shard. Tests widen it to make tags
    /// collide.
    let lowMask: UInt64

    static var shardMask: UInt64 { 0x7F }

    init(lowMask: UInt64 = ShardSlots.shardMask) {
        precondition(lowMask & Self.shardMask == Self.shardMask && lowMask != .max, "the low 7 bits hold the shard")
        self.lowMask = lowMask
    }

    /// The tag of `hash`: its bits outside `lowMask`.
    @inline(__always) static func tag(_ hash: Int, lowMask: UInt64) -> UInt64 { UInt64(UInt(bitPattern: hash)) & ~lowMask }
    /// The slot of a reservation of `hash` in `shard`.
    @inline(__always) static func slot(hash: Int, shard: Int, lowMask: UInt64) -> UInt64 { tag(hash, lowMask: lowMask) | UInt64(shard &+ 1) }
    /// The shard a slot names.
    @inline(__always) static func shard(ofSlot slot: UInt64) -> Int { Int(slot & shardMask) &- 1 }

    @inline(__always) func tag(_ hash: Int) -> UInt64 { Self.tag(hash, lowMask: lowMask) }
    @inline(__always) func slot(hash: Int, shard: Int) -> UInt64 { Self.slot(hash: hash, shard: shard, lowMask: lowMask) }
    @inline(__always) private var mask: Int { slots.count &- 1 }
    @inline(__always) private func home(_ value: UInt64) -> Int { Int(truncatingIfNeeded: value >> shift) }

    /// The shards of the slots whose tag is `hash`'s, as a mask.
    func shards(hash: Int) -> UInt64 {
        guard !slots.isEmpty else { return 0 }
        let tag = self.tag(hash)
        var found: UInt64 = 0
        var i = home(tag)
        while true {
            let v = slots[i]
            if v == 0 { return found }
            if v & ~lowMask == tag { found |= 1 << UInt64(Self.shard(ofSlot: v)) }
            i = (i &+ 1) & mask
        }
    }

    /// How many slots hold `hash`'s tag and `shard`.
    func count(hash: Int, shard: Int) -> Int {
        guard !slots.isEmpty else { return 0 }
        let value = slot(hash: hash, shard: shard)
        var n = 0
        var i = home(value)
        while slots[i] != 0 {
            if slots[i] == value { n += 1 }
            i = (i &+ 1) & mask
        }
        return n
    }

    mutating func insert(hash: Int, shard: Int) {
        if (count &+ 1) &* 4 > slots.count &* 3 { resize(to: Swift.max(16, slots.count &* 2)) }
        place(slot(hash: hash, shard: shard))
        count &+= 1
    }

    /// Removes one slot of `hash`'s tag and `shard`; false when there is none.
    @discardableResult
    mutating func remove(hash: Int, shard: Int) -> Bool {
        guard !slots.isEmpty else { return false }
        let value = slot(hash: hash, shard: shard)
        var i = home(value)
        while slots[i] != value {
            if slots[i] == 0 { return false }
            i = (i &+ 1) & mask
        }
        // The slots after it on its run move back into the gap where their probe path allows, so
        // every probe still ends at the first empty slot.
        var hole = i
        i = (i &+ 1) & mask
        while slots[i] != 0 {
            let h = home(slots[i])
            if (hole &- h) & mask < (i &- h) & mask {
                slots[hole] = slots[i]
                hole = i
            }
            i = (i &+ 1) & mask
        }
        slots[hole] = 0
        count &-= 1
        // Room given back as the slots empty (`SlotRoom`).
        if let capacity = SlotRoom.shrunk(count: count, slotCount: slots.count) { resize(to: capacity) }
        return true
    }

    mutating func removeAll() {
        slots = []
        shift = 64
        count = 0
    }

    mutating func reserveCapacity(_ n: Int) {
        var capacity = Swift.max(16, slots.count)
        while n &* 4 > capacity &* 3 { capacity &*= 2 }
        if capacity > slots.count { resize(to: capacity) }
    }

    /// Every occupied slot (verification).
    var occupied: [UInt64] { slots.filter { $0 != 0 } }

    @inline(__always) private mutating func place(_ value: UInt64) {
        let mask = self.mask
        var i = home(value)
        while slots[i] != 0 { i = (i &+ 1) & mask }
        slots[i] = value
    }

    private mutating func resize(to capacity: Int) {
        let old = slots
        slots = Array(repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        // An index loop: a debug build's iterator over the old slots allocated at each step.
        var j = 0
        while j < old.count {
            if old[j] != 0 { place(old[j]) }
            j &+= 1
        }
    }

    #if DEBUG
    /// Every slot is found from its home (tests).
    func checkInvariants() {
        precondition(slots.lazy.filter { $0 != 0 }.count == count, "count is the occupied slots")
        precondition(slots.isEmpty || count * 4 <= slots.count * 3, "at most 3/4 full")
        for (j, v) in slots.enumerated() where v != 0 {
            var i = home(v)
            while i != j {
                precondition(slots[i] != 0, "slot \(j) is reached from its home")
                i = (i + 1) & mask
            }
        }
    }
    #endif
}

/// What the directory asks of the shards, each call taking the shard's lock.
struct ShardQuestions: Sendable {
    /// Whether the shard keeps reservation `id` (hash `hash`).
    let keeps: @Sendable (_ shard: Int, _ id: String, _ hash: Int) -> Bool
    /// The ids the shard keeps whose hash's bits outside `lowMask` are `hash`'s.
    let ids: @Sendable (_ shard: Int, _ hash: Int, _ lowMask: UInt64) -> [String]
}

final class ReservationDirectory: Sendable {
    typealias Claim = IdempotencyTable<UInt64>.Claim

    /// An id the exact table keeps.
    private enum Exact: Sendable {
        /// A request holds the claim on a new id.
        case claimed
        /// Taken back to be forgotten (`reclaim`): the shards of its lines, and the stripe's count of
        /// RESETs then (a RESET since has removed its slot, and perhaps its reservation).
        case reclaimed(UInt64, resets: UInt64)
        /// A reservation across shards: the shards of its lines.
        case committed(UInt64)

        var isInFlight: Bool {
            if case .committed = self { return false }
            return true
        }
    }

    /// A stripe's exact entries: the ids in flight (a few at a time: the claims of the requests being
    /// decided, and the ids being forgotten) in a short list, scanned by hash, which fills and empties
    /// with no allocation; and the reservations across shards in a table by id. An id is in one or
    /// the other, never both.
    private struct ExactEntries {
        var inFlight: [(hash: Int, id: String, entry: Exact)] = []
        var across = IDTable<UInt64>()

        @inline(__always) private func inFlightIndex(_ id: String, hash: Int) -> Int? {
            for i in inFlight.indices where inFlight[i].hash == hash && inFlight[i].id == id { return i }
            return nil
        }

        /// The entry of `id`, in flight or across shards.
        func entry(_ id: String, hash: Int) -> Exact? {
            if let i = inFlightIndex(id, hash: hash) { return inFlight[i].entry }
            if !across.isEmpty, let m = across[id, hash: hash] { return .committed(m) }
            return nil
        }

        /// Puts `id`, which has no entry, in flight.
        mutating func addInFlight(_ id: String, hash: Int, _ entry: Exact) {
            inFlight.append((hash, id, entry))
        }

        /// Takes `id`'s entry in flight out and returns it (nil, changing nothing, when it has none).
        mutating func takeInFlight(_ id: String, hash: Int) -> Exact? {
            guard let i = inFlightIndex(id, hash: hash) else { return nil }
            inFlight.swapAt(i, inFlight.count - 1)
            return inFlight.removeLast().entry
        }

        func keys(withHash hash: Int) -> [String] {
            across.keys(withHash: hash) + inFlight.lazy.filter { $0.hash == hash }.map(\.id)
        }

        /// Every entry: those in flight, then those across shards.
        var all: [(id: String, entry: Exact)] {
            inFlight.map { ($0.id, $0.entry) } + across.map { ($0.key, Exact.committed($0.value)) }
        }
    }

    private struct StripeState {
        var exact = ExactEntries()
        var slots: ShardSlots
        /// The requests waiting for an id in flight to settle, by id (only ids waited for).
        var waiters = ClaimWaiters()
        /// Moves on each time a slot is added: a claim that asked the shards outside the lock goes
        /// ahead only if nothing was committed on the stripe meanwhile.
        var version: UInt64 = 0
        /// How many RESETs emptied the stripe: an id reclaimed before one has no slot after it.
        var resets: UInt64 = 0

        /// Sets `id` to live in the shards of `mask`: a slot for one shard (its hash alone records it,
        /// and `id` is not asked for), an exact entry for several.
        mutating func set(_ id: @autoclosure () -> String, hash: Int, _ mask: UInt64) {
            if mask.nonzeroBitCount == 1 {
                slots.insert(hash: hash, shard: mask.trailingZeroBitCount)
            } else {
                exact.across[id(), hash: hash] = mask
            }
            version &+= 1
        }
    }

    private final class Stripe: Sendable {
        let state: Mutex<StripeState>
        /// Where the slots lie, published as they move, for `prefetch`, which takes no lock.
        let hint = IndexHintCell()
        /// Where the index of the reservations across shards lies (published by its table).
        let acrossHint = IndexHintCell()

        init(lowMask: UInt64) {
            var s = StripeState(slots: ShardSlots(lowMask: lowMask))
            s.exact.across.hintCell = acrossHint
            state = Mutex(s)
        }
    }

    private static var stripeCount: Int { 64 }
    private let stripes: [Stripe]
    /// `stripes`, which keeps them, as references called through without a retain (`withStripe`, on
    /// every request's path; the rarer paths take `stripe(_:)`).
    private let stripeRefs: [Unmanaged<Stripe>]
    private let questions: ShardQuestions
    let lowMask: UInt64

    /// `lowMask`: the bits of a hash its tag leaves out (the default but in tests, which widen it so
    /// that tags collide).
    init(lowMask: UInt64 = ShardSlots.shardMask, questions: ShardQuestions) {
        self.lowMask = lowMask
        self.questions = questions
        stripes = (0..<Self.stripeCount).map { _ in Stripe(lowMask: lowMask) }
        stripeRefs = stripes.map { Unmanaged.passUnretained($0) }
    }

    /// The stripe of an id's hash: bits 26–31, which neither a slot's home (the top bits) nor the
    /// index of the shard's table depends on.
    private func stripe(_ hash: Int) -> Stripe { stripes[stripeIndex(hash)] }

    /// Runs `body` with the stripe of `hash`, not retained (the directory keeps its stripes for its
    /// life): on every request's path, where a retain and release wrote the stripe's header, a line
    /// the other cores' requests write too.
    @inline(__always) private func withStripe<R>(_ hash: Int, _ body: (Stripe) -> R) -> R {
        stripeRefs[stripeIndex(hash)]._withUnsafeGuaranteedRef(body)
    }

    private func stripeIndex(_ hash: Int) -> Int {
        Int(truncatingIfNeeded: UInt(bitPattern: hash) >> 26) & (Self.stripeCount - 1)
    }

    /// Publishes where the stripe's slots lie after a change that may have moved them.
    @inline(__always) private func published(_ stripe: Stripe, _ s: borrowing StripeState) {
        stripe.hint.publishIfMoved(s.slots.slots)
    }

    /// Asks the processor to bring in the slot where a lookup of `hash` starts, and the slot of the
    /// index of reservations across shards, which a claim reads first (nothing while it has none).
    /// Takes no lock.
    func prefetch(hash: Int) {
        withStripe(hash) { stripe in
            stripe.hint.prefetch(hash: UInt(bitPattern: hash))
            stripe.acrossHint.prefetch(hash: UInt(bitPattern: hash))
        }
    }

    // MARK: Claims

    /// Claims `id`, or returns where it lives. Waits while another request holds it.
    func claim(_ id: String, hash: Int) async -> Claim {
        while true {
            if let result = tryClaim(id, hash: hash) { return result }
            await waitWhileClaimed(id, hash: hash)
        }
    }

    /// Claims `id`, or returns where it lives, without waiting: nil, changing nothing, while another
    /// request holds it.
    func tryClaim(_ id: String, hash: Int) -> Claim? {
        withStripe(hash) { tryClaim(id, hash: hash, in: $0) }
    }

    private func tryClaim(_ id: String, hash: Int, in stripe: Stripe) -> Claim? {
        while true {
            // The usual case, a new id whose tag no slot has: claimed under one lock.
            let asked = stripe.state.withLock { s -> Asked in
                switch s.exact.entry(id, hash: hash) {
                case .committed(let m)?: return .committed(m)
                case .claimed?, .reclaimed?: return .inFlight
                case nil: break
                }
                let candidates = s.slots.shards(hash: hash)
                guard candidates == 0 else { return .ask(candidates, version: s.version) }
                s.exact.addInFlight(id, hash: hash, .claimed)
                return .claimed
            }
            let version: UInt64
            switch asked {
            case .claimed: return .claimed
            case .inFlight: return nil
            case .committed(let mask): return .existing(mask)
            case .ask(let candidates, let v):
                if let shard = keeper(of: id, hash: hash, among: candidates) {
                    // Kept by a shard whose slot was another id's or left over when the stripe was
                    // read, the id may have been claimed since and be in flight still: then wait for
                    // its claim to settle, as a claim found at once is waited for.
                    let inFlight = stripe.state.withLock { $0.exact.entry(id, hash: hash)?.isInFlight ?? false }
                    return inFlight ? nil : .existing(1 << UInt64(shard))
                }
                version = v
            }
            // No shard keeps it: claimed, unless a slot was added (or a claim made) meanwhile.
            let claimed = stripe.state.withLock { s -> Bool? in
                if let e = s.exact.entry(id, hash: hash) { return e.isInFlight ? false : nil }
                guard s.version == version else { return nil }
                s.exact.addInFlight(id, hash: hash, .claimed)
                return true
            }
            switch claimed {
            case true?: return .claimed
            case false?: return nil
            case nil: continue
            }
        }
    }

    /// What a claim found under the stripe's lock.
    private enum Asked {
        case claimed
        case inFlight
        case committed(UInt64)
        /// Slots of the id's tag in these shards, as of `version`: the shards are asked.
        case ask(UInt64, version: UInt64)
    }

    /// The shard among `candidates` that keeps `id`, asking each; a shard that does not gets its
    /// left-over slots of the tag reconciled.
    private func keeper(of id: String, hash: Int, among candidates: UInt64) -> Int? {
        var rest = candidates
        while rest != 0 {
            let shard = rest.trailingZeroBitCount
            rest &= rest &- 1
            if questions.keeps(shard, id, hash) { return shard }
            reconcile(hash: hash, shard: shard)
        }
        return nil
    }

    /// Removes the slots of `hash`'s tag and `shard` beyond those its reservations account for (a
    /// left-over slot), unless a slot was added on the stripe while the shard was asked. A slot is
    /// accounted for by each id of the tag the shard keeps that has no exact entry (a claim in flight
    /// has no slot yet, a reservation across shards has none), and by each id of the tag taken back
    /// from the shard to be forgotten (its slot stays until it is dropped, whether or not the shard
    /// has let it go yet).
    func reconcile(hash: Int, shard: Int) {
        let stripe = self.stripe(hash)
        let version = stripe.state.withLock { $0.version }
        let kept = questions.ids(shard, hash, lowMask)
        let tag = ShardSlots.tag(hash, lowMask: lowMask)
        let home: UInt64 = 1 << UInt64(shard)
        stripe.state.withLock { s in
            guard s.version == version else { return }
            var accounted = 0
            // (Ids of the tag in other stripes have their slots there: with the usual tag of 57 bits,
            // which include the stripe's bits, there are none.)
            for id in kept {
                let h = id.hashValue
                if stripeIndex(h) == stripeIndex(hash) && s.exact.entry(id, hash: h) == nil { accounted += 1 }
            }
            for f in s.exact.inFlight {
                if case .reclaimed(let m, let resets) = f.entry, m == home, resets == s.resets, s.slots.tag(f.hash) == tag { accounted += 1 }
            }
            var extra = s.slots.count(hash: hash, shard: shard) - accounted
            while extra > 0, s.slots.remove(hash: hash, shard: shard) { extra -= 1 }
            published(stripe, s)
        }
    }

    // MARK: Lookups

    /// Where `id` lives without waiting: `.some(nil)` when it names no reservation, nil while a claim
    /// on it is in flight. The shard of a slot of its tag is asked whether it keeps it.
    func tryLookup(_ id: String, hash: Int) -> UInt64?? {
        guard let found = tryLocate(id, hash: hash) else { return nil }
        guard let f = found else { return .some(nil) }
        if f.confirmed { return .some(f.mask) }
        return .some(keeper(of: id, hash: hash, among: f.mask).map { 1 << UInt64($0) })
    }

    /// Where `id` lives, as `tryLookup` answers, except that one shard with a slot of its tag is named
    /// without asking it (`confirmed` false), for a caller whose shard checks that it keeps the id
    /// anyway: asking it first took its lock once more.
    func tryLocate(_ id: String, hash: Int) -> (mask: UInt64, confirmed: Bool)?? {
        let found = stripe(hash).state.withLock { s -> (exact: Exact?, candidates: UInt64) in
            if let e = s.exact.entry(id, hash: hash) { return (e, 0) }
            return (nil, s.slots.shards(hash: hash))
        }
        switch found.exact {
        case .committed(let mask)?: return .some((mask, true))
        case .claimed?, .reclaimed?: return nil
        case nil: break
        }
        if found.candidates == 0 { return .some(nil) }
        if found.candidates.nonzeroBitCount == 1 { return .some((found.candidates, false)) }
        return .some(keeper(of: id, hash: hash, among: found.candidates).map { (1 << UInt64($0), true) })
    }

    /// `tryLocate`, waiting while a claim on `id` is in flight: nil when it names no reservation.
    func locate(_ id: String, hash: Int) async -> UInt64? {
        while true {
            if let found = tryLocate(id, hash: hash) { return found?.mask }
            await waitWhileClaimed(id, hash: hash)
        }
    }

    /// Where `id` lives now, without waiting (nil when it names none or a claim on it is in flight).
    func peek(_ id: String) -> UInt64? {
        tryLookup(id, hash: id.hashValue) ?? nil
    }

    /// True while a request holds a claim on `id`, or it is taken back to be forgotten.
    func isInFlight(_ id: String) -> Bool {
        let hash = id.hashValue
        return stripe(hash).state.withLock { $0.exact.entry(id, hash: hash)?.isInFlight ?? false }
    }

    /// Waits until no request holds a claim on `id` (at once when none does).
    func waitWhileClaimed(_ id: String, hash: Int) async {
        let stripe = self.stripe(hash)
        await ClaimWaiters.wait { c in
            stripe.state.withLock { s in
                guard s.exact.entry(id, hash: hash)?.isInFlight == true else { return false }
                s.waiters.add(c, for: id)
                return true
            }
        }
    }

    /// How many requests wait for the claim on `id` to settle (tests).
    func waiterCount(_ id: String) -> Int {
        stripe(id.hashValue).state.withLock { $0.waiters.count(id) }
    }

    // MARK: Settling

    /// Settles a claim: `id` now names a reservation in the shards of `mask` (never 0).
    func commit(_ id: String, hash: Int, _ mask: UInt64) {
        precondition(mask != 0, "a reservation has a line")
        settle(id, hash: hash) { s in
            guard case .claimed? = s.exact.takeInFlight(id, hash: hash) else { preconditionFailure("only a claim is committed") }
            s.set(id, hash: hash, mask)
        }
    }

    /// Gives a claim up: the id is free again.
    func abandon(_ id: String, hash: Int) {
        settle(id, hash: hash) { s in
            guard case .claimed? = s.exact.takeInFlight(id, hash: hash) else { preconditionFailure("only a claim is abandoned") }
        }
    }

    /// Takes `id`'s entry back, so that it can be forgotten without a request slipping in between:
    /// the shards of its lines, or nil when it names no reservation (or is in flight). `drop` or `keep`
    /// settles it.
    func reclaim(_ id: String) -> UInt64? {
        let hash = id.hashValue
        let stripe = self.stripe(hash)
        while true {
            let asked = stripe.state.withLock { s -> (mask: UInt64?, candidates: UInt64, version: UInt64) in
                switch s.exact.entry(id, hash: hash) {
                case .committed(let m)?:
                    s.exact.across[id, hash: hash] = nil
                    s.exact.addInFlight(id, hash: hash, .reclaimed(m, resets: s.resets))
                    return (m, 0, 0)
                case .claimed?, .reclaimed?: return (nil, 0, 0)
                case nil: return (nil, s.slots.shards(hash: hash), s.version)
                }
            }
            if let mask = asked.mask { return mask }
            guard asked.candidates != 0, let shard = keeper(of: id, hash: hash, among: asked.candidates) else { return nil }
            let mask: UInt64 = 1 << UInt64(shard)
            let taken = stripe.state.withLock { s -> Bool? in
                if s.exact.entry(id, hash: hash) != nil { return false }
                // Nothing changed on the stripe since the shard said it keeps the id: only a reclaim
                // (which the exact entry would show) or a RESET (which moves the version on) takes an
                // id from its shard, so it still does, and its slot is there.
                guard s.version == asked.version else { return nil }
                s.exact.addInFlight(id, hash: hash, .reclaimed(mask, resets: s.resets))
                return true
            }
            switch taken {
            case true?: return mask
            case false?: return nil
            case nil: continue
            }
        }
    }

    /// Settles a reclaim whose reservation was forgotten: the id is free.
    func drop(_ id: String) {
        let hash = id.hashValue
        settle(id, hash: hash) { s in
            guard case .reclaimed(let mask, let resets)? = s.exact.takeInFlight(id, hash: hash) else { preconditionFailure("only a reclaimed id is dropped") }
            // After a RESET its slot is gone already: one of the same tag now is another id's.
            if mask.nonzeroBitCount == 1 && resets == s.resets { s.slots.remove(hash: hash, shard: mask.trailingZeroBitCount) }
        }
    }

    /// Settles a reclaim whose reservation stays: its entry is as it was.
    func keep(_ id: String) {
        let hash = id.hashValue
        settle(id, hash: hash) { s in
            guard case .reclaimed(let mask, let resets)? = s.exact.takeInFlight(id, hash: hash) else { preconditionFailure("only a reclaimed id is kept") }
            // One shard: its slot stayed where it was. After a RESET the reservation is gone.
            if mask.nonzeroBitCount > 1 && resets == s.resets { s.exact.across[id, hash: hash] = mask }
        }
    }

    /// Changes the stripe of `hash` with `change`, then wakes whoever waited for `id`.
    private func settle(_ id: String, hash: Int, _ change: (inout StripeState) -> Void) {
        let waiters = withStripe(hash) { stripe in
            stripe.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                change(&s)
                published(stripe, s)
                return s.waiters.take(id)
            }
        }
        for w in waiters { w.resume() }
    }

    // MARK: Restoring

    /// Sets `id` outright (a snapshot's reservations, where no request is waiting and no id is twice).
    func restore(_ id: String, _ mask: UInt64) {
        let hash = id.hashValue
        let stripe = self.stripe(hash)
        stripe.state.withLock { s in
            s.set(id, hash: hash, mask)
            published(stripe, s)
        }
    }

    /// `restore` for many ids in a row (replay of the log), taking each stripe's lock once: the ids of
    /// a stripe are set in their order in `ids`. `shards[i]` is set to the shards that may have kept
    /// `ids[i]` just before it was set (0 for none): those of its entry across shards, and those of
    /// every slot of its tag, whether the slot is its own (a reservation made again after it was
    /// forgotten: forgetting is not logged) or another id's, which replay cannot tell apart until the
    /// shards have applied the records; forgetting an id a shard does not keep changes nothing. The
    /// ids whose tag had a slot are appended to `ambiguous`, for `reconcile` once the records are
    /// applied.
    /// A name whose record does not make its reservation (`makes` false) is already there, in the
    /// same shards (a reservation's lines keep their cells): it changes nothing, and its `shards` is 0.
    /// `name(i)` is id `i`'s name, asked for only when its entry is kept by name (across shards):
    /// a list of the names would retain and release each id, and nearly all are kept by hash alone.
    func replace(
        _ ids: UnsafeBufferPointer<(hash: Int, value: UInt64, makes: Bool)>, name: (Int) -> String, shards: inout [UInt64],
        ambiguous: inout [(hash: Int, shards: UInt64)]
    ) {
        shards.removeAll(keepingCapacity: true)
        shards.append(contentsOf: repeatElement(0, count: ids.count))
        guard !ids.isEmpty else { return }
        var starts = [Int](repeating: 0, count: Self.stripeCount + 1)
        var order = [Int](repeating: 0, count: ids.count)
        order.withUnsafeMutableBufferPointer { order in
            starts.withUnsafeMutableBufferPointer { starts in
                CountingSort.group(count: ids.count, key: { stripeIndex(ids[$0].hash) }, order: order, starts: starts)
            }
        }
        for t in 0..<Self.stripeCount where starts[t] < starts[t + 1] {
            let stripe = stripes[t]
            stripe.state.withLock { s in
                precondition(s.exact.inFlight.isEmpty, "replay replaces no id a request holds")
                let range = starts[t]..<starts[t + 1]
                s.slots.reserveCapacity(s.slots.count + range.count)
                published(stripe, s)
                // The slot of the id 32 ahead is asked for now: in tables of millions a slot is a
                // cache and TLB miss.
                let ahead = 32
                for k in range.prefix(ahead) { stripe.hint.prefetch(hash: UInt(bitPattern: ids[order[k]].hash)) }
                for k in range {
                    if k + ahead < range.upperBound { stripe.hint.prefetch(hash: UInt(bitPattern: ids[order[k + ahead]].hash)) }
                    let n = ids[order[k]]
                    precondition(n.value != 0, "a reservation has a line")
                    guard n.makes else { continue }
                    var old = s.slots.shards(hash: n.hash)
                    if old != 0 { ambiguous.append((n.hash, old)) }
                    if !s.exact.across.isEmpty, let m = s.exact.across.exchange(name(order[k]), hash: n.hash, with: nil) {
                        old |= m & (~m &+ 1)
                    }
                    shards[order[k]] = old
                    s.set(name(order[k]), hash: n.hash, n.value)
                }
                published(stripe, s)
            }
        }
    }

    /// Forgets every reservation (RESET); claims in flight settle as usual.
    func removeAllCommitted() {
        for stripe in stripes {
            stripe.state.withLock { s in
                s.exact.across.removeAll()
                s.slots.removeAll()
                s.version &+= 1
                s.resets &+= 1
                published(stripe, s)
            }
        }
    }

    // MARK: Due work and verification

    /// The ids kept under `hash`: those the exact table has and those of the shards of the slots of
    /// its tag (asked, one shard at a time).
    func names(withHash hash: Int) -> [String] {
        let (exact, candidates) = stripe(hash).state.withLock { s in
            (s.exact.keys(withHash: hash), s.slots.shards(hash: hash))
        }
        var names = exact
        var rest = candidates
        while rest != 0 {
            let shard = rest.trailingZeroBitCount
            rest &= rest &- 1
            for id in questions.ids(shard, hash, lowMask) where id.hashValue == hash && !names.contains(id) { names.append(id) }
        }
        return names
    }

    /// What the directory holds, as verification reads it (no shard is asked): every slot (as
    /// `slot(hash:shard:)` makes it); the ids in flight; and the reservations across shards.
    struct Contents {
        var slots: [UInt64] = []
        var inFlight: Set<String> = []
        /// Ids taken back to be forgotten that live in one shard: their slots stay until they are dropped.
        var reclaimedInOneShard: [(id: String, shard: Int)] = []
        var acrossShards: [(id: String, mask: UInt64)] = []
    }

    func contents() -> Contents {
        var out = Contents()
        for stripe in stripes {
            stripe.state.withLock { s in
                out.slots += s.slots.occupied
                for (id, e) in s.exact.all {
                    switch e {
                    case .claimed: out.inFlight.insert(id)
                    case .reclaimed(let m, let resets):
                        out.inFlight.insert(id)
                        if m.nonzeroBitCount == 1 && resets == s.resets { out.reclaimedInOneShard.append((id, m.trailingZeroBitCount)) }
                    case .committed(let m): out.acrossShards.append((id, m))
                    }
                }
            }
        }
        return out
    }

    /// The slot a reservation of `hash` kept in `shard` has.
    func slot(hash: Int, shard: Int) -> UInt64 { ShardSlots.slot(hash: hash, shard: shard, lowMask: lowMask) }

    #if DEBUG
    func checkInvariants() {
        for stripe in stripes { stripe.state.withLock { $0.slots.checkInvariants() } }
    }
    #endif
}
