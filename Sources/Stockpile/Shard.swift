// A shard actor owns a slice of the cells (by `ShardRouter`) and the reservations whose home it is.
// Its executor is a lock (`ShardExecutor`): the engine enters a shard synchronously with
// `withState { … }`, so a single-shard operation is checked and applied in one stretch with no
// `await` at all, let alone between the check and the mutation. An operation spanning shards holds
// the locks of all of them, taken in ascending shard order (see `Engine+Locked.swift`).

import StockpileCore
import StockpileWAL
import Synchronization

/// A reservation id with its hash (`id.hashValue`), computed once per request for every table it is
/// looked up in.
struct HashedID: Sendable {
    let id: String
    let hash: Int

    init(_ id: String) {
        self.id = id
        hash = id.hashValue
    }

    /// `id` with its hash, computed by the caller.
    init(_ id: String, hash: Int) {
        assert(hash == id.hashValue, "the hash is the id's")
        self.id = id
        self.hash = hash
    }
}

/// What the directory said about a reservation when the caller planned: its id and the shards of its lines.
struct ExpectedReservation: Sendable {
    var id: String
    var mask: UInt64

    func matches(_ r: Reservation?, _ router: ShardRouter) -> Bool {
        guard let r else { return false }
        return router.mask(of: r.lines.lazy.map(\.cell)) == mask
    }
}

