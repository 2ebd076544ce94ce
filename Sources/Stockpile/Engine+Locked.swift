// Operations that span shards. The operation holds the lock of every shard it touches, taking them
// in ascending shard order; since every such operation takes locks in the same global order, no two
// can each wait for a lock the other holds, so there is no deadlock. While holding, it reads the
// figures, decides with the same rules a single shard uses, numbers its entries in the ledger
// (consecutively, since that is one append), and applies each shard's part. No other operation can
// touch those cells in between, so the check and the change are one atomic step and nothing is
// oversold. A refused operation changes nothing. All of it is synchronous: no `await` while holding.

import StockpileCore
import StockpileWAL

/// A cell as an operation across shards gathers it: its figures, its `stableHash` (computed once for
/// the operation) and its position in its shard's table (nil for a cell the shard has no figures for
/// yet).
typealias GatheredCell = (key: CellKey, state: CellState, stable: UInt64, position: Int?)

/// A view of held shards as the rules read it: the catalog through the shards' own box (every shard
/// keeps the same copy), the cells as each view gathers them.
protocol HeldShardsView: StockView {
    var catalog: HeldCatalog { get }
}

extension HeldShardsView {
    func warehouse(_ code: String) -> Warehouse? { catalog.with { $0.warehouse(code) } }
    func policy(of variant: String) -> VariantPolicy { catalog.with { $0.policy(of: variant) } }
    var warehousesInPlacementOrder: [Warehouse] { catalog.with { $0.warehousesInPlacementOrder } }
}

/// The figures gathered from held shards, as the rules read them. An operation gathers a few cells
/// and at most one reservation: they are kept in an array and an optional, found by a scan, which
/// costs less than the dictionaries (and their hashing of names) that a handful of entries would
/// need.
struct GatheredView: HeldShardsView {
    var cells: [GatheredCell] = []
    var reservation: Reservation?
    let catalog: HeldCatalog

    /// The `stableHash` of `key`, as gathered (hashed now if it was not gathered).
    func stableHash(of key: CellKey) -> UInt64 {
        cells.first(where: { $0.key == key })?.stable ?? key.stableHash
    }

    func cellState(_ key: CellKey) -> CellState {
        guard let i = cells.firstIndex(where: { $0.key == key }) else {
            assertionFailure("the rules read cell \(key) that the operation did not gather")
            return .empty
        }
        return cells[i].state
    }
    func reservation(_ id: String) -> Reservation? { reservation?.id == id ? reservation : nil }
}

/// The cells of a reservation across shards as the rules read them (`reserveAcrossShards`): each
/// line's cell, in room the caller made on the stack. A `GatheredView` keeps its cells in an array:
/// an allocation per reservation.
struct RoomView: HeldShardsView {
    /// Initialised, and valid for as long as the room its caller made.
    let cells: UnsafeMutableBufferPointer<GatheredCell>
    let catalog: HeldCatalog

    /// Read through pointers: a debug build's subscript of a buffer pointer is a coroutine, whose
    /// frame it allocates (the allocation test counts a debug build too).
    func cellState(_ key: CellKey) -> CellState {
        var cell = cells.baseAddress!
        let end = cell + cells.count
        while cell < end {
            if cell.pointee.key == key { return cell.pointee.state }
            cell += 1
        }
        assertionFailure("the rules read cell \(key) that the reservation does not name")
        return .empty
    }

    /// The place of line `i`'s cell in its shard's table (nil for a cell the shard has no figures for yet).
    func position(ofLine i: Int) -> Int? { (cells.baseAddress! + i).pointee.position }

    /// None: the id is claimed, so no shard keeps a reservation under it.
    func reservation(_ id: String) -> Reservation? { nil }
}

/// A cell named by a line, with its `stableHash`, its shard and its `CellTable.hash`, each worked out once.
struct RoutedCell {
    let key: CellKey
    let stable: UInt64
    let shard: Int
    let hash: UInt64

    /// `key`, whose `stableHash` the caller has.
    init(_ key: CellKey, stable: UInt64, _ router: ShardRouter) {
        self.key = key
        self.stable = stable
        shard = router.shard(forStableHash: stable)
        hash = CellTable.hash(stable: stable)
    }
}

