// A shard actor owns a slice of the cells (by `ShardRouter`) and the reservations whose home it is.
// An operation on one shard is checked and applied in one synchronous stretch of the actor: no
// `await` between the check and the mutation. An operation spanning shards holds each of them (see
// `Engine+Locked.swift`); while a shard is held, its other mutations wait, its reads do not (they see
// the figures as they were before the held operation, which has not changed anything yet).

import StockpileCore

/// What a shard answers to a single-shard operation.
enum ShardResult: Sendable {
    case decided(Decision)
    /// The catalog changed since the caller planned which cells a `*` line may use: plan again.
    case catalogChanged
}

/// What a held shard reports to the operation holding it.
struct ShardReading: Sendable {
    var cells: [CellKey: CellState] = [:]
    var reservation: Reservation?
    var catalog: Catalog
}

actor Shard {
    var state: ShardState
    let ledger: Ledger
    /// The operation holding this shard, if any.
    private var holder: UInt64?
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(index: Int, router: ShardRouter, ledger: Ledger) {
        state = ShardState(index: index, router: router)
        self.ledger = ledger
    }

    private func waitUntilFree() async {
        while holder != nil {
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    /// Decides and applies `command`, which touches only this shard. `catalogVersion`, when given, is
    /// the catalog the caller planned placement with.
    func execute(_ command: Command, now: Timestamp, actor: String, settings: RuleSettings, catalogVersion: UInt64?) async -> ShardResult {
        if holder != nil { await waitUntilFree() }
        if let v = catalogVersion, v != state.catalog.version { return .catalogChanged }
        let decision = Rules.decide(command, in: state, now: now, actor: actor, settings: settings)
        guard case .commit(var commit) = decision else { return .decided(decision) }
        commitHere(&commit)
        return .decided(.commit(commit))
    }

    /// Expires reservation `id` if it still expires at `deadline`.
    func expire(_ id: String, deadline: Timestamp, actor: String) async -> Commit? {
        if holder != nil { await waitUntilFree() }
        guard var commit = Rules.expire(id, deadline: deadline, in: state, actor: actor) else { return nil }
        commitHere(&commit)
        return commit
    }

    private func commitHere(_ commit: inout Commit) {
        let alerts = LowStockAlert.alerts(for: commit, in: state)
        ledger.append(&commit, alerts: alerts)
        state.apply(commit, ownsAll: true)
    }

    /// Forgets a closed reservation whose retention has passed. Returns whether it did.
    func forget(_ id: String, closedBefore limit: Timestamp) async -> Bool {
        if holder != nil { await waitUntilFree() }
        guard let r = state.reservations[id]?.value, !r.isOpen, let closed = r.closedAt, closed <= limit else { return false }
        state.reservations[id] = nil
        return true
    }

    // MARK: Held by an operation spanning shards

    /// Holds this shard for `token` and reads `cells` (those this shard owns), reservation `id` if its
    /// home is here together with the cells of its lines owned here, and the catalog.
    func acquireAndRead(_ token: UInt64, cells: [CellKey], reservation id: String?) async -> ShardReading {
        await waitUntilFree()
        holder = token
        var reading = ShardReading(catalog: state.catalog)
        for key in cells where state.router.shard(for: key) == state.index {
            reading.cells[key] = state.cellState(key)
        }
        if let id, let r = state.reservations[id]?.value {
            reading.reservation = r
            for line in r.lines where state.router.shard(for: line.cell) == state.index {
                reading.cells[line.cell] = state.cellState(line.cell)
            }
        }
        return reading
    }

    /// Applies this shard's part of `commit` (if any) and lets the shard go.
    func applyAndRelease(_ token: UInt64, _ commit: Commit?) {
        precondition(holder == token, "shard released by an operation that does not hold it")
        if let commit { state.apply(commit) }
        holder = nil
        let w = waiters
        waiters.removeAll()
        for c in w { c.resume() }
    }

    // MARK: Reads

    func cellStates(_ keys: [CellKey]) -> [(CellKey, CellState)] {
        keys.compactMap { k in state.cells[k].map { (k, $0.state) } }
    }

    func reservation(_ id: String) -> Reservation? { state.reservations[id]?.value }

    /// A copy of everything, for verification and statistics.
    func snapshot() -> ShardState { state }
}
