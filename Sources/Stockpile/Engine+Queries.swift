// The queries of SPEC §2. A query creates nothing: a cell never used reads as zeros. One cell is read
// in one step of its shard, so it is always consistent; a variant's totals and STATS are assembled
// from the shards one after another, so under concurrent writes they may mix moments (each shard's
// part is consistent in itself).

import Dispatch
import StockpileCore
import StockpileWAL



extension Engine {
    /// Answers a query, then holds the answer back until everything it may show is durable (see
    /// `durable(_:)`). When the log has failed, what memory holds may include changes whose records
    /// never became durable: the answer then comes from `fallback` on the durable view (the state the
    /// log holds), so reads go on without showing an effect a restart would not bring back.
    private func readDurably<T: Sendable>(fallback: (Engine) async -> T, _ body: () async -> T) async -> T {
        let answer = await body()
        guard let log = ledger.log else { return answer }
        do {
            try await log.waitUntilAcknowledged(ledger.lastLSN)
            return answer
        } catch {
            return await fallback(durableView(after: error))
        }
    }

    private func checkedCell(_ variant: String, _ warehouse: String) -> Outcome<CellKey> {
        guard Identifiers.isValidVariant(variant) else { return .refused(.invalid("invalid variant id")) }
        guard let code = Identifiers.normalizedWarehouse(warehouse) else { return .refused(.invalid("invalid warehouse code")) }
        guard catalog.withLock({ $0.warehouses[code] != nil }) else { return .refused(.warehouseNotFound(code)) }
        return .ok(CellKey(variant: variant, warehouse: code))
    }

    private func checkedLimit(_ limit: Int?) -> Outcome<Int> {
        let n = limit ?? Limits.listCountDefault
        guard n >= 1 else { return .refused(.invalid("LIMIT must be at least 1")) }
        guard n <= Limits.listCountMax else { return .refused(.limit("LIMIT may not exceed \(Limits.listCountMax)")) }
        return .ok(n)
    }

    /// One cell. Cost: one hop to its shard.
    public func cell(variant: String, warehouse: String) async -> Outcome<CellRecord> {
        await readDurably(fallback: { await $0.cell(variant: variant, warehouse: warehouse) }) {
            _ = await settleDueWork()
            switch checkedCell(variant, warehouse) {
            case .refused(let r): return .refused(r)
            case .ok(let key):
                let state = shards[router.shard(for: key)].withState { $0.cellState(key) }
                return .ok(CellRecord(key: key, state: state))
            }
        }
    }

    /// A variant across warehouses, by warehouse code, with totals.
    public func stock(variant: String) async -> Outcome<VariantStock> {
        await readDurably(fallback: { await $0.stock(variant: variant) }) {
            _ = await settleDueWork()
            guard Identifiers.isValidVariant(variant) else { return .refused(.invalid("invalid variant id")) }
            let codes = catalog.withLock { $0.warehouses.keys.sorted() }
            var byShard: [Int: [CellKey]] = [:]
            for code in codes {
                let key = CellKey(variant: variant, warehouse: code)
                byShard[router.shard(for: key), default: []].append(key)
            }
            var cells: [CellRecord] = []
            for (s, keys) in byShard {
                for (key, state) in shards[s].withState({ $0.cellStates(keys) }) { cells.append(CellRecord(key: key, state: state)) }
            }
            cells.sort { $0.warehouse < $1.warehouse }
            let onHand = cells.reduce(Quantity.zero) { $0.addingSaturating($1.onHand) }
            let reserved = cells.reduce(Quantity.zero) { $0.addingSaturating($1.reserved) }
            return .ok(VariantStock(cells: cells, totals: CellRecord(variant: variant, warehouse: Identifiers.anyWarehouse, onHand: onHand, reserved: reserved)))
        }
    }

    /// A reservation with its lines and shipment status.
    public func reservation(_ id: String) async -> Outcome<ReservationRecord> {
        await readDurably(fallback: { await $0.reservation(id) }) {
            guard Identifiers.isValidReservationID(id) else { return .refused(.invalid("invalid reservation id")) }
            _ = await settleDueWork()
            // The shard of a slot is not asked first whether it keeps the id: reading it tells.
            guard let mask = await directory.locate(id, hash: id.hashValue), let r = shards[mask.trailingZeroBitCount].withState({ $0.reservation(id) }) else {
                return .refused(.reservationNotFound(id))
            }
            return .ok(ReservationRecord(r))
        }
    }