extension ShardState {
    /// The cell `key` as a `GatheredView` keeps it: its figures and where they are, with its hashes.
    /// The table is read in place (`positionInPlace`): read as a value, it was copied, a retain of
    /// each of its arrays per line of a reservation across shards, on lines the other core writes too.
    @inline(__always) func gathered(_ key: CellKey, stable: UInt64, hash: UInt64) -> GatheredCell {
        let position = cells.positionInPlace(of: key, hash: hash)
        return (key, position.map { cells[position: $0].state } ?? .empty, stable, position)
    }
}

extension Engine {
    /// Runs `body` holding the locks of the shards in `mask`, taken in ascending order. Its result
    /// is put where this returns it from, not returned through each shard's hold: a commit (384
    /// bytes) was copied out of every level, three or more for a reservation across shards.
    func holdingShards<R>(_ mask: UInt64, _ body: () -> R) -> R {
        var result: R?
        holdEach(mask) { result = body() }
        return result.take()!
    }

    /// `holdingShards` for a body that leaves its result where its caller reads it.
    private func holdEach(_ mask: UInt64, _ body: () -> Void) {
        guard mask != 0 else { return body() }
        withShard(mask.trailingZeroBitCount) { $0.holding { holdEach(mask & (mask &- 1), body) } }
    }

    /// Reads what the command needs from held shards: `cells` (with their `stableHash`), and
    /// reservation `id` with the cells of its lines (its home is the lowest shard, so it is read
    /// first). Each wanted cell is hashed once.
    private func gather(_ mask: UInt64, cells: [(key: CellKey, stable: UInt64)], reservation id: String?) -> GatheredView {
        // Every shard keeps the same copy of the catalog; the lowest one's is read.
        var view = GatheredView(catalog: shards[mask.trailingZeroBitCount].withHeldState { $0.heldCatalog })
        view.cells.reserveCapacity(cells.count)
        var wanted = cells
        for s in mask.setBitIndexes {
            shards[s].withHeldState { state in
                if let id, view.reservation == nil, let r = state.reservation(id) {
                    view.reservation = r
                    wanted += r.lines.lazy.map { (key: $0.cell, stable: $0.cell.stableHash) }
                }
                for (key, stable) in wanted where router.shard(forStableHash: stable) == s && !view.cells.contains(where: { $0.key == key }) {
                    view.cells.append(state.gathered(key, stable: stable, hash: CellTable.hash(stable: stable)))
                }
            }
        }
        return view
    }

    /// Logs and numbers the commit's entries and applies each held shard's part. When the log refuses
    /// it, nothing is applied. No shard hashes the entries' cells again: the gathered cells carry their
    /// hashes.
    private func commitHeld(_ commit: inout Commit, mask: UInt64, view: GatheredView) throws(WALIOError) {
        try ledger.append(&commit, lane: mask.trailingZeroBitCount) { LowStockAlert.alerts(for: $0, in: view) }
        if let w = commit.warehouse { catalog.withLock { $0.apply(w) } }
        if let p = commit.policy { catalog.withLock { $0.apply(p) } }
        let committed = commit
        for s in mask.setBitIndexes {
            shards[s].withHeldState { $0.apply(committed, gathered: view) }
        }
    }

