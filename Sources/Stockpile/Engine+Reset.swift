// RESET (SPEC §6): a test deployment starts over without a new data directory. It is an ordinary
// logged commit — one ledger entry of type `reset` that every shard applies while all are held — so
// it is atomic, durable like any change, replayed in its place, and the ledger stays gapless: whoever
// replays the ledger sees where everything went back to zero. The server allows it only when started
// with --allow-reset; the embedded API leaves that choice to the program that embeds the engine.

import StockpileCore
import StockpileWAL

extension Engine {
    /// Empties the engine: no stock, no reservations, no keys, warehouse MAIN only, default
    /// policies, KPIs and refusal counts at zero. Sequence numbers go on from where they were, and
    /// the entries before the reset stay readable with EVENTS and HISTORY.
    /// - Returns: nil once the reset is durable; READONLY when the log has failed.
    public func reset(actor: String = "") async -> Refusal? {
        let now = await settleDueWork()
        let failure: WALIOError? = holdingShards(allShards) {
            // The commit names warehouse MAIN, so it goes to every shard and the catalogs start over alike.
            var commit = Commit(time: now, entries: [LedgerEntry(time: now, type: .reset, actor: actor)], warehouse: .main, replyShape: .warehouse)
            do throws(WALIOError) { try ledger.append(&commit, lane: 0) } catch { return error }
            for shard in shards { shard.withHeldState { $0.apply(commit, ownsAll: true) } }
            clearTablesForReset()
            catalog.withLock { $0.apply(.main) }
            return nil
        }
        if let failure { return .writesStopped(failure) }
        return await waitUntilDurable()
    }

    /// The engine's own tables after a reset: the directory of reservations, the keys, the catalog
    /// the router plans with, and the refusal counts. Due work left for forgotten names finds nothing.
    func clearTablesForReset() {
        directory.removeAllCommitted()
        keys.removeAllCommitted()
        catalog.withLock { $0 = Catalog() }
        refusals.resetAll()
    }
}
