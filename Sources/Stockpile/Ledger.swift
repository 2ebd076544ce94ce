// The ledger hands out sequence numbers and keeps the recent entries. Sequence numbers are gapless
// over all shards and the entries of one operation are consecutive: a commit takes its numbers, and
// its log record's LSN, in one atomic step on one word pair (next seq, last LSN), while its shard still
// holds the cells it changed — so for every cell the ledger order is the order in which its changes
// were made, and LSN order is sequence order. No lock common to all shards is taken for it: the
// recent entries are a ring whose every slot has its own word, and the log takes records in lanes
// (one per shard) and writes them in LSN order (`GroupCommitter`). Subscribers are the exception:
// while anyone subscribes, appends take the ledger's lock, so that events are told in one order.
// Subscribers hear of an entry only once its record is as safe as the durability policy promises
// (SPEC §4: nothing is revealed before it is durable), in sequence order, and each subscriber's
// unread backlog is bounded.

import CStockpileLinux
import Glibc
import StockpileCore
import StockpileWAL
import Synchronization

/// The recent ledger entries: entry `seq` at slot `(seq - 1) % capacity`, written by whichever shard
/// numbered it, without a lock common to all. Each slot has a word of its own, its first 8 bytes: the
/// seq of the entry it holds (0: none yet), or `busy` while one thread writes or reads the slot. The
/// word lies in its slot's own cache line: kept in an array of their own, the words of eight
/// consecutive entries shared a line, which both cores wrote in turn as they numbered entries.
///
/// A slot keeps its entry packed (`PackedEntry`): the figures as integers and the names' UTF-8 bytes
/// in the slot itself, 128 bytes in all, with no reference to count. An entry kept as a value held six
/// strings: replacing it, a whole ring of entries later, released each of them, a cache miss apiece on
/// strings long since cold (7% of the server's time among 100,000 cells). An entry whose names do not
/// fit (a long note, say) is kept boxed beside its slot.
final class EntryRing: @unchecked Sendable {
    let capacity: Int
    /// A slot's bytes after its word are written once it has held a packed entry; a slot that has only
    /// held boxed entries is never read past its word (its box is).
    private let slots: UnsafeMutableRawPointer
    /// The entries too long to pack, by slot (nil for a packed one).
    private let boxes: UnsafeMutablePointer<Boxed<LedgerEntry>?>
    private static let busy = UInt64.max