    /// Performs `command` holding every shard in `mask`. Returns nil, changing nothing, when the
    /// caller's plan is stale: the catalog changed since `catalogVersion`, or `expected` no longer
    /// describes the reservation.
    func performHoldingShards(
        _ command: Command, mask: UInt64, cells: [CellKey], expected: ExpectedReservation?, catalogVersion: UInt64?, now: Timestamp,
        actor: String
    ) -> Performed? {
        // Each cell is hashed once, and its slot asked for, before any shard is held: the misses
        // overlap, and the holds are shorter.
        let routed = cells.map { (key: $0, stable: $0.stableHash) }
        for (_, stable) in routed { shards[router.shard(forStableHash: stable)].prefetch(cellHash: CellTable.hash(stable: stable)) }
        return holdingShards(mask) { () -> Performed? in
            let view = gather(mask, cells: routed, reservation: expected?.id)
            if let v = catalogVersion, v != view.catalog.with({ $0.version }) { return nil }
            if let expected, !expected.matches(view.reservation(expected.id), router) { return nil }
            // The decision is consumed as the commit is bound from it: a decision kept alive beside it
            // would share its entry array, and numbering the entries would copy that array.
            let decision = Rules.decide(command, in: view, now: now, actor: actor, settings: settings)
            switch consume decision {
            case .commit(var commit):
                do throws(WALIOError) {
                    try commitHeld(&commit, mask: mask, view: view)
                } catch {
                    return .refused(.writesStopped(error))
                }
                return .commit(commit)
            case .unchanged(let reply): return .unchanged(reply)
            case .refused(let refusal): return .refused(refusal)
            }
        }
    }

    /// A new reservation whose id the caller has claimed and whose every line names its warehouse, its
    /// lines' cells (`cells`, routed by the caller) in the shards of `mask`, more than one. The rules
    /// decide it as they decide any reservation; what `performHoldingShards` does around them is
    /// narrowed to what such a reservation needs: each named cell is looked up once, in its own
    /// shard, where the general gathering tests every wanted cell in every held shard and reads the
    /// reservation; and each entry is applied at the position its cell was read from, where the
    /// general commit has every shard test every entry and hash its cell again. Lines naming one cell
    /// twice, which the rules merge, take the general path.
    func reserveAcrossShards(
        _ request: ReserveRequest, hashedID: HashedID, cells: UnsafeBufferPointer<RoutedCell>, mask: UInt64, now: Timestamp, actor: String
    ) -> Performed {
        let namedTwice = cells.indices.dropFirst().contains { i in cells[..<i].contains { $0.hash == cells[i].hash && $0.key == cells[i].key } }
        if namedTwice {
            return performHoldingShards(.reserve(request), mask: mask, cells: cells.map(\.key), expected: nil, catalogVersion: nil, now: now, actor: actor)!
        }
        // Each slot is asked for before any shard is held (the cells', and where the reservation's
        // entry goes in its home shard's table): the misses overlap, and the holds are shorter.
        let home = mask.trailingZeroBitCount
        for c in cells { withShard(c.shard) { $0.prefetch(cellHash: c.hash) } }
        withShard(home) { $0.prefetch(idHash: hashedID.hash) }
        let settings = self.settings
        // What does not depend on the shards' state is made before they are held: the lists the
        // decision fills. Made while holding three shards, those allocations lengthened the hold that
        // other reservations wait for. The fingerprint takes the request's lines as they are: its
        // lines are a multiset, and a reservation of distinct cells has the request's lines for its
        // own, so it keeps no copy of them and its fingerprint is read back from its own lines (in
        // their canonical order). A sorted copy was an allocation and a sort per reservation, and kept
        // beside the reservation's lines whenever the request did not list them in that order.
        let fingerprint = ReserveFingerprint(
            lines: request.lines, ttl: request.ttl, customer: request.customer, strategy: request.strategy ?? settings.defaultStrategy)
        // And the box the reservation is kept in: a reservation of several lines is kept whole, and
        // its box, made inside the hold, was an allocation (at times a call to the kernel to grow
        // the heap) that the other reservations waited for. A refused reservation lets it go unused.
        let box = Boxed(Reservation.placeholder)
        var lines: [ReservationLine] = []
        var entries: [LedgerEntry] = []
        lines.reserveCapacity(cells.count)
        // No list of entries when the ledger will keep them from their figures (`reserveGatheredBare`;
        // should someone subscribe before the shards are held, the list grows in the hold).
        if !ledger.keepsEntriesBare { entries.reserveCapacity(cells.count) }
        // Moved into one optional and taken out of it inside the hold, so that each list keeps one
        // reference to its storage: a list copied in (or left in a variable) kept a second one, and
        // its first append copied it while the shards were held (the allocation test counts this).
        var made = Optional((consume lines, consume entries))
        // The cells' figures and places go in room on the stack (`RoomView`), in the lines' order.
        return withUnsafeTemporaryAllocation(of: GatheredCell.self, capacity: cells.count) { room in
            holdingShards(mask) { () -> Performed in
                let (lines, entries) = made.take()!
                // Each cell's entry is asked for before the first is read, through its index slot (asked
                // for before the shards were held): read one after the other, the entries' misses did not
                // overlap, and the shards were held through each.
                for c in cells { withShard(c.shard) { shard in shard.withHeldState { $0.cells.prefetchEntry(hash: c.hash) } } }
                // An index loop: a debug build's iterators allocate (the allocation test counts them).
                var i = 0
                while i < cells.count {
                    let (c, place) = (cells[i], room.baseAddress! + i)
                    withShard(c.shard) { shard in
                        shard.withHeldState { place.initialize(to: $0.gathered(c.key, stable: c.stable, hash: c.hash)) }
                    }
                    i += 1
                }
                defer { _ = room.baseAddress!.deinitialize(count: cells.count) }
                // Every shard keeps the same copy of the catalog; the home's is read.
                let view = RoomView(cells: room, catalog: withShard(home) { $0.withHeldState { $0.heldCatalog } })
                return reserveGathered(
                    request, hashedID: hashedID, cells: cells, view: view, home: home, fingerprint: fingerprint, box: box, lines: lines,
                    entries: entries, now: now, actor: actor, settings: settings)
            }
        }
    }