    /// Every cell ever used, by variant then warehouse: what `stockpile export` writes. Assembled
    /// from the shards one after another. Cost: a copy of every cell.
    public func allCells() async -> [CellRecord] {
        await readDurably(fallback: { await $0.allCells() }) {
            _ = await settleDueWork()
            var all: [CellRecord] = []
            for shard in shards { all += shard.withState { $0.allCells() } }
            all.sort { ($0.variant, $0.warehouse) < ($1.variant, $1.warehouse) }
            return all
        }
    }

    /// Cells whose available is at or below `threshold`, or each variant's own threshold when nil
    /// (variants without one are left out); by available, then variant, then warehouse.
    public func lowStock(threshold: Quantity? = nil, limit: Int? = nil) async -> Outcome<[CellRecord]> {
        await readDurably(fallback: { await $0.lowStock(threshold: threshold, limit: limit) }) {
            _ = await settleDueWork()
            if let t = threshold, t < .zero || t > Limits.quantityMax { return .refused(.invalid("threshold must be 0-\(Limits.quantityMax)")) }
            guard case .ok(let limit) = checkedLimit(limit) else { return .refused(checkedLimit(limit).refusal!) }
            var all: [CellRecord] = []
            for shard in shards { all += shard.withState { $0.lowStock(threshold: threshold, limit: limit) } }
            all.sort(by: lowStockOrder)
            return .ok(Array(all.prefix(limit)))
        }
    }

    /// Active lines with backordered > 0, by reservation id.
    public func backorders(limit: Int? = nil) async -> Outcome<[BackorderLine]> {
        await readDurably(fallback: { await $0.backorders(limit: limit) }) {
            _ = await settleDueWork()
            guard case .ok(let limit) = checkedLimit(limit) else { return .refused(checkedLimit(limit).refusal!) }
            var all: [BackorderLine] = []
            for shard in shards { all += shard.withState { $0.backorders(limit: limit) } }
            all.sort(by: backorderOrder)
            return .ok(Array(all.prefix(limit)))
        }
    }

    /// A cell's ledger entries, newest first, from what memory keeps.
    public func history(variant: String, warehouse: String, limit: Int? = nil) async -> Outcome<[LedgerEntry]> {
        await readDurably(fallback: { await $0.history(variant: variant, warehouse: warehouse, limit: limit) }) {
            _ = await settleDueWork()
            guard case .ok(let limit) = checkedLimit(limit) else { return .refused(checkedLimit(limit).refusal!) }
            switch checkedCell(variant, warehouse) {
            case .refused(let r): return .refused(r)
            case .ok(let key): return .ok(ledger.history(of: key, limit: limit))
            }
        }
    }

    /// Ledger entries with seq ≥ `from`, oldest first. Entries older than memory keeps come from the
    /// log of a durable engine (an engine in memory has only what it keeps). Cost: from memory, the
    /// entries returned; from the log, a read of the log's segments.
    public func events(from: UInt64, limit: Int = Limits.listCountDefault) async -> [LedgerEntry] {
        await readDurably(fallback: { await $0.events(from: from, limit: limit) }) {
            _ = await settleDueWork()
            // An engine in memory has only what it keeps.
            guard let directory = dataDirectory, let log = ledger.log else { return ledger.entries(from: from, limit: limit) }
            if from >= ledger.oldestSeq {
                let recent = ledger.entries(from: from, limit: limit)
                // Unless memory moved past `from` meanwhile (the answer would start later): the log.
                if recent.first.map({ $0.seq == from }) ?? true { return recent }
            }
            // The log's files hold every entry numbered before `position`'s once its LSN is
            // acknowledged: wait for that first, or the files may end short of what memory dropped.
            let position = ledger.position
            do {
                try await log.waitUntilAcknowledged(position.lastLSN)
            } catch {
                return ledger.entries(from: from, limit: limit)
            }
            var out = Self.loggedEntries(directory: directory, fileSystem: fileSystem, from: from, before: position.nextSeq, limit: limit)
            if out.count < limit {
                // What was numbered since, from memory when it still keeps it whole; otherwise the
                // answer ends here (gapless, only shorter), and the next page reads on.
                let recent = ledger.entries(from: position.nextSeq, limit: limit - out.count)
                if recent.first?.seq == position.nextSeq { out += recent }
            }
            return out
        }
    }

