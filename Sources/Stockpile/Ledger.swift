// The ledger hands out sequence numbers and keeps the recent entries. Appending a commit numbers its
// entries consecutively under one lock, so sequence numbers are gapless over all shards and the
// entries of one operation are adjacent. A shard appends while it still holds the cells it changed,
// so for every cell the ledger order is the order in which its changes were made. Subscribers hear of
// an entry only once its record is as safe as the durability policy promises (SPEC §4: nothing is
// revealed before it is durable), in sequence order, and each subscriber's unread backlog is bounded.

import StockpileCore
import StockpileWAL
import Synchronization



final class Ledger: Sendable {
    private struct State {
        var nextSeq: UInt64 = 1
        /// Recent entries: `ring[(seq - 1) % capacity]` for seq in `oldestSeq..<nextSeq`.
        var ring: [LedgerEntry] = []
        var oldestSeq: UInt64 = 1
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriberID = 0
        /// Events whose records the log has not acknowledged yet, in LSN order, from `undeliveredHead`
        /// on. Kept only while a log is attached and someone subscribes.
        var undelivered: [(lsn: UInt64, event: EngineEvent)] = []
        var undeliveredHead = 0
        /// The LSN of the last record handed to the log (0 before any, and without a log).
        var lastLSN: UInt64 = 0

        /// Keeps `e`, read back from the log, which must be the entry numbered `nextSeq`.
        mutating func restore(_ e: LedgerEntry, capacity: Int) {
            precondition(e.seq == nextSeq, "replayed entry \(e.seq) where \(nextSeq) was due")
            keep(e, capacity: capacity)
        }

        /// Keeps `e` (which must be the entry numbered `nextSeq`) at its slot `(seq - 1) % capacity`.
        mutating func keep(_ e: LedgerEntry, capacity: Int) {
            let slot = Int((nextSeq - 1) % UInt64(capacity))
            if ring.count == capacity {
                ring[slot] = e
            } else if ring.count == slot {
                ring.append(e)
            } else {
                // Restored from a snapshot mid-sequence: fill the ring so that every seq has its slot.
                ring += repeatElement(e, count: capacity - ring.count)
                ring[slot] = e
            }
            nextSeq += 1
            if nextSeq > UInt64(capacity) { oldestSeq = max(oldestSeq, nextSeq - UInt64(capacity)) }
        }

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
    /// True while events may wait for the log's acknowledgement: set (under the lock) before a record
    /// with events is handed to the log, cleared when none wait. The log's thread looks at it first,
    /// so without subscribers an acknowledgement takes no lock that every commit needs.
    private let hasUndelivered = Atomic<Bool>(false)
    let capacity: Int
    /// The write-ahead log, when the engine is durable. Records are handed to it under the ledger's
    /// lock, so LSN order is sequence order is commit order. Attached once by `Engine.open`, after
    /// the replay and before the engine is returned or its timer started, so no other thread reads
    /// it before that write; never changed after.
    nonisolated(unsafe) private(set) var log: GroupCommitter?

    init(capacity: Int) {
        self.capacity = capacity
        state.withLock { $0.ring.reserveCapacity(capacity) }
    }

    /// Attaches the log of a durable engine (see `log`). From now on subscribers hear of an entry
    /// when the log acknowledges its record.
    func attach(_ log: GroupCommitter) {
        precondition(self.log == nil, "a ledger's log is attached once")
        self.log = log
        // Everything replayed is in the log up to here: a snapshot taken before the next change must
        // say so, or a later start-up would replay the whole log again on top of it.
        state.withLock { $0.lastLSN = max($0.lastLSN, log.baseLSN) }
        log.observeAcknowledgements { [weak self] lsn in self?.deliver(through: lsn) }
    }