    init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
        slots = .allocate(byteCount: capacity * PackedEntry.byteCount, alignment: 64)
        for i in 0..<capacity {
            (slots + i * PackedEntry.byteCount).bindMemory(to: Atomic<UInt64>.self, capacity: 1).initialize(to: Atomic(0))
        }
        boxes = .allocate(capacity: capacity)
        boxes.initialize(repeating: nil, count: capacity)
    }

    deinit {
        for i in 0..<capacity { _ = word(i).deinitialize(count: 1) }
        slots.deallocate()
        boxes.deinitialize(count: capacity)
        boxes.deallocate()
    }

    /// Slot `i`'s word.
    @inline(__always)
    private func word(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (slots + i * PackedEntry.byteCount).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// What a slot held when it was looked at for an entry.
    enum Found {
        case entry(LedgerEntry)
        /// The slot holds an older entry, or none: the one asked for is not kept yet.
        case notYet
        /// The slot holds a newer entry: the one asked for is gone.
        case overwritten
    }

    @inline(__always)
    private func slot(_ seq: UInt64) -> Int { Int((seq - 1) % UInt64(capacity)) }

    /// Takes slot `i` for this thread; returns the seq it held.
    @inline(__always)
    private func acquire(_ i: Int) -> UInt64 {
        let word = word(i)
        var held = word.pointee.load(ordering: .relaxed)
        var spins = 0
        while true {
            if held != Self.busy {
                let (done, now) = word.pointee.weakCompareExchange(expected: held, desired: Self.busy, ordering: .acquiring)
                if done { return held }
                held = now
            } else {
                // Another thread holds the slot for the time of one copy; if it was preempted
                // meanwhile, let it run rather than spin through its time slice.
                spins += 1
                if spins % 64 == 0 { sched_yield() }
                held = word.pointee.load(ordering: .relaxed)
            }
        }
    }

    /// Keeps `e` in its slot, unless the slot already holds a newer entry (the thread keeping `e`
    /// was overtaken by a whole ring's worth of entries: `e` is gone from memory already).
    func keep(_ e: borrowing LedgerEntry) {
        keep(seq: e.seq, pack: { PackedEntry.pack(e, into: $0) }, whole: { copy e })
    }

    /// Keeps the entry of a new reservation numbered `seq`, made at `time` under `id` by `actor`, that
    /// took `cell`'s figures from `before` to `after`, as `keep` keeps its `LedgerEntry` (which is
    /// built only when its names do not fit a slot).
    func keepReservation(seq: UInt64, time: Timestamp, cell: CellKey, before: CellState, after: CellState, id: String, actor: String) {
        keep(
            seq: seq,
            pack: {
                PackedEntry.pack(
                    time: time, type: .reserve, deltaOnHand: after.onHand - before.onHand, deltaReserved: after.reserved - before.reserved, onHand: after.onHand,
                    reserved: after.reserved, reason: nil, variant: cell.variant, warehouse: cell.warehouse, note: "", reference: "",
                    reservation: id, actor: actor, into: $0)
            },
            whole: { Ledger.reservationEntry(seq: seq, time: time, cell: cell, before: before, after: after, id: id, actor: actor) })
    }

    /// Keeps entry `seq` in its slot, packed by `pack` (false when its names take more room than a
    /// slot has: then `whole` is kept, boxed), unless the slot already holds a newer entry (the thread
    /// keeping it was overtaken by a whole ring's worth of entries: it is gone from memory already).
    @inline(__always)
    private func keep(seq: UInt64, pack: (UnsafeMutableRawPointer) -> Bool, whole: () -> LedgerEntry) {
        let i = slot(seq)
        let held = acquire(i)
        if held > seq {
            word(i).pointee.store(held, ordering: .releasing)
            return
        }
        if pack(slots + i * PackedEntry.byteCount) {
            if boxes[i] != nil { boxes[i] = nil }
        } else {
            boxes[i] = Boxed(whole())
        }
        word(i).pointee.store(seq, ordering: .releasing)
    }

    /// The entry numbered `seq`, if its slot holds it.
    func entry(_ seq: UInt64) -> Found {
        let i = slot(seq)
        let held = acquire(i)
        defer { word(i).pointee.store(held, ordering: .releasing) }
        guard held == seq else { return held > seq ? .overwritten : .notYet }
        if let box = boxes[i] { return .entry(box.value) }
        return .entry(PackedEntry.unpack(slots + i * PackedEntry.byteCount, seq: seq))
    }
}

/// A ledger entry in 128 bytes, as `EntryRing` keeps it: the slot's word (the ring's, which holds the
/// seq), time and the four figures as 64-bit integers, the type and the reason as one byte each, then
/// the byte count of each of the six names (variant, warehouse, note, reference, reservation, actor)
/// and their UTF-8 bytes, one after the other, in the 72 bytes left.
enum PackedEntry {
    static let byteCount = 128
    private static let namesAt = 56
    private static let nameRoom = byteCount - namesAt
    /// No reason (a reason's code is its index among `ReasonCode.allCases`).
    private static let noReason: UInt8 = 0xFF
    /// The cases by code, made once (`allCases` builds an array each time it is asked).
    private static let types = EntryType.allCases
    private static let reasons = ReasonCode.allCases

    /// Packs `e` at `p`: false, writing nothing, when its names take more room than a slot has. The
    /// first 8 bytes, the slot's word, are left to the ring: it stores the seq there.
    @inline(__always)
    static func pack(_ e: borrowing LedgerEntry, into p: UnsafeMutableRawPointer) -> Bool {
        pack(
            time: e.time, type: e.type, deltaOnHand: e.deltaOnHand, deltaReserved: e.deltaReserved, onHand: e.onHand, reserved: e.reserved,
            reason: e.reason, variant: e.variant, warehouse: e.warehouse, note: e.note, reference: e.reference, reservation: e.reservation,
            actor: e.actor, into: p)
    }

