// The state one shard owns: its cells, the reservations whose home it is, a copy of the catalog and
// the counters behind the KPIs. The rules read it as a `StockView`; it changes by a commit, whether
// just decided or replayed from the log (`apply`), or by what a commit of a new one-line reservation
// would change: applied from its entry's figures (`Shard.reserveOneLine`, `applyReservation`), or from
// a compact log record's (`replay`), neither building the entry: the same changes, in the same order. It is a class that never
// leaves its actor, so the rules borrow it instead of copying five tables per request; whatever
// leaves the actor is a `ShardSnapshot` value.

import StockpileCore

/// A cell with what the engine tracks beside its figures.
struct CellSlot: Sendable {
    var state: CellState
    /// Set when available went below zero for a reason invariant 3 allows: a physical loss (adjust,
    /// set, count, import lowering on_hand) or a reservation of a variant that allows backorder. Cleared as
    /// soon as available is back at zero or above. `verify` reports a negative available without it.
    var belowZeroAllowed = false

    /// `backorderAllowed`: whether the variant may be reserved below zero, asked only when a
    /// reservation takes the cell below zero (the one case it decides), so that a caller's policy
    /// lookup is skipped for every other change.
    mutating func record(_ e: LedgerEntry, backorderAllowed: @autoclosure () -> Bool) {
        assert(state == e.before, "entry \(e.seq) does not follow from the cell's figures")
        record(e.type, deltaOnHand: e.deltaOnHand, before: e.before, after: e.after, backorderAllowed: backorderAllowed())
    }

    /// `record(_:backorderAllowed:)` given what the entry changes rather than the entry: a replayed
    /// reservation record has the figures without building its entry.
    @inline(__always)
    mutating func record(
        _ type: EntryType, deltaOnHand: Quantity, before: CellState, after: CellState, backorderAllowed: @autoclosure () -> Bool
    ) {
        state = after
        if after.available >= .zero {
            belowZeroAllowed = false
        } else if after.available < before.available {
            // Stock counted or loaded from outside (set, count, import) is what is physically there:
            // lowering it below what is reserved is a loss, reported as a shortfall, never hidden.
            let physicalLoss = deltaOnHand < .zero && (type == .adjust || type == .set || type == .count || type == .import)
            let backorder = type == .reserve && backorderAllowed()
            if physicalLoss || backorder { belowZeroAllowed = true }
        }
    }
}