    /// `reserveAcrossShards`, holding its shards, its cells gathered into `view`: decides, logs and
    /// applies the reservation.
    private func reserveGathered(
        _ request: ReserveRequest, hashedID: HashedID, cells: UnsafeBufferPointer<RoutedCell>, view: RoomView, home: Int,
        fingerprint: ReserveFingerprint, box: Boxed<Reservation>, lines: consuming [ReservationLine], entries: consuming [LedgerEntry],
        now: Timestamp, actor: String, settings: RuleSettings
    ) -> Performed {
        if ledger.keepsEntriesBare {
            return reserveGatheredBare(
                request, hashedID: hashedID, cells: cells, view: view, home: home, fingerprint: fingerprint, box: box, lines: lines, now: now,
                actor: actor, settings: settings)
        }
        let decision = Rules.reserveDistinctCells(
            request, fingerprint: fingerprint, in: view, now: now, actor: actor, lines: consume lines, entries: consume entries)
        assert(decision == Rules.reserve(request, in: view, now: now, actor: actor, settings: settings), "the general rules decide the same")
        // Consumed as the commit is bound from it, so that numbering the entries does not copy them.
        switch consume decision {
        case .commit(var commit):
            do throws(WALIOError) {
                try ledger.append(&commit, lane: home) { LowStockAlert.alerts(for: $0, in: view) }
            } catch {
                return .refused(.writesStopped(error))
            }
            // One entry per line, in the lines' order (`Rules.reserve` merges nothing here). A
            // cell's position is its own for good, so the first line's new cell does not move the
            // next one's.
            // Each entry is read where the commit keeps it: taken out of the array, each (about 150
            // bytes and four names) was copied and retained, inside the hold.
            commit.entries.withUnsafeBufferPointer { entries in
                for i in entries.indices {
                    let (c, position) = (cells[i], view.position(ofLine: i))
                    assert(entries[i].cell == c.key && entries[i].type == .reserve, "entry \(i) reserves line \(i)'s cell")
                    _ = withShard(c.shard) { shard in
                        shard.withHeldState {
                            $0.apply(entries[i], of: c.key, hash: c.hash, at: position, backorderAllowed: view.policy(of: c.key.variant).backorder)
                        }
                    }
                }
            }
            withShard(home) { shard in
                shard.withHeldState { state in
                    state.hashedID = hashedID
                    defer { state.hashedID = nil }
                    assert(commit.reservation!.fingerprintLinesAreOwnLines, "a reservation of distinct cells keeps no copy of its request's lines")
                    state.store(commit.reservation!, in: box)
                }
            }
            return .commit(commit)
        case .unchanged(let reply): return .unchanged(reply)
        case .refused(let refusal): return .refused(refusal)
        }
    }