    /// `pack(_:into:)` from the entry's fields, for a caller that has not built the entry.
    @inline(__always)
    static func pack(
        time: Timestamp, type: EntryType, deltaOnHand: Quantity, deltaReserved: Quantity, onHand: Quantity, reserved: Quantity,
        reason: ReasonCode?, variant: String, warehouse: String, note: String, reference: String, reservation: String, actor: String,
        into p: UnsafeMutableRawPointer
    ) -> Bool {
        let counts = (variant.utf8.count, warehouse.utf8.count, note.utf8.count, reference.utf8.count, reservation.utf8.count, actor.utf8.count)
        guard counts.0 + counts.1 + counts.2 + counts.3 + counts.4 + counts.5 <= nameRoom else { return false }
        p.storeBytes(of: time.milliseconds, toByteOffset: 8, as: Int64.self)
        p.storeBytes(of: deltaOnHand.units, toByteOffset: 16, as: Int64.self)
        p.storeBytes(of: deltaReserved.units, toByteOffset: 24, as: Int64.self)
        p.storeBytes(of: onHand.units, toByteOffset: 32, as: Int64.self)
        p.storeBytes(of: reserved.units, toByteOffset: 40, as: Int64.self)
        p.storeBytes(of: type.packedCode, toByteOffset: 48, as: UInt8.self)
        p.storeBytes(of: reason?.packedCode ?? noReason, toByteOffset: 49, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.0), toByteOffset: 50, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.1), toByteOffset: 51, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.2), toByteOffset: 52, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.3), toByteOffset: 53, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.4), toByteOffset: 54, as: UInt8.self)
        p.storeBytes(of: UInt8(counts.5), toByteOffset: 55, as: UInt8.self)
        var at = p + namesAt
        at += copyUTF8(variant, to: at)
        at += copyUTF8(warehouse, to: at)
        at += copyUTF8(note, to: at)
        at += copyUTF8(reference, to: at)
        at += copyUTF8(reservation, to: at)
        _ = copyUTF8(actor, to: at)
        return true
    }

    /// The entry packed at `p`, numbered `seq` (what its slot's word holds).
    static func unpack(_ p: UnsafeRawPointer, seq: UInt64) -> LedgerEntry {
        func count(_ k: Int) -> Int { Int(p.load(fromByteOffset: 50 + k, as: UInt8.self)) }
        var at = namesAt
        func name(_ k: Int) -> String {
            let n = count(k)
            defer { at += n }
            return String(decoding: UnsafeRawBufferPointer(start: p + at, count: n), as: UTF8.self)
        }
        let reason = p.load(fromByteOffset: 49, as: UInt8.self)
        return LedgerEntry(
            seq: seq, time: Timestamp(milliseconds: p.load(fromByteOffset: 8, as: Int64.self)),
            type: types[Int(p.load(fromByteOffset: 48, as: UInt8.self))], variant: name(0), warehouse: name(1),
            deltaOnHand: Quantity(p.load(fromByteOffset: 16, as: Int64.self)), deltaReserved: Quantity(p.load(fromByteOffset: 24, as: Int64.self)),
            onHand: Quantity(p.load(fromByteOffset: 32, as: Int64.self)), reserved: Quantity(p.load(fromByteOffset: 40, as: Int64.self)),
            reason: reason == noReason ? nil : reasons[Int(reason)], note: name(2), reference: name(3), reservation: name(4),
            actor: name(5))
    }

    /// Copies `s`'s UTF-8 bytes to `p`; returns how many.
    @inline(__always)
    private static func copyUTF8(_ s: String, to p: UnsafeMutableRawPointer) -> Int {
        func copy(_ b: UnsafeBufferPointer<UInt8>) -> Int {
            if let base = b.baseAddress, !b.isEmpty { p.copyMemory(from: base, byteCount: b.count) }
            return b.count
        }
        // Read in place (a `var` copy to call `withUTF8` on retained the string); a string not
        // stored as UTF-8 is copied first.
        if let copied = s.utf8.withContiguousStorageIfAvailable(copy) { return copied }
        var s = s
        return s.withUTF8(copy)
    }
}

final class Ledger: Sendable {
    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriberID = 0
        /// Events whose records the log has not acknowledged yet, in LSN order, from `undeliveredHead`
        /// on. Kept only while a log is attached and someone subscribes.
        var undelivered: [(lsn: UInt64, event: EngineEvent)] = []
        var undeliveredHead = 0