    /// Hands subscribers the events whose records are acknowledged up to `lsn`, in order. Runs on the
    /// log's thread after each acknowledgement; a failed log acknowledges nothing more, so the events
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
            return ended
        }
        for c in ended { c.finish() }
    }

    /// The LSN of the last record handed to the log: a reply that reveals anything committed so far
    /// waits until it is acknowledged.
    var lastLSN: UInt64 { state.withLock { $0.lastLSN } }

    /// Numbers the commit's entries, hands it to the log, keeps the entries and tells subscribers, with
    /// the low-stock alerts the commit causes (computed by the caller's `alerts`, who knows the
    /// policies, and only when someone subscribes: under this lock, so a subscriber that came first
    /// hears them): at once without a log, and when the log acknowledges the record with one.
    /// - Throws: the log's failure; then nothing is kept or told, and the caller must drop the commit
    ///   (its entries carry the numbers they would have had) and not apply it.
    func append(_ commit: inout Commit, alerts: (Commit) -> [LowStockAlert] = { _ in [] }) throws(WALIOError) {
        var ended: [AsyncStream<EngineEvent>.Continuation] = []
        try state.withLock { s throws(WALIOError) in ended = try append(&commit, alerts: alerts, in: &s) }
        for c in ended { c.finish() }
    }

    /// `append` for a new reservation of one line, from its ledger entry and the fields of its log
    /// record, without its commit: numbers `entry` and `record` (built by the caller before the lock,
    /// when the engine has a log; nil when the log's record cannot carry it), hands the log the
    /// record, and keeps the entry. With subscribers, or without a record for the log, it builds the
    /// commit (`commit`, given the numbered entry) and appends it as `append` does, so that
    /// subscribers hear of it, and the log records it, exactly as any other commit.
    func append(
        reservation entry: inout LedgerEntry, record: consuming CompactReservation?, commit: (LedgerEntry) -> Commit,
        alerts: (Commit) -> [LowStockAlert]
    ) throws(WALIOError) {
        let capacity = self.capacity
        var ended: [AsyncStream<EngineEvent>.Continuation] = []
        try state.withLock { s throws(WALIOError) in
            entry.seq = s.nextSeq
            if !s.subscribers.isEmpty || (log != nil && record == nil) {
                var built = commit(entry)
                ended = try append(&built, alerts: alerts, in: &s)
                return
            }
            if let log, var fields = record.take() {
                fields.seq = entry.seq
                assert(fields == CompactReservation(commit(entry)), "a reservation record that is not its commit's")
                s.lastLSN = try log.submit(reservation: fields)
            }
            s.keep(entry, capacity: capacity)
        }
        for c in ended { c.finish() }
    }

    /// Whether records go to a log (set once, before any append).
    var isLogged: Bool { log != nil }

    /// The body of `append`, holding the lock: returns the continuations of subscribers dropped, to be
    /// finished once the lock is let go.
    private func append(
        _ commit: inout Commit, alerts: (Commit) -> [LowStockAlert], in s: inout State
    ) throws(WALIOError) -> [AsyncStream<EngineEvent>.Continuation] {
        let capacity = self.capacity
        // Numbered in place (a copy would copy the entries): when the log refuses the commit, the
        // caller drops it, numbers and all.
        for i in commit.entries.indices { commit.entries[i].seq = s.nextSeq + UInt64(i) }
        // Before the record is handed over, so that its acknowledgement cannot pass the flag by.
        if log != nil && !s.subscribers.isEmpty { hasUndelivered.store(true, ordering: .releasing) }
        if let log { s.lastLSN = try log.submit(.commit(commit)) }
        for e in commit.entries { s.keep(e, capacity: capacity) }
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
            let lsn = s.lastLSN
            s.undelivered += events.lazy.map { (lsn, $0) }
            return []
        }
        return events.flatMap { s.send($0) }
    }

    /// Hands a KEY used by a success that changed nothing to the log (nothing to number or keep).
    func appendKeyUse(_ use: KeyUse) throws(WALIOError) {
        guard let log else { return }
        try state.withLock { s throws(WALIOError) in s.lastLSN = try log.submit(.keyUse(use)) }
    }

    /// Takes back entries read from the log at start-up, with the sequence numbers they were given.
    func restore(_ entries: [LedgerEntry]) {
        let capacity = self.capacity
        state.withLock { s in
            for e in entries { s.restore(e, capacity: capacity) }
        }
    }

    /// `restore` of one entry (a `reservation` record's), without an array for it. (Through a generic
    /// sequence, `CollectionOfOne`, replay was 3–4 % slower: the entry was copied once more.)
    func restore(_ e: LedgerEntry) {
        let capacity = self.capacity
        state.withLock { s in s.restore(e, capacity: capacity) }
    }

    /// Starts from a snapshot: the next entry is numbered `nextSeq`, and memory keeps `recent` (the
    /// entries just before it, oldest first).
    func start(nextSeq: UInt64, recent: [LedgerEntry]) {
        let capacity = self.capacity
        state.withLock { s in
            precondition(s.nextSeq == 1 && s.ring.isEmpty, "a ledger starts from a snapshot only when new")
            let kept = recent.suffix(capacity)
            s.nextSeq = kept.first?.seq ?? nextSeq
            s.oldestSeq = s.nextSeq
            for e in kept {
                precondition(e.seq == s.nextSeq, "snapshot entry \(e.seq) where \(s.nextSeq) was due")
                s.keep(e, capacity: capacity)
            }
            precondition(s.nextSeq == nextSeq, "the snapshot's entries end at \(s.nextSeq), not \(nextSeq)")
        }
    }

    /// Where the ledger stands: the last LSN handed to the log and the next sequence number. Read
    /// while every shard is held, it is the point a snapshot is taken at.
    var position: (lastLSN: UInt64, nextSeq: UInt64) { state.withLock { ($0.lastLSN, $0.nextSeq) } }

    /// The entries memory keeps with seq below `end`, oldest first, copied a chunk at a time so the
    /// lock every commit needs is never held for long. Entries overwritten meanwhile are left out:
    /// the answer is consecutive and ends at `end - 1`.
    func recentEntries(below end: UInt64) -> [LedgerEntry] {
        let capacity = self.capacity
        let chunkCount: UInt64 = 4096
        var chunks: [[LedgerEntry]] = []
        var below = end
        while true {
            let chunk: [LedgerEntry] = state.withLock { s in
                let low = max(s.oldestSeq, below > chunkCount ? below - chunkCount : 1)
                guard low < below else { return [] }
                return (low..<below).map { s.ring[Int(($0 - 1) % UInt64(capacity))] }
            }
            guard let first = chunk.first else { break }
            chunks.append(chunk)
            below = first.seq
        }
        return chunks.reversed().flatMap { $0 }
    }

    /// The sequence number the next entry will get.
    var nextSeq: UInt64 { state.withLock { $0.nextSeq } }

    /// The oldest sequence number memory still keeps.
    var oldestSeq: UInt64 { state.withLock { $0.oldestSeq } }

    /// Entries with seq ≥ `from`, oldest first, at most `limit`. Entries older than memory keeps are
    /// skipped: the answer starts at the oldest entry kept.
    func entries(from: UInt64, limit: Int) -> [LedgerEntry] {
        let capacity = self.capacity
        return state.withLock { s in
            var out: [LedgerEntry] = []
            var seq = max(from, s.oldestSeq)
            while seq < s.nextSeq && out.count < limit {
                out.append(s.ring[Int((seq - 1) % UInt64(capacity))])
                seq += 1
            }
            return out
        }
    }

    /// The most recent entries of one cell, newest first, from what memory keeps. The scan copies the
    /// ring a chunk at a time, so the lock every commit needs is never held for more than one chunk.
    func history(of cell: CellKey, limit: Int) -> [LedgerEntry] {
        let capacity = self.capacity
        let chunkCount: UInt64 = 4096
        var out: [LedgerEntry] = []
        var below = state.withLock { $0.nextSeq }
        while out.count < limit {
            let chunk: [LedgerEntry] = state.withLock { s in
                let low = max(s.oldestSeq, below > chunkCount ? below - chunkCount : 1)
                guard low < below else { return [] }
                return (low..<below).reversed().map { s.ring[Int(($0 - 1) % UInt64(capacity))] }
            }
            guard let last = chunk.last else { break }
            for e in chunk where e.variant == cell.variant && e.warehouse == cell.warehouse {
                out.append(e)
                if out.count == limit { break }
            }
            below = last.seq
        }
        return out
    }

    /// A stream of every event appended from now on, each once it is durable. Past `backlogLimit`
    /// unread events the stream ends with `.ended(.fellBehind)`.
    func subscribe(backlogLimit: Int) -> AsyncStream<EngineEvent> {
        precondition(backlogLimit >= 1, "a subscriber's backlog limit must be at least 1")
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream(bufferingPolicy: .bufferingOldest(backlogLimit + 2))
        let id = state.withLock { s in
            let id = s.nextSubscriberID
            s.nextSubscriberID += 1
            s.subscribers[id] = Subscriber(continuation: continuation, firstSeq: s.nextSeq, backlogLimit: backlogLimit)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func finishSubscribers() {
        let subscribers = state.withLock { s in
            defer { s.subscribers.removeAll() }
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