    /// Entries with `from` ≤ seq < `before` as the log holds them, at most `limit`. The log is read
    /// the way start-up reads it; what cannot be read is left out (memory has the newest entries).
    static func loggedEntries(directory: String, fileSystem: any FileSystem, from: UInt64, before: UInt64, limit: Int) -> [LedgerEntry] {
        var out: [LedgerEntry] = []
        // A batch at a time, stopping once enough is found: the log may hold millions of records.
        _ = LogRecovery.readValidPrefix(directory: directory, fileSystem: fileSystem) { batch in
            for k in 0..<batch.count {
                guard case .commit(let commit) = batch.record(at: k).body else { continue }
                for e in commit.entries where e.seq >= from && e.seq < before && out.count < limit { out.append(e) }
                if out.count == limit || commit.entries.last.map({ $0.seq >= before - 1 }) == true { return false }
            }
            return true
        }
        return out
    }

    /// The sequence number the next ledger entry will get.
    public var nextSeq: UInt64 { ledger.nextSeq }

    /// Every event (ledger entries, low-stock crossings) appended after this call, in order, each
    /// delivered only once its record is as safe as the durability policy promises (at once in
    /// memory; after the log's acknowledgement when durable), so a consumer never acts on a change a
    /// crash could still erase. A consumer that leaves more than `backlogLimit` events unread gets
    /// `.ended(.fellBehind(backlogLimit:resumeSeq:))` as the last event: memory stays bounded, and it
    /// catches up with `events(from: resumeSeq)` (subscribing again first, and skipping what it has).
    public func subscribe(backlogLimit: Int = Limits.subscriberBacklogEventCountDefault) -> AsyncStream<EngineEvent> {
        // Every shard held: no append is under way while the subscriber is added (`Ledger.subscribe`).
        holdingShards(allShards) { ledger.subscribe(backlogLimit: backlogLimit) }
    }

    /// Every warehouse, by code. After a log failure, as the durable view has them.
    public func warehouses() -> [Warehouse] {
        if let failure = ledger.log?.failure { return durableView(after: failure).warehouses() }
        return catalog.withLock { $0.warehouses.values.sorted { $0.code < $1.code } }
    }

    /// A variant's policy (the defaults for one never set). After a log failure, as the durable view has it.
    public func policy(of variant: String) -> Outcome<VariantPolicy> {
        guard Identifiers.isValidVariant(variant) else { return .refused(.invalid("invalid variant id")) }
        if let failure = ledger.log?.failure { return durableView(after: failure).policy(of: variant) }
        return .ok(catalog.withLock { $0.policy(of: variant) })
    }

    /// STATS: totals over every shard and the KPIs. Each shard's part is taken holding it, in a moment
    /// (`ShardStatsPart`); the walk over the cells runs on a thread of its own once there are
    /// `statsWalkOffThreadCellCount` cells or more, so that a server's loop goes on serving its other
    /// connections meanwhile (a walk on the caller's thread held up every connection of its loop:
    /// 0.6 s at a million cells before the walk was made cheaper). Not on the cooperative pool, whose
    /// few threads a blocked caller can fill. Every shard's cell table is referenced until the walk
    /// is done (a run's names are read from them after the sort): meanwhile a shard's first write to a
    /// chunk of its cells copies that 64 KiB chunk, and its first new cell its index, as after a
    /// snapshot.
    public func stats() async -> Stats {
        await readDurably(fallback: { await $0.stats() }) {
            _ = await settleDueWork()
            let parts = shards.map { shard in
                shard.withState {
                    ShardStatsPart(cells: $0.cells, catalog: $0.catalog, activeReservations: $0.reservations.openCount, counters: $0.counters)
                }
            }
            var s: Stats
            if parts.reduce(0, { $0 + $1.cells.count }) < Self.statsWalkOffThreadCellCount {
                s = Stats(walking: parts)
            } else {
                s = await withCheckedContinuation { done in Self.statsWalkQueue.async { done.resume(returning: Stats(walking: parts)) } }
            }
            s.warehouses = catalog.withLock { $0.warehouses.count }
            for code in RefusalCode.allCases { s.refused[code] = refusals.value(code) }
            return s
        }
    }

    /// From how many cells STATS walks them on `statsWalkQueue` rather than on the caller's thread: a
    /// walk of fewer takes under a few milliseconds, less than handing it over is worth.
    static let statsWalkOffThreadCellCount = 100_000

    /// Where STATS walks many cells: a queue of its own (its work runs on a thread of Dispatch's, not
    /// on the cooperative pool).
    static let statsWalkQueue = DispatchQueue(label: "stockpile-stats-walk")
}