        /// Hands `event` to every subscriber it is owed to. A subscriber whose unread backlog passes
        /// its limit gets `.ended` after it and is dropped; its continuation is returned, to be
        /// finished once the lock is let go (finishing runs its termination handler, which locks).
        mutating func send(_ event: EngineEvent) -> [AsyncStream<EngineEvent>.Continuation] {
            let seq = event.seq
            var ended: [AsyncStream<EngineEvent>.Continuation] = []
            for (id, sub) in subscribers where seq >= sub.firstSeq {
                // The stream holds `backlogLimit + 2`: past `backlogLimit` unread, one slot is still
                // free for the end, so the consumer always learns why its stream stopped.
                guard case .enqueued(let remaining) = sub.continuation.yield(event), remaining < 2 else { continue }
                sub.continuation.yield(.ended(.fellBehind(backlogLimit: sub.backlogLimit, resumeSeq: seq + 1)))
                subscribers[id] = nil
                ended.append(sub.continuation)
            }
            return ended
        }
    }

    private struct Subscriber {
        var continuation: AsyncStream<EngineEvent>.Continuation
        /// The first sequence number it is owed: an entry numbered before it subscribed, whose record
        /// was acknowledged only after, is not its.
        var firstSeq: UInt64
        var backlogLimit: Int
    }

    private let state = Mutex(State())
    /// `first`: the seq the next entry gets; `second`: the LSN of the last record handed to the log
    /// (0 before any, and without a log). Taken together (`take`), so that LSN order is seq order.
    /// In a cache line of its own: every commit of either core writes it, and kept among the fields
    /// every append only reads (`log`, `ring`, `subscriberCount`), it made each of those reads a miss
    /// on the line the other core had just written.
    nonisolated(unsafe) private let numbers: UnsafeMutablePointer<Atomic<WordPair>>
    /// The first seq memory ever kept: 1, or where the snapshot the engine started from left off.
    private let firstKept = Atomic<UInt64>(1)
    private let ring: EntryRing
    /// How many subscribe, read without the lock by every append, which takes the lock only when
    /// someone subscribes. Changed under the lock: raised only while every shard is held
    /// (`subscribe`), so no append is under way; lowered whenever a subscriber goes (an append that
    /// still takes the lock for it finds none to tell).
    private let subscriberCount = Atomic<Int>(0)
    /// Serialises KEY records, which no shard numbers, in their lane.
    private let keyLane = Mutex(())
    /// True while events may wait for the log's acknowledgement: set (under the lock) before a record
    /// with events is handed to the log, cleared when none wait. The committing thread looks at it first,
    /// so without subscribers an acknowledgement takes no lock.
    private let hasUndelivered = Atomic<Bool>(false)
    var capacity: Int { ring.capacity }
    /// The write-ahead log, when the engine is durable. Attached once by `Engine.open`, after the
    /// replay and before the engine is returned or its timer started, so no other thread reads it
    /// before that write; never changed after.
    nonisolated(unsafe) private(set) var log: GroupCommitter?

    /// The log's lane of KEY records: the one after the shards' (`attach`).
    private let keyLaneIndex: Int

    init(capacity: Int, shardCount: Int) {
        // 128 bytes: processors that fetch cache lines in pairs would otherwise bring in, and take
        // away, the line beside it with it.
        numbers = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: Atomic<WordPair>.self, capacity: 1)
        numbers.initialize(to: Atomic(WordPair(first: 1, second: 0)))
        ring = EntryRing(capacity: capacity)
        keyLaneIndex = shardCount
        assert(lastLSN == 0, "the last LSN is read where the pair keeps its second word")
    }

    deinit {
        _ = numbers.deinitialize(count: 1)
        UnsafeMutableRawPointer(numbers).deallocate()
    }

    /// Attaches the log of a durable engine (see `log`): one lane per shard (`append`'s `lane`) and
    /// one for KEY records. From now on subscribers hear of an entry when the log acknowledges its
    /// record.
    func attach(_ log: GroupCommitter) {
        precondition(self.log == nil, "a ledger's log is attached once")
        // A lane shared by two owners would not be in LSN order, and the log would wait forever.
        precondition(log.laneCount == keyLaneIndex + 1, "the log needs a lane per shard and one for KEY records")
        self.log = log
        // Everything replayed is in the log up to here: a snapshot taken before the next change must
        // say so, or a later start-up would replay the whole log again on top of it.
        let n = numbers.pointee.load(ordering: .relaxed)
        precondition(n.second <= log.baseLSN, "the log ends before what was replayed")
        numbers.pointee.store(WordPair(first: n.first, second: UInt(log.baseLSN)), ordering: .releasing)
        log.observeAcknowledgements { [weak self] lsn in self?.deliver(through: lsn) }
    }

    /// Hands subscribers the events whose records are acknowledged up to `lsn`, in order. Runs after
    /// each acknowledgement on the thread that committed (the log's, or an event loop's committing in
    /// its place); a failed log acknowledges nothing more, so the events
    /// of records it could not make durable are never delivered.
    private func deliver(through lsn: UInt64) {
        guard hasUndelivered.load(ordering: .acquiring) else { return }
        let ended = state.withLock { s -> [AsyncStream<EngineEvent>.Continuation] in
            var ended: [AsyncStream<EngineEvent>.Continuation] = []
            while s.undeliveredHead < s.undelivered.count, s.undelivered[s.undeliveredHead].lsn <= lsn {
                ended += s.send(s.undelivered[s.undeliveredHead].event)
                s.undeliveredHead += 1
            }
            if s.undeliveredHead == s.undelivered.count {
                s.undelivered.removeAll(keepingCapacity: true)
                s.undeliveredHead = 0
                hasUndelivered.store(false, ordering: .releasing)
            } else if s.undeliveredHead >= 4096 && s.undeliveredHead * 2 >= s.undelivered.count {
                s.undelivered.removeFirst(s.undeliveredHead)
                s.undeliveredHead = 0
            }
            subscriberCount.store(s.subscribers.count, ordering: .releasing)
            return ended
        }
        for c in ended { c.finish() }
    }

    /// The LSN of the last record handed to the log: a reply that reveals anything committed so far
    /// waits until it is acknowledged.
    /// Its half of the pair read alone (an 8-byte load; the pair whole is read by a `cmpxchg16b`, a
    /// locked write to the line every commit takes its numbers from): each wait for the log reads it.
    var lastLSN: UInt64 {
        #if _endian(little) && _pointerBitWidth(_64)
        stockpile_load_acquire_u64(UnsafeRawPointer(numbers) + MemoryLayout<UInt>.stride)
        #else
        UInt64(numbers.pointee.load(ordering: .acquiring).second)
        #endif
    }

    /// Takes `count` sequence numbers and, with `record`, the next LSN, in one step: returns the
    /// first seq and the LSN (the last one handed out, without `record`).
    @inline(__always)
    private func take(_ count: Int, record: Bool) -> (seq: UInt64, lsn: UInt64) {
        var n = numbers.pointee.load(ordering: .relaxed)
        while true {
            let next = WordPair(first: n.first &+ UInt(count), second: record ? n.second &+ 1 : n.second)
            let (done, now) = numbers.pointee.weakCompareExchange(expected: n, desired: next, ordering: .acquiringAndReleasing)
            if done { return (UInt64(n.first), UInt64(next.second)) }
            n = now
        }
    }

    /// Numbers the commit's entries, hands it to the log, keeps the entries and tells subscribers, with
    /// the low-stock alerts the commit causes (computed by the caller's `alerts`, who knows the
    /// policies, and only when someone subscribes: under the lock, so a subscriber that came first
    /// hears them): at once without a log, and when the log acknowledges the record with one.
    /// Call it holding every shard the commit changes; `lane` is the log's lane of one of them (its
    /// index).
    /// - Throws: the log's failure; then nothing is numbered, kept or told, and the caller must drop
    ///   the commit and not apply it.
    func append(_ commit: inout Commit, lane: Int, alerts: (Commit) -> [LowStockAlert] = { _ in [] }) throws(WALIOError) {
        try log?.checkWritable()
        appendWritable(&commit, lane: lane, alerts: alerts)
    }

    /// `append` once the log is known to be writable: numbers the commit without the lock, or under
    /// it, telling subscribers, when anyone subscribes.
    private func appendWritable(_ commit: inout Commit, lane: Int, alerts: (Commit) -> [LowStockAlert]) {
        if subscriberCount.load(ordering: .acquiring) == 0 {
            number(&commit, lane: lane)
            return
        }
        var ended: [AsyncStream<EngineEvent>.Continuation] = []
        state.withLock { s in ended = appendTelling(&commit, lane: lane, alerts: alerts, in: &s) }
        for c in ended { c.finish() }
    }

    /// `append` for a new reservation of one line, from the figures of its ledger entry and the fields
    /// of its log record, without either its entry or its commit: the reservation `id`, made at
    /// `time` by `actor` with `hold` for `customer`, took `cell`'s figures from `before` to `after`.
    /// Numbers the entry and the record, hands the log the record's parts (`GroupCommitter.submit(
    /// reservation:…)`, which stages it as bytes: nothing of it is built here), and keeps the entry
    /// (`EntryRing.keepReservation`). With subscribers, or when the log's record cannot carry the hold
    /// (`ReservationHold.isCarried`), it builds the entry and the commit (`commit`, given the numbered
    /// entry) and appends it as `append` does, so that subscribers hear of it, and the log records it,
    /// exactly as any other commit. `place`: where the shard keeps the record's cell, when it has it
    /// already (the log's writer numbers the cell by it).
    func append(
        reservation id: String, time: Timestamp, cell: CellKey, before: CellState, after: CellState, actor: String,
        hold: ReservationHold, customer: String?, place: CellPlace? = nil, lane: Int, commit: (LedgerEntry) -> Commit,
        alerts: (Commit) -> [LowStockAlert]
    ) throws(WALIOError) {
        try log?.checkWritable()
        if subscriberCount.load(ordering: .acquiring) == 0, log == nil || hold.isCarried {
            let (seq, lsn) = take(1, record: log != nil)
            ring.keepReservation(seq: seq, time: time, cell: cell, before: before, after: after, id: id, actor: actor)
            if let log {
                assert(
                    CompactReservation(
                        reservation: id, time: time, seq: seq, cell: cell, actor: actor, quantity: hold.quantity, tracked: hold.tracked,
                        backordered: hold.backordered, onHandAfter: after.onHand, reservedAfter: after.reserved, ttl: hold.ttl, customer: customer,
                        strategy: hold.strategy)
                        == CompactReservation(commit(Self.reservationEntry(seq: seq, time: time, cell: cell, before: before, after: after, id: id, actor: actor))),
                    "a reservation record that is not its commit's")
                log.submit(
                    reservation: id, time: time, seq: seq, cell: cell, actor: actor, hold: hold, onHandAfter: after.onHand,
                    reservedAfter: after.reserved, customer: customer, place: place, lsn: lsn, lane: lane)
            }
            return
        }
        var built = commit(Self.reservationEntry(seq: 0, time: time, cell: cell, before: before, after: after, id: id, actor: actor))
        appendWritable(&built, lane: lane, alerts: alerts)
    }

    /// Whether a new reservation's entries may be kept from their figures alone (`appendBare`): no log
    /// to hand a record to, and no one subscribed to be told. Subscribers come only while every shard
    /// is held, so a caller holding a shard reads an answer that holds until it lets go.
    var keepsEntriesBare: Bool { log == nil && subscriberCount.load(ordering: .acquiring) == 0 }

    /// `append` for a new reservation `id` of `count` lines, made at `time` by `actor`, when
    /// `keepsEntriesBare`: numbers its entries, one per line in the lines' order, and keeps each as
    /// `EntryRing.keepReservation` does from line `k`'s cell and figures (`line(k)`), without building
    /// the entries or a commit. Call it holding every shard the lines are in.
    func appendBare(reservation id: String, time: Timestamp, actor: String, count: Int, line: (Int) -> (cell: CellKey, before: CellState, after: CellState)) {
        assert(keepsEntriesBare, "entries kept bare only without a log and without subscribers")
        let (first, _) = take(count, record: false)
        var k = 0
        while k < count {
            let (cell, before, after) = line(k)
            ring.keepReservation(seq: first + UInt64(k), time: time, cell: cell, before: before, after: after, id: id, actor: actor)
            k += 1
        }
    }

    /// The ledger entry of a new reservation `id` made at `time` by `actor`, numbered `seq`, that took
    /// `cell`'s figures from `before` to `after`: the one the rules make for its hold (`Rules.held`).
    static func reservationEntry(seq: UInt64, time: Timestamp, cell: CellKey, before: CellState, after: CellState, id: String, actor: String) -> LedgerEntry {
        var entry = Rules.cellEntry(.reserve, cell, before: before, after: after, now: time, actor: actor, reservation: id)
        entry.seq = seq
        return entry
    }

    /// Whether records go to a log (set once, before any append).
    var isLogged: Bool { log != nil }

    /// Numbers the commit's entries in place (a copy would copy the entries), keeps them, and hands
    /// the commit to the log. Returns the record's LSN (0 without a log).
    @discardableResult
    private func number(_ commit: inout Commit, lane: Int) -> UInt64 {
        let (first, lsn) = take(commit.entries.count, record: log != nil)
        // Kept from where the commit holds them: read out of the array, each entry (about 150 bytes
        // and six names) was copied, and its names retained, to be packed into its slot.
        commit.entries.withUnsafeMutableBufferPointer { entries in
            for i in entries.indices {
                entries[i].seq = first + UInt64(i)
                ring.keep(entries[i])
            }
        }
        if let log {
            commit.logged.lsn = lsn
            log.submit(.commit(commit), lsn: lsn, lane: lane)
        }
        return lsn
    }

    /// `append` while someone subscribes, holding the lock: numbers the commit as `number` does and
    /// tells its events. Returns the continuations of subscribers dropped, to be finished once the
    /// lock is let go.
    private func appendTelling(
        _ commit: inout Commit, lane: Int, alerts: (Commit) -> [LowStockAlert], in s: inout State
    ) -> [AsyncStream<EngineEvent>.Continuation] {
        // Before the record is handed over, so that its acknowledgement cannot pass the flag by.
        if log != nil && !s.subscribers.isEmpty { hasUndelivered.store(true, ordering: .releasing) }
        let lsn = number(&commit, lane: lane)
        guard !s.subscribers.isEmpty else { return [] }
        let alerts = alerts(commit)
        var events: [EngineEvent] = []
        for e in commit.entries {
            events.append(.entry(e))
            for var a in alerts where a.variant == e.variant && a.warehouse == e.warehouse {
                a.seq = e.seq
                events.append(.lowStock(a))
            }
        }
        if log != nil {
            s.undelivered += events.lazy.map { (lsn, $0) }
            return []
        }
        let ended = events.flatMap { s.send($0) }
        // A subscriber that fell behind is dropped: appends need not take the lock for it any more.
        subscriberCount.store(s.subscribers.count, ordering: .releasing)
        return ended
    }

    /// Hands a KEY used by a success that changed nothing to the log (nothing to number or keep).
    /// Returns the record's LSN (0 without a log).
    @discardableResult
    func appendKeyUse(_ use: KeyUse) throws(WALIOError) -> UInt64 {
        guard let log else { return 0 }
        try log.checkWritable()
        // The last lane is the KEY records'; numbered and handed over under one lock, so that the
        // lane is in LSN order.
        return keyLane.withLock { _ in
            let (_, lsn) = take(0, record: true)
            log.submit(.keyUse(use), lsn: lsn, lane: keyLaneIndex)
            return lsn
        }
    }

    /// Takes back the numbering of `count` entries read from the log at start-up, the first numbered
    /// `seq`, without keeping them: a replay keeps the newest entries once it has applied every
    /// record (`keepReplayed`).
    func restoreNumbering(of count: Int, from seq: UInt64) {
        let n = numbers.pointee.load(ordering: .relaxed)
        precondition(seq == UInt64(n.first), "replayed entry \(seq) where \(n.first) was due")
        numbers.pointee.store(WordPair(first: n.first + UInt(count), second: n.second), ordering: .releasing)
    }

    /// Keeps an entry whose numbering `restoreNumbering` took back (a replay keeps its newest
    /// entries, in order, once every batch is prepared; the ring keeps the newest of each slot).
    func keepReplayed(_ e: consuming LedgerEntry) {
        ring.keep(e)
    }

    /// Starts from a snapshot: the next entry is numbered `nextSeq`, and memory keeps `recent` (the
    /// entries just before it, oldest first).
    func start(nextSeq: UInt64, recent: [LedgerEntry]) {
        let n = numbers.pointee.load(ordering: .relaxed)
        precondition(n.first == 1 && firstKept.load(ordering: .relaxed) == 1, "a ledger starts from a snapshot only when new")
        let kept = recent.suffix(capacity)
        var next = kept.first?.seq ?? nextSeq
        firstKept.store(next, ordering: .relaxed)
        for e in kept {
            precondition(e.seq == next, "snapshot entry \(e.seq) where \(next) was due")
            ring.keep(e)
            next += 1
        }
        precondition(next == nextSeq, "the snapshot's entries end at \(next), not \(nextSeq)")
        numbers.pointee.store(WordPair(first: UInt(nextSeq), second: n.second), ordering: .releasing)
    }

    /// Where the ledger stands: the last LSN handed to the log and the next sequence number. Read
    /// while every shard is held, it is the point a snapshot is taken at.
    var position: (lastLSN: UInt64, nextSeq: UInt64) {
        let n = numbers.pointee.load(ordering: .acquiring)
        return (UInt64(n.second), UInt64(n.first))
    }

    /// The entries memory keeps with seq below `end`, oldest first (every entry below `end` must be
    /// numbered and kept). Entries overwritten meanwhile are left out: the answer is consecutive and
    /// ends at `end - 1`.
    func recentEntries(below end: UInt64) -> [LedgerEntry] {
        var out: [LedgerEntry] = []
        var seq = end
        while seq > oldestSeq {
            seq -= 1
            guard case .entry(let e) = ring.entry(seq) else { break }
            out.append(e)
        }
        out.reverse()
        return out
    }

    /// The sequence number the next entry will get.
    var nextSeq: UInt64 { UInt64(numbers.pointee.load(ordering: .acquiring).first) }

    /// The oldest sequence number memory still keeps.
    var oldestSeq: UInt64 {
        let next = nextSeq
        return max(firstKept.load(ordering: .relaxed), next > UInt64(capacity) ? next - UInt64(capacity) : 1)
    }

    /// Entries with seq ≥ `from`, oldest first, at most `limit`. Entries older than memory keeps are
    /// skipped: the answer starts at the oldest entry kept, and ends before the first entry numbered
    /// but not yet kept (its commit is still being made).
    func entries(from: UInt64, limit: Int) -> [LedgerEntry] {
        let end = nextSeq
        var out: [LedgerEntry] = []
        var seq = max(from, oldestSeq)
        while seq < end && out.count < limit {
            switch ring.entry(seq) {
            case .entry(let e): out.append(e)
            case .notYet: return out
            case .overwritten:
                // Memory moved past it meanwhile: the answer starts again at the oldest entry kept.
                out.removeAll()
                seq = max(seq + 1, oldestSeq)
                continue
            }
            seq += 1
        }
        return out
    }

    /// The most recent entries of one cell, newest first, from what memory keeps (entries numbered
    /// but not yet kept are not among them).
    func history(of cell: CellKey, limit: Int) -> [LedgerEntry] {
        var out: [LedgerEntry] = []
        var seq = nextSeq
        let oldest = oldestSeq
        while out.count < limit && seq > oldest {
            seq -= 1
            switch ring.entry(seq) {
            case .entry(let e):
                if e.variant == cell.variant && e.warehouse == cell.warehouse { out.append(e) }
            case .notYet: continue
            case .overwritten: return out
            }
        }
        return out
    }

    /// A stream of every event appended from now on, each once it is durable. Past `backlogLimit`
    /// unread events the stream ends with `.ended(.fellBehind)`. Call it holding every shard, so that
    /// no append is under way: every append after it sees the subscriber and takes the lock.
    func subscribe(backlogLimit: Int) -> AsyncStream<EngineEvent> {
        precondition(backlogLimit >= 1, "a subscriber's backlog limit must be at least 1")
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream(bufferingPolicy: .bufferingOldest(backlogLimit + 2))
        let id = state.withLock { s in
            let id = s.nextSubscriberID
            s.nextSubscriberID += 1
            s.subscribers[id] = Subscriber(continuation: continuation, firstSeq: nextSeq, backlogLimit: backlogLimit)
            subscriberCount.store(s.subscribers.count, ordering: .releasing)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            state.withLock { s in
                s.subscribers[id] = nil
                subscriberCount.store(s.subscribers.count, ordering: .releasing)
            }
        }
        return stream
    }

    func finishSubscribers() {
        let subscribers = state.withLock { s in
            defer {
                s.subscribers.removeAll()
                subscriberCount.store(0, ordering: .releasing)
            }
            return s.subscribers.values.map(\.continuation)
        }
        for c in subscribers { c.finish() }
    }
}