    /// `reserveGathered` when the ledger keeps entries bare (no log, no subscribers): the checks and
    /// holds `Rules.reserveDistinctCells` makes (`Rules.holdDistinctCells`), and the changes its commit
    /// would make — the ledger keeps one entry per line from the line's figures (`Ledger.appendBare`),
    /// each shard applies its cells' figures (`ShardState.applyReservation`) and the home shard keeps
    /// the reservation — without building the entries, their list or the commit, which with their
    /// names and copies on the way back were about a quarter of a reservation across shards. Debug
    /// builds check it against the general rules.
    private func reserveGatheredBare(
        _ request: ReserveRequest, hashedID: HashedID, cells: UnsafeBufferPointer<RoutedCell>, view: RoomView, home: Int,
        fingerprint: ReserveFingerprint, box: Boxed<Reservation>, lines: consuming [ReservationLine], now: Timestamp, actor: String,
        settings: RuleSettings
    ) -> Performed {
        // What the general rules decide (debug builds' checks).
        func general() -> Decision { Rules.reserve(request, in: view, now: now, actor: actor, settings: settings) }
        var lines = lines
        // Each line's figures after its hold, in the lines' order, on the stack.
        return withUnsafeTemporaryAllocation(of: CellState.self, capacity: cells.count) { afters -> Performed in
            let refusal = Rules.holdDistinctCells(request, in: view) { i, _, line, _, after in
                lines.append(line)
                afters.initializeElement(at: i, to: after)
            }
            if let refusal {
                assert(general() == .refused(refusal), "the general rules refuse the same")
                return .refused(refusal)
            }
            let reservation = Reservation(new: request, lines: lines, fingerprint: fingerprint, at: now)
            assert(
                {
                    guard case .commit(let c) = general(), c.reservation == reservation, c.entries.count == cells.count else { return false }
                    return c.entries.indices.allSatisfy { k in
                        c.entries[k].cell == cells[k].key && c.entries[k].type == .reserve && c.entries[k].before == view.cells[k].state
                            && c.entries[k].after == afters[k]
                    }
                }(), "the general rules make the same reservation and entries")
            // Line k's cell's figures before its hold, read in place (not a copy of the view's cell, names and all).
            func stateBefore(_ k: Int) -> CellState { (view.cells.baseAddress! + k).pointee.state }
            ledger.appendBare(reservation: request.id, time: now, actor: actor, count: cells.count) { k in (cells[k].key, stateBefore(k), afters[k]) }
            // A cell's position is its own for good, so the first line's new cell does not move the next one's.
            var k = 0
            while k < cells.count {
                let (c, position, before, after) = (cells[k], view.position(ofLine: k), stateBefore(k), afters[k])
                _ = withShard(c.shard) { shard in
                    shard.withHeldState {
                        $0.applyReservation(
                            of: c.key, before: before, after: after, hash: c.hash, at: position, backorderAllowed: view.policy(of: c.key.variant).backorder)
                    }
                }
                k += 1
            }
            _ = afters.baseAddress!.deinitialize(count: cells.count)
            withShard(home) { shard in
                shard.withHeldState { state in
                    state.hashedID = hashedID
                    defer { state.hashedID = nil }
                    assert(reservation.fingerprintLinesAreOwnLines, "a reservation of distinct cells keeps no copy of its request's lines")
                    state.store(reservation, in: box)
                }
            }
            return .reservedWhole(box)
        }
    }

    /// Expires a reservation whose lines span the shards in `mask`.
    func expireHoldingShards(_ id: String, mask: UInt64, deadline: Timestamp) -> ExpiryFinding {
        holdingShards(mask) {
            let view = gather(mask, cells: [], reservation: id)
            guard var commit = Rules.expire(id, deadline: deadline, in: view, actor: Self.engineActor) else {
                guard let r = view.reservation, let closedAt = r.closedAt else { return .nothing }
                return .closed(createdAt: r.createdAt, ttl: r.requestTTL, closedAt: closedAt)
            }
            guard (try? commitHeld(&commit, mask: mask, view: view)) != nil else { return .nothing }
            return .expired(commit)
        }
    }
}
