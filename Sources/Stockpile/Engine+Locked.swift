// Operations that span shards. The operation holds every shard it touches, taking them in ascending
// shard order; since every such operation takes shards in the same global order, no two can each wait
// for a shard the other holds, so there is no deadlock. While holding, it reads the figures, decides
// with the same rules a single shard uses, numbers its entries in the ledger (consecutively, since
// that is one append), applies each shard's part and lets each shard go. No other mutation can touch
// those cells in between, so the check and the change are one atomic step and nothing is oversold.
// A refused operation lets the shards go without changing anything.

import StockpileCore

/// The figures gathered from held shards, as the rules read them.
struct GatheredView: StockView {
    var cells: [CellKey: CellState] = [:]
    var reservations: [String: Reservation] = [:]
    var catalog = Catalog()

    func cellState(_ key: CellKey) -> CellState {
        guard let s = cells[key] else {
            assertionFailure("the rules read cell \(key) that the operation did not gather")
            return .empty
        }
        return s
    }
    func warehouse(_ code: String) -> Warehouse? { catalog.warehouses[code] }
    func policy(of variant: String) -> VariantPolicy { catalog.policy(of: variant) }
    var warehousesInPlacementOrder: [Warehouse] { catalog.warehousesInPlacementOrder }
    func reservation(_ id: String) -> Reservation? { reservations[id] }
}

extension Engine {
    /// Holds the shards in `mask` in ascending order and gathers what the command reads: `cells`, and
    /// reservation `id` with the cells of its lines (its home is the lowest shard, so it is read first).
    private func hold(_ mask: UInt64, token: UInt64, cells: [CellKey], reservation id: String?) async -> GatheredView {
        var view = GatheredView()
        var wanted = cells
        var first = true
        for s in mask.setBitIndexes {
            let reading = await shards[s].acquireAndRead(token, cells: wanted, reservation: id)
            if first {
                view.catalog = reading.catalog
                first = false
            }
            if let r = reading.reservation {
                view.reservations[r.id] = r
                wanted += r.lines.map(\.cell)
            }
            view.cells.merge(reading.cells) { a, _ in a }
        }
        return view
    }

    private func letGo(_ mask: UInt64, token: UInt64, applying commit: Commit?) async {
        for s in mask.setBitIndexes {
            await shards[s].applyAndRelease(token, commit)
        }
    }

    /// Performs `command` holding every shard in `mask`. Returns nil when `catalogVersion` is given
    /// and the catalog changed since the caller planned with it.
    func performHoldingShards(
        _ command: Command, mask: UInt64, cells: [CellKey], reservation id: String?, catalogVersion: UInt64?, now: Timestamp,
        actor: String
    ) async -> Performed? {
        let token = makeToken()
        let view = await hold(mask, token: token, cells: cells, reservation: id)
        if let v = catalogVersion, v != view.catalog.version {
            await letGo(mask, token: token, applying: nil)
            return nil
        }
        let decision = Rules.decide(command, in: view, now: now, actor: actor, settings: settings)
        guard case .commit(var commit) = decision else {
            await letGo(mask, token: token, applying: nil)
            return Performed(decision)
        }
        ledger.append(&commit, alerts: LowStockAlert.alerts(for: commit, in: view))
        if let w = commit.warehouse { catalog.withLock { $0.apply(w) } }
        if let p = commit.policy { catalog.withLock { $0.apply(p) } }
        await letGo(mask, token: token, applying: commit)
        return .committed(commit)
    }

    /// Expires a reservation whose lines span the shards in `mask`.
    func expireHoldingShards(_ id: String, mask: UInt64, deadline: Timestamp) async -> Commit? {
        let token = makeToken()
        let view = await hold(mask, token: token, cells: [], reservation: id)
        guard var commit = Rules.expire(id, deadline: deadline, in: view, actor: Self.engineActor) else {
            await letGo(mask, token: token, applying: nil)
            return nil
        }
        ledger.append(&commit, alerts: LowStockAlert.alerts(for: commit, in: view))
        await letGo(mask, token: token, applying: commit)
        return commit
    }
}