extension EngineEvent {
    /// The sequence number of the entry the event is (or follows from).
    var seq: UInt64 {
        switch self {
        case .entry(let e): e.seq
        case .lowStock(let a): a.seq
        case .ended(.fellBehind(_, let resumeSeq)): resumeSeq
        }
    }
}

extension LowStockAlert {
    /// The threshold crossings a commit causes, judged with the variants' policies in `view`.
    static func alerts(for commit: Commit, in view: some StockView) -> [LowStockAlert] {
        var out: [LowStockAlert] = []
        for e in commit.entries where e.touchesCell {
            let threshold = view.policy(of: e.variant).lowStock
            guard threshold.isPositive else { continue }
            let wasLow = e.before.available <= threshold
            let isLow = e.available <= threshold
            if wasLow != isLow {
                out.append(LowStockAlert(variant: e.variant, warehouse: e.warehouse, available: e.available, threshold: threshold, isLow: isLow, seq: 0))
            }
        }
        return out
    }
}

extension EntryType {
    /// Its index among `allCases`: a case without a payload is stored as its declaration's index
    /// (`EntryRingTests` reads every case back).
    @inline(__always) var packedCode: UInt8 {
        return unsafeBitCast(self, to: UInt8.self)
    }
}

extension ReasonCode {
    /// Its index among `allCases` (see `EntryType.packedCode`).
    @inline(__always) var packedCode: UInt8 {
        return unsafeBitCast(self, to: UInt8.self)
    }
}