/// A box: a reference to a value that is never changed in place once the box is shared. It is made
/// with its value, or made ahead with a placeholder and filled once (`fill`) before it is shared.
final class Boxed<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` changes only through `fill`, before the box is stored where another thread
    // can reach it (a shard's table, under the shard's lock); after that it is only read.
    private(set) var value: Value
    init(_ value: Value) { self.value = value }

    /// Puts `value` in a box made ahead for it and not shared yet: a caller that will keep a value
    /// while holding a lock makes its box before, so that the hold allocates nothing.
    func fill(_ value: consuming Value) {
        self.value = value
    }
}

extension Reservation {
    /// What a box made ahead of a hold keeps until it is filled: a value whose making allocates
    /// nothing (no lines, an empty id).
    static var placeholder: Reservation {
        Reservation(
            id: "", lines: [], status: .released, expiresAt: nil, customer: nil, createdAt: Timestamp(milliseconds: 0), closedAt: nil,
            endedByExpiry: false, requestTTL: nil, requestCustomer: nil, strategy: .priority)
    }
}

/// A copy of a shard's state at one moment, for verification.
struct ShardSnapshot: Sendable {
    let index: Int
    let cells: CellTable
    let reservations: ReservationTable
    let catalog: Catalog

    /// Every reservation it keeps.
    var allReservations: ReservationTable.All { reservations.all(cells: cells) }

    func contains(reservation id: String) -> Bool { reservations.contains(id, hash: id.hashValue) }
}

/// What a new reservation's ledger entry does to a shard's `cells` and `counters`, given by the cell's
/// figures `before` and `after` it rather than by the entry (which neither the one-line path nor replay
/// builds): the cell (`hash`: its `CellTable.hash`; at `position` when the caller has it, added
/// otherwise) takes the figures, and the counters count the reservation. Returns the cell's position.
func applyReservationFigures(
    cells: inout CellTable, counters: inout StockCounters, of cell: CellKey, hash: UInt64, at position: Int?, before: CellState,
    after: CellState, backorderAllowed: @autoclosure () -> Bool
) -> Int {
    assert(hash == CellTable.hash(cell), "the cell's hash")
    let p = position ?? cells.position(of: cell, hash: hash, default: CellSlot(state: .empty))
    assert(cells[position: p].state == before, "a reservation's entry that does not follow from its cell's figures")
    cells[position: p].record(.reserve, deltaOnHand: after.onHand - before.onHand, before: before, after: after, backorderAllowed: backorderAllowed())
    counters.countReserve(deltaReserved: after.reserved - before.reserved, before: before, after: after)
    return p
}

final class ShardState: StockView {
    let index: Int
    let router: ShardRouter
    // The tables and counters are read and changed only holding the shard's lock, so two accesses
    // never overlap but by nesting one in the other on one thread: that is what the checks of
    // exclusive access catch, and debug builds (the tests) keep them. An optimised build leaves them
    // out: every access to these properties called into the runtime to check it (`swift_beginAccess`
    // and `swift_endAccess`, about 4% of a one-line reservation's time).
    #if DEBUG
    var cells = CellTable()
    /// Kept compact (`ReservationTable`): a one-line reservation names its cell by its position in `cells`.
    var reservations = ReservationTable()
    var counters = StockCounters()
    /// The id of the request being decided, with its hash, while the shard decides it (`Shard.execute`,
    /// `reserveOneLine`, `executeRun`).
    var hashedID: HashedID?
    #else
    @exclusivity(unchecked) var cells = CellTable()
    @exclusivity(unchecked) var reservations = ReservationTable()
    @exclusivity(unchecked) var counters = StockCounters()
    @exclusivity(unchecked) var hashedID: HashedID?
    #endif
    /// The shard's copy of the catalog, in a box that is replaced, never changed. A stored `Catalog`
    /// was copied for every lookup, which retained its three tables, shared by every shard's copy, so
    /// that each reservation wrote lines the other cores wrote too. The box is read without a retain
    /// (`catalogRef`, kept alive by `catalogBox`), and its catalog, a constant, is borrowed.
    private var catalogBox = CatalogBox(Catalog())
    private var catalogRef: Unmanaged<CatalogBox>
    var catalog: Catalog {
        get { catalogBox.catalog }
        set {
            catalogBox = CatalogBox(newValue)
            catalogRef = Unmanaged.passUnretained(catalogBox)
        }
    }

    fileprivate final class CatalogBox: Sendable {
        let catalog: Catalog
        init(_ catalog: Catalog) { self.catalog = catalog }
    }

    /// The shard's copy of the catalog, as a view of held shards reads it (`GatheredView`).
    var heldCatalog: HeldCatalog { HeldCatalog(box: catalogBox) }

    /// Runs `body` with the shard's catalog, borrowed. `body` must not set the shard's catalog: the box
    /// it reads would be let go under it (every caller is a lookup).
    @inline(__always) private func withCatalog<R>(_ body: (borrowing Catalog) -> R) -> R {
        catalogRef._withUnsafeGuaranteedRef { body($0.catalog) }
    }

    /// The hash of `id` for the reservation table: the request's, when it is that id.
    @inline(__always) func hash(of id: String) -> Int {
        if let h = hashedID, h.id == id { return h.hash }
        return id.hashValue
    }

    init(index: Int, router: ShardRouter) {
        self.index = index
        self.router = router
        catalogRef = Unmanaged.passUnretained(catalogBox)
    }

    var snapshot: ShardSnapshot {
        ShardSnapshot(index: index, cells: cells, reservations: reservations, catalog: catalog)
    }

    // MARK: StockView

    func cellState(_ key: CellKey) -> CellState { cells[key]?.state ?? .empty }
    func warehouse(_ code: String) -> Warehouse? { withCatalog { $0.warehouse(code) } }
    func policy(of variant: String) -> VariantPolicy { withCatalog { $0.policy(of: variant) } }
    var warehousesInPlacementOrder: [Warehouse] { withCatalog { $0.warehousesInPlacementOrder } }
    /// `Catalog.backorder(of:)` of the shard's copy.
    func backorder(of variant: String) -> Bool { withCatalog { $0.backorder(of: variant) } }
    /// The version of the shard's copy of the catalog.
    var catalogVersion: UInt64 { withCatalog { $0.version } }
    /// Both tables are read in place (`storedInPlace`, `keyInPlace`): read as values of this class,
    /// each was copied, a retain of each of its arrays, on every release, confirmation, fulfilment or
    /// expiry that read a reservation.
    func reservation(_ id: String) -> Reservation? {
        // The cell table is read only for a reservation that is there.
        guard let stored = reservations.storedInPlace(id, hash: hash(of: id)) else { return nil }
        return stored.reservation(id: id) { cells.keyInPlace(at: $0) }
    }

    /// When reservation `id` was made, its request's TTL and when it closed (nil while open), read
    /// without building the reservation; nil when the shard does not keep it.
    func retentionTimes(of id: String) -> (createdAt: Timestamp, ttl: Duration?, closedAt: Timestamp?)? {
        reservations.storedInPlace(id, hash: hash(of: id))?.retentionTimes
    }

    /// The shards of reservation `id`'s lines (`ShardRouter.mask`), read without building the
    /// reservation; nil when the shard does not keep it. A compact one's line is on a cell of this shard.
    func linesMask(of id: String) -> UInt64? {
        guard let stored = reservations.storedInPlace(id, hash: hash(of: id)) else { return nil }
        if let whole = stored.whole { return router.mask(of: whole.value.lines.lazy.map(\.cell)) }
        return 1 << UInt64(index)
    }

    /// Every reservation this shard keeps.
    var allReservations: ReservationTable.All { reservations.all(cells: cells) }

    /// Keeps `r` as it is now (a snapshot's reservation, or one a commit changed). `cellPosition`: the
    /// position of its line's cell, for a one-line reservation, when the caller has it.
    func store(_ r: Reservation, cellPosition: Int? = nil) {
        var position = cellPosition
        if position == nil, r.lines.count == 1 {
            let cell = r.lines[0].cell
            position = cells.positionInPlace(of: cell, hash: CellTable.hash(cell))
        }
        reservations.store(r, hash: hash(of: r.id), cellPosition: position)
        assert(reservation(r.id) == r, "reservation \(r.id) reads back as it was stored")
    }

    /// Keeps `r`, a reservation of several lines (kept whole), in `box`, made before the shard was
    /// held and not shared yet.
    func store(_ r: consuming Reservation, in box: Boxed<Reservation>) {
        precondition(r.lines.count > 1, "a reservation of one line may be kept compact")
        let id = r.id
        box.fill(r)
        reservations.store(whole: box, id: id, hash: hash(of: id))
        assert(reservation(id) == box.value, "reservation \(id) reads back as it was stored")
    }

    /// Keeps a one-line reservation (`cellPosition`: its cell's place in `cells`) without a line array
    /// (`ReservationTable.store`).
    func store(_ r: borrowing OneLineReservation, cellPosition: Int) {
        reservations.store(r, hash: hash(of: r.id), cellPosition: cellPosition)
        assert(reservation(r.id) == r.reservation, "reservation \(r.id) reads back as it was stored")
    }

    // MARK: Change

    /// A commit read back from the log, applied as `apply` does; `hashedID` is its reservation id with
    /// its hash.
    func replay(_ commit: Commit, ownsAll: Bool = false, hashedID: HashedID?) {
        let kept = self.hashedID
        if let hashedID { self.hashedID = hashedID }
        defer { self.hashedID = kept }
        apply(commit, ownsAll: ownsAll)
    }

    /// The shard of `r`'s home (`ShardRouter.home`), from the gathered cells' hashes when given.
    private func home(of r: Reservation, gathered: GatheredView?) -> Int {
        guard let gathered else { return router.home(of: r) }
        return r.lines.lazy.map { self.router.shard(forStableHash: gathered.stableHash(of: $0.cell)) }.min() ?? 0
    }

    /// Applies ledger entry `e` to its cell `cell` (whose `CellTable.hash` is `hash`; at `position` when
    /// the caller found it already), added when the shard has no figures for it yet, and to the
    /// counters; returns the cell's position. `backorderAllowed`: whether the entry is a reservation of
    /// a variant that may go below zero, asked only when that can matter (`CellSlot.record`). Every
    /// change of a cell goes through here but a new one-line reservation's, live or replayed, which
    /// makes the same change from the cell's figures without an entry (`applyReservationFigures`).
    @discardableResult
    func apply(_ e: LedgerEntry, of cell: CellKey, hash: UInt64, at position: Int? = nil, backorderAllowed: @autoclosure () -> Bool) -> Int {
        assert(hash == CellTable.hash(cell) && cell == e.cell, "the entry's cell, and its hash")
        let p = position ?? cells.position(of: cell, hash: hash, default: CellSlot(state: .empty))
        cells[position: p].record(e, backorderAllowed: backorderAllowed())
        counters.count(e)
        return p
    }

    /// `apply(_:of:hash:at:backorderAllowed:)` for a new reservation's entry, given by its figures
    /// (`before` and `after`), without the entry: what the one-line path keeps in the ledger instead
    /// of building one (`Ledger.append(reservation:…)`).
    func applyReservation(
        of cell: CellKey, before: CellState, after: CellState, hash: UInt64, at position: Int? = nil, backorderAllowed: @autoclosure () -> Bool
    ) -> Int {
        applyReservationFigures(
            cells: &cells, counters: &counters, of: cell, hash: hash, at: position, before: before, after: after, backorderAllowed: backorderAllowed())
    }

    /// Applies the part of `commit` this shard owns: the cells it owns, the reservation if this is its
    /// home, and any catalog change (every shard keeps a copy). `ownsAll` skips the ownership test
    /// for a commit this shard decided alone.
    /// `cellHashes`: each entry's `CellTable.hash` (`cellHashes[i]` is entry i's), when the caller has
    /// them (a bulk import, which hashed each cell for its own lookup); `gathered`: the view a
    /// multi-shard operation decided with, whose cells carry their `stableHash`: either way no name is
    /// hashed again.
    func apply(_ commit: Commit, ownsAll: Bool = false, cellHashes: [UInt64]? = nil, gathered: GatheredView? = nil) {
        if commit.isReset {
            // Every shard applies a reset (its commit names the catalog): back to a new engine's state.
            cells.removeAll()
            reservations.removeAll()
            counters = StockCounters()
            catalog = Catalog()
        }
        precondition(cellHashes == nil || cellHashes!.count == commit.entries.count, "one hash per entry")
        // The position of the last cell changed, which is a one-line reservation's own.
        var lastCell: (entry: Int, position: Int)?
        for (i, e) in commit.entries.enumerated() where e.touchesCell {
            let stable = gathered?.stableHash(of: e.cell)
            guard ownsAll || router.shard(forStableHash: stable ?? e.cell.stableHash) == index else { continue }
            // With the hashes given (a bulk import), the slot of the entry a few ahead is asked for now.
            if let cellHashes, i + 16 < cellHashes.count { cells.prefetch(hash: cellHashes[i + 16]) }
            let cell = e.cell
            let hash = cellHashes?[i] ?? stable.map { CellTable.hash(stable: $0) } ?? CellTable.hash(cell)
            let p = apply(e, of: cell, hash: hash, backorderAllowed: e.type == .reserve && backorder(of: e.variant))
            lastCell = (i, p)
        }
        if let r = commit.reservation, ownsAll || home(of: r, gathered: gathered) == index {
            var position: Int?
            if let (i, p) = lastCell, r.lines.count == 1 {
                let (e, line) = (commit.entries[i], r.lines[0])
                if e.variant == line.variant && e.warehouse == line.warehouse { position = p }
            }
            store(r, cellPosition: position)
        }
        if let w = commit.warehouse { catalog.apply(w) }
        if let p = commit.policy { catalog.apply(p) }
    }
}

/// A shard's copy of the catalog, as a view of held shards reads it: the shard's box, whose catalog
/// is a constant (a change of catalog makes a new box), so a view keeps what it read even past a
/// commit it applies that changes the catalog. A view that copied the catalog retained and released
/// each of its three tables, which every shard's copy shares, so both cores wrote their counts for
/// every operation across shards; the box is the shard's own, one count to write.
struct HeldCatalog {
    fileprivate let box: ShardState.CatalogBox

    /// Runs `body` with the catalog, borrowed.
    @inline(__always) func with<R>(_ body: (borrowing Catalog) -> R) -> R { body(box.catalog) }
}