actor Shard {
    /// What the shard owns. Reached only through `withState` (taking the shard's lock) or
    /// `withHeldState` (a caller already holding it): the lock is this actor's executor, so holding
    /// it is being isolated to the shard (`ShardExecutor`). Handing the state to a closure, as
    /// `Mutex` hands out its value, costs nothing; `assumeIsolated`, which an isolated closure would
    /// need, boxed that closure on the heap twice per call. Private, so nothing reaches the state
    /// around the lock.
    nonisolated(unsafe) private let state: ShardState
    let ledger: Ledger
    private let executor = ShardExecutor()

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    /// Where the reservation table's and the cell table's indexes lie, published by the tables as
    /// they move, for `prefetch(idHash:cellHash:)`, which takes no lock.
    private let reservationsHint = IndexHintCell()
    private let cellsHint = IndexHintCell()

    init(index: Int, router: ShardRouter, ledger: Ledger) {
        state = ShardState(index: index, router: router)
        state.reservations.hintCell = reservationsHint
        state.cells.hintCell = cellsHint
        self.ledger = ledger
    }

    /// Runs `body` on this shard's state, now, on the calling thread, holding the shard's lock.
    nonisolated func withState<R>(_ body: (ShardState) -> R) -> R {
        executor.withLock { body(state) }
    }

    /// Runs `body` holding this shard's lock, for an operation that holds several shards: call
    /// `withHeldState` on each inside. Nest only in ascending shard order.
    nonisolated func holding<R>(_ body: () -> R) -> R {
        executor.withLock(body)
    }

    /// Asks for the slots where a lookup of the reservation id hashed `idHash` and of the cell whose
    /// `CellTable.hash` is `cellHash` start, without the lock: for a caller with other waits ahead of
    /// it (a directory claim, the lock itself), so that the misses overlap.
    nonisolated func prefetch(idHash: Int, cellHash: UInt64) {
        reservationsHint.prefetch(hash: UInt(bitPattern: idHash))
        cellsHint.prefetch(hash: UInt(cellHash))
    }

    /// Asks for the slot where a lookup of the reservation id hashed `idHash` starts, without the lock
    /// (see `prefetch(idHash:cellHash:)`).
    nonisolated func prefetch(idHash: Int) {
        reservationsHint.prefetch(hash: UInt(bitPattern: idHash))
    }

    /// Asks for the slot where a lookup of the cell whose `CellTable.hash` is `cellHash` starts,
    /// without the lock (see `prefetch(idHash:cellHash:)`).
    nonisolated func prefetch(cellHash: UInt64) {
        cellsHint.prefetch(hash: UInt(cellHash))
    }

    /// Runs `body` on this shard's state. Only inside `holding` (or another call holding this shard's
    /// lock on this thread), which debug builds check.
    nonisolated func withHeldState<R>(_ body: (ShardState) -> R) -> R {
        #if DEBUG
        executor.checkIsolated()
        #endif
        return body(state)
    }

    /// Decides and applies `command`, which touches only this shard. Returns nil, changing nothing, when
    /// the caller's plan is stale: `catalogVersion` (the catalog it planned placement with) changed, or
    /// `reservation` (the id and shard mask the directory gave) no longer names a reservation kept here
    /// with exactly those shards (it was forgotten, or forgotten and made again, in between).
    /// `hashedID`, when given, is the request's reservation id with its hash, so the shard's table
    /// does not hash it again.
    nonisolated func execute(
        _ command: Command, now: Timestamp, actor: String, settings: RuleSettings, catalogVersion: UInt64?,
        reservation expected: ExpectedReservation? = nil, hashedID: HashedID? = nil
    ) -> Performed? {
        withState { state in
            state.hashedID = hashedID
            defer { state.hashedID = nil }
            if let v = catalogVersion, v != state.catalogVersion { return nil }
            if let expected, state.linesMask(of: expected.id) != expected.mask { return nil }
            return decideHere(command, state: state, now: now, actor: actor, settings: settings)
        }
    }

    /// Decides and applies new reservations whose ids the caller has claimed and whose lines are all
    /// in this shard, in order, entering the shard once for all of them: appends to `answers` the
    /// answer deciding each alone would give (`reserveOneLine` for one line naming its warehouse,
    /// `execute` otherwise; an outcome goes to `outcomes`, its answer giving its index), and to
    /// `settlements` what settling its id's claim needs, without taking and letting go of the lock
    /// between them.
    /// The reservations are `requests[p]` for each p in `positions`, in that order; `hashes[p]` is the
    /// hash of `requests[p].id`, and `cellHashes[p]` the `CellTable.hash` of its cell when it has one
    /// line (0 otherwise: nothing is fetched ahead for it).
    nonisolated func executeRun(
        _ requests: [ReserveRequest], hashes: [Int], cellHashes: UnsafeBufferPointer<Int>, positions: UnsafeBufferPointer<Int>, now: Timestamp,
        actor: String, settings: RuleSettings, into answers: inout [RunAnswer], outcomes: inout [Outcome<Reply>],
        settlements: inout [ClaimSettlement]
    ) {
        precondition(hashes.count == requests.count, "one hash per request")
        // The slots each request's id and cell are looked up in were asked for by the caller,
        // before the run held the shard (`Engine.decideRun`, through the shard's hints). The cell's
        // entry, found through its slot (it holds the names the lookup compares, `StoredCellKey`),
        // is asked for `ahead` requests ahead, so that its miss overlaps with deciding the ones
        // before.
        let ahead = 4
        withState { state in
            defer { state.hashedID = nil }
            /// Request `k`'s cell hash, nil for a request the run does not look a cell up for.
            func cellHash(_ k: Int) -> UInt64? {
                let h = cellHashes[positions[k]]
                return h == 0 ? nil : UInt64(UInt(bitPattern: h))
            }
            func fetchCell(_ k: Int) { if let h = cellHash(k) { state.cells.prefetchEntry(hash: h) } }
            for k in positions.indices.prefix(ahead) { fetchCell(k) }
            for k in positions.indices {
                if k + ahead < positions.count { fetchCell(k + ahead) }
                let p = positions[k]
                let hashedID = HashedID(requests[p].id, hash: hashes[p])
                state.hashedID = hashedID
                // Every line of a run's reservation is in this shard: its shards are this one.
                let mask: UInt64 = 1 << UInt64(state.index)
                func answer(_ performed: consuming Performed) {
                    settlements.append(ClaimSettlement(of: performed, mask: mask, router: state.router))
                    answers.append(.outcome(outcomes.count))
                    outcomes.append(performed.outcome())
                }
                if requests[p].lines.count == 1 && cellHashes[p] != 0 {
                    // The settlement and the answer appended where they are made: in a run, returning
                    // them as a pair from a helper shared with `Engine.answerNewOneLineReservation` (which
                    // answers one reservation alone that way) cost about a tenth more CPU (`hot --batch
                    // 64`, pairs of builds in either order).
                    reserveOneLineHere(
                        requests[p], hashedID: hashedID, cellHash: UInt64(UInt(bitPattern: cellHashes[p])), state: state, now: now, actor: actor,
                        settings: settings,
                        made: { r in
                            settlements.append(ClaimSettlement(made: r, mask: mask))
                            assert(NewOneLineFacts(r).reservation(of: requests[p]) == r, "the facts and the request make the reservation")
                            answers.append(.made(NewOneLineFacts(r)))
                        },
                        otherwise: answer)
                } else {
                    answer(decideHere(requests[p], state: state, now: now, actor: actor, settings: settings))
                }
            }
        }
    }

    /// Decides `command` against the state and commits it, holding the lock (with `state.hashedID`
    /// set to the request's id, when it has one).
    private nonisolated func decideHere(_ command: Command, state: ShardState, now: Timestamp, actor: String, settings: RuleSettings) -> Performed {
        commitHere(state: state) { Rules.decide(command, in: state, now: now, actor: actor, settings: settings) }
    }

    /// `decideHere` for a new reservation, without wrapping the request in a command.
    private nonisolated func decideHere(_ request: ReserveRequest, state: ShardState, now: Timestamp, actor: String, settings: RuleSettings) -> Performed {
        commitHere(state: state) { Rules.reserve(request, in: state, now: now, actor: actor, settings: settings) }
    }

    /// Commits what `decide` decides, when it is a commit. The decision is made, bound and consumed
    /// here, in one function: handed in as an argument, the commit bound from it would share its
    /// entry array with the argument, and the ledger's numbering would copy that array.
    @inline(__always)
    private nonisolated func commitHere(state: ShardState, _ decide: () -> Decision) -> Performed {
        let decision = decide()
        guard case .commit(var commit) = decision else { return Performed(uncommitted: decision) }
        do throws(WALIOError) {
            try commitHere(&commit, state: state)
        } catch {
            return .refused(.writesStopped(error))
        }
        return .commit(commit)
    }

    /// A new reservation of `request`'s one line, which names its warehouse in this shard, whose id the
    /// caller has claimed (`hashedID`); `cellHash` is its cell's `CellTable.hash`. Decided by the same
    /// rules as any reservation (`Rules.holdOneLine`), and committed from its entry's figures: a cell the
    /// shard has is found once for the check and the change (one it has not is added when the hold
    /// is committed), the log gets the fields of its `reservation` record, and no commit is built
    /// (unless someone subscribes, or the record cannot carry it: see `Ledger.append(reservation:…)`).
    /// A replay of a reservation the shard still keeps, or a conflict, is decided the general way.
    /// The reservation made goes to `made`, anything else performed (a refusal, the general path's
    /// decision) to `otherwise`, both called holding the lock.
    nonisolated func reserveOneLine<R>(
        _ request: ReserveRequest, hashedID: HashedID, cellHash: UInt64, now: Timestamp, actor: String, settings: RuleSettings,
        made: (consuming OneLineReservation) -> R, otherwise: (consuming Performed) -> R
    ) -> R {
        withState { state in
            state.hashedID = hashedID
            defer { state.hashedID = nil }
            // The cell's entry is asked for first (its index slot was asked for before the lock), so
            // that its miss overlaps with the id's lookup rather than following it. (A run asks for
            // its requests' entries ahead, in `executeRun`.)
            state.cells.prefetchEntry(hash: cellHash)
            return reserveOneLineHere(
                request, hashedID: hashedID, cellHash: cellHash, state: state, now: now, actor: actor, settings: settings,
                made: made, otherwise: otherwise)
        }
    }

    /// `reserveOneLine`, holding the lock: hands the reservation it made to `made`, and anything else
    /// it performed (a refusal, or the general path's decision) to `otherwise`.
    @inline(__always)
    private nonisolated func reserveOneLineHere<R>(
        _ request: ReserveRequest, hashedID: HashedID, cellHash: UInt64, state: ShardState, now: Timestamp, actor: String, settings: RuleSettings,
        made: (consuming OneLineReservation) -> R, otherwise: (consuming Performed) -> R
    ) -> R {
        precondition(request.lines.count == 1 && request.lines[0].warehouse != Identifiers.anyWarehouse, "one line naming its warehouse")
        // The line its entry will be written to, a miss of its own, is asked for first.
        state.reservations.prefetchNextEntry()
        if state.reservations.containsInPlace(hashedID.id, hash: hashedID.hash) {
            return otherwise(decideHere(request, state: state, now: now, actor: actor, settings: settings))
        }
        let line = request.lines[0]
        let cell = CellKey(variant: line.variant, warehouse: line.warehouse)
        assert(cellHash == CellTable.hash(cell), "the cell's hash is its own")
        let known = state.cells.positionInPlace(of: cell, hash: cellHash)
        let before = known.map { state.cells[position: $0].state } ?? .empty
        let hold = Rules.holdOneLine(line, before: before, in: state)
        if case .refused(let refusal) = hold { return otherwise(.refused(refusal)) }
        // Bound from the consumed hold: its line moves out rather than being copied. No ledger entry
        // is built: the ledger keeps it from its figures (`Ledger.append(reservation:…)`).
        guard case .held(let held, let after, let policy) = consume hold else { preconditionFailure("a hold is held or refused") }
        let strategy = request.strategy ?? settings.defaultStrategy
        // The reservation as the general path would make it (`Reservation(new:lines:fingerprint:at:)`),
        // without an array for its line: making it allocates nothing.
        let reservation = OneLineReservation(new: request, held: held, strategy: strategy, at: now)
        assert(
            reservation.reservation == Reservation(new: request, lines: [held], fingerprint: ReserveFingerprint(request, strategy: strategy), at: now),
            "the one-line reservation is the one the request makes")
        // The log's record is staged from these parts by the ledger, which numbers it.
        let logged = ReservationHold(quantity: held.quantity, tracked: held.tracked, backordered: held.backordered, ttl: request.ttl, strategy: strategy)
        do throws(WALIOError) {
            try ledger.append(
                reservation: request.id, time: now, cell: cell, before: before, after: after, actor: actor, hold: logged, customer: request.customer,
                place: known.map { CellPlace(shard: state.index, position: $0, generation: state.cells.generation, tableHash: cellHash) },
                lane: state.index,
                commit: { numbered in Commit(time: now, entries: [numbered], reservation: reservation.reservation, replyShape: .reservation) },
                alerts: { LowStockAlert.alerts(for: $0, in: state) })
        } catch {
            return otherwise(.refused(.writesStopped(error)))
        }
        // Applied as `ShardState.apply` applies the commit it stands for.
        let p = state.applyReservation(of: cell, before: before, after: after, hash: cellHash, at: known, backorderAllowed: policy.backorder)
        state.store(reservation, cellPosition: p)
        return made(reservation)
    }

    /// Expires reservation `id` if it still expires at `deadline`; otherwise says when it closed, if
    /// it did, read under the same hold.
    nonisolated func expire(_ id: String, deadline: Timestamp, actor: String) -> ExpiryFinding {
        withState { state in
            guard var commit = Rules.expire(id, deadline: deadline, in: state, actor: actor) else {
                guard let t = state.retentionTimes(of: id), let closedAt = t.closedAt else { return .nothing }
                return .closed(createdAt: t.createdAt, ttl: t.ttl, closedAt: closedAt)
            }
            // A log that cannot be written stops every change, expiries included.
            guard (try? commitHere(&commit, state: state)) != nil else { return .nothing }
            return .expired(commit)
        }
    }

    /// Logs, numbers and applies a commit decided here, holding the lock. When the log refuses it,
    /// nothing is applied. `cellHashes`: as `ShardState.apply` takes them.
    private nonisolated func commitHere(_ commit: inout Commit, state: ShardState, cellHashes: [UInt64]? = nil) throws(WALIOError) {
        try ledger.append(&commit, lane: state.index) { LowStockAlert.alerts(for: $0, in: state) }
        state.apply(commit, ownsAll: true, cellHashes: cellHashes)
    }

    /// Loads `rows` (all of this shard's cells, checked by the caller) as one commit of `import`
    /// entries: one lock, one append to the ledger and one log record for the lot, where a row at a
    /// time would cost each. Rows are decided in order against the figures the earlier rows leave,
    /// so a cell named twice ends at its last row. Returns the refusal that stops the load (a
    /// warehouse removed meanwhile, a log that cannot be written), with nothing applied.
    /// `cellHashes`: each row's `CellTable.hash` (the caller hashed the names to route the rows).
    nonisolated func importRows(_ rows: ArraySlice<StockRow>, cellHashes hashes: [UInt64], now: Timestamp, actor: String) -> Refusal? {
        withState { state in
            var entries: [LedgerEntry] = []
            entries.reserveCapacity(rows.count)
            precondition(hashes.count == rows.count, "one hash per row")
            // The entry each cell of the lot last got, by the cell's hash, so a cell named again reads
            // the figures its earlier row leaves (nothing is applied before the lot is logged).
            var lastEntry = LotIndex(capacity: rows.count)
            var checkedWarehouse = ""
            // Each row's table slot is asked for this many rows ahead, so the lookups' cache misses overlap.
            let ahead = 16
            do {
                // Read through one reference for the lot, let go at the end of this block, before the
                // commit changes the table: a call on the state's own property would retain and release
                // the table's arrays per row.
                var cells = state.cells
                for (k, row) in zip(rows.indices, rows) {
                    let i = k - rows.startIndex
                    if i + ahead < hashes.count { cells.prefetch(hash: hashes[i + ahead]) }
                    let cell = CellKey(variant: row.variant, warehouse: row.warehouse)
                    if row.warehouse != checkedWarehouse {
                        guard state.warehouse(row.warehouse) != nil else {
                            let r = Refusal.warehouseNotFound(row.warehouse)
                            return Refusal(r.code, "line \(row.line): \(r.message)")
                        }
                        checkedWarehouse = row.warehouse
                    }
                    let hash = hashes[i]
                    var before: CellState
                    if let i = lastEntry[hash], let earlier = entries[...i].lastIndex(where: { $0.cell == cell }) {
                        before = entries[earlier].after
                    } else {
                        before = cells.slot(of: cell, hash: hash)?.state ?? .empty
                    }
                    // Two cells whose hashes meet keep the later one's entry; the search above still finds
                    // the right one, since it looks back for the cell itself.
                    lastEntry[hash] = entries.count
                    entries.append(Rules.importEntry(cell, onHand: row.onHand, before: before, now: now, actor: actor))
                }
            }
            guard !entries.isEmpty else { return nil }
            // Consumed: a copy left here would make the ledger's numbering copy the lot's entries.
            var commit = Commit(time: now, entries: consume entries, replyShape: .cell(variance: nil))
            do throws(WALIOError) {
                try commitHere(&commit, state: state, cellHashes: hashes)
            } catch {
                return .writesStopped(error)
            }
            return nil
        }
    }
}

/// From a cell's hash to the last entry of an import lot with that hash: an open-addressing table
/// of entry indexes sized for the lot (at most half full), where a Dictionary would hash the hash
/// again with SipHash for every row.
private struct LotIndex {
    private var slots: [(hash: UInt64, entry: Int)]
    private let mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size *= 2 }
        slots = Array(repeating: (0, -1), count: size)
        mask = size - 1
    }

    subscript(hash: UInt64) -> Int? {
        get {
            var i = Int(truncatingIfNeeded: hash) & mask
            while slots[i].entry >= 0 {
                if slots[i].hash == hash { return slots[i].entry }
                i = (i + 1) & mask
            }
            return nil
        }
        set {
            guard let newValue else { preconditionFailure("entries are only added") }
            var i = Int(truncatingIfNeeded: hash) & mask
            while slots[i].entry >= 0 && slots[i].hash != hash { i = (i + 1) & mask }
            slots[i] = (hash, newValue)
        }
    }
}

extension Shard {
    /// Forgets a closed reservation whose retention has passed. Returns whether it did.
    nonisolated func forget(_ id: String, closedBefore limit: Timestamp) -> Bool {
        withState { state in
            state.reservations.remove(id, hash: id.hashValue, closedNotAfter: limit)
        }
    }
}
