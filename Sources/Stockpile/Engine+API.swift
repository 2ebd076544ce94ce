// Typed entry points for an embedding order service: each builds the `Command` and unwraps the reply
// to the type that command answers with. Same semantics as `execute` (and as the wire).

import Foundation
import StockpileCore
import Synchronization

extension Outcome where Value == Reply {
    /// The reservation the reply carries, moved out of it (a map would copy it).
    fileprivate consuming func reservation() -> Outcome<ReservationRecord> {
        switch consume self {
        case .ok(.reservation(let r)): return .ok(r)
        case .ok(let other): preconditionFailure("reply \(other) is not a reservation")
        case .refused(let r): return .refused(r)
        }
    }
    fileprivate var cell: Outcome<CellReceipt> {
        map { if case .cell(let c) = $0 { return c }; preconditionFailure("reply \($0) is not a cell receipt") }
    }
}

extension Engine {
    /// Reserves stock for `request` (all lines or none). A retry with the same id and request replays.
    public func reserve(_ request: ReserveRequest, actor: String = "") async -> Outcome<ReservationRecord> {
        // A request valid as it stands is decided as it is: wrapped in a command and normalized, it
        // was copied at each step. Otherwise as `execute` does it.
        guard let decided = decideReserveNow(request, actor: actor, made: { .ok(ReservationRecord($0)) }, otherwise: { $0.reservation() }) else {
            return await execute(.reserve(request), actor: actor).reservation()
        }
        // `finishExecuting`, without taking the answer into a variable of its own: an answer is
        // over 150 bytes, and each move of it a copy.
        if ledger.log != nil, let failure = await waitUntilDurable() {
            refusals.count(failure.code)
            return .refused(failure)
        }
        if case .refused(let r) = decided { refusals.count(r.code) }
        return decided
    }

    /// Moves a hold's expiry to now + `ttl`. A retry with the same `key` replays instead of moving it again.
    public func extend(_ id: String, ttl: Duration, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.extend(id: id, ttl: ttl, key: key), actor: actor).reservation()
    }

    /// Drops a hold's expiry: it becomes an order reservation. A retry with the same `key` replays.
    public func confirm(_ id: String, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.confirm(id: id, key: key), actor: actor).reservation()
    }

    /// Releases everything that remains, or part of one line.
    public func release(_ id: String, line: LineSelector? = nil, reason: ReasonCode? = nil, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.release(id: id, line: line, reason: reason, key: key), actor: actor).reservation()
    }

    /// Ships everything that remains, or part of one line (a partial shipment).
    public func fulfill(_ id: String, line: LineSelector? = nil, key: String? = nil, actor: String = "") async -> Outcome<ReservationRecord> {
        await execute(.fulfill(id: id, line: line, key: key), actor: actor).reservation()
    }

    public func adjust(
        variant: String, warehouse: String, by delta: Quantity, reason: ReasonCode, note: String? = nil, reference: String? = nil,
        key: String? = nil, actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.adjust(variant: variant, warehouse: warehouse, delta: delta, reason: reason, note: note, reference: reference, key: key), actor: actor).cell
    }

    /// Sets on_hand; with `ifOnHand`, only when on_hand is that value (compare-and-set).
    public func setQuantity(
        variant: String, warehouse: String, to quantity: Quantity, reason: ReasonCode, ifOnHand: Quantity? = nil, key: String? = nil,
        actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.setQuantity(variant: variant, warehouse: warehouse, quantity: quantity, reason: reason, ifOnHand: ifOnHand, key: key), actor: actor).cell
    }

    /// A cycle count: sets on_hand to what was counted and records the variance.
    public func count(variant: String, warehouse: String, counted: Quantity, note: String? = nil, key: String? = nil, actor: String = "") async -> Outcome<CellReceipt> {
        await execute(.count(variant: variant, warehouse: warehouse, counted: counted, note: note, key: key), actor: actor).cell
    }

    public func transfer(
        variant: String, from: String, to: String, quantity: Quantity, note: String? = nil, key: String? = nil, actor: String = ""
    ) async -> Outcome<TransferReceipt> {
        await execute(.transfer(variant: variant, from: from, to: to, quantity: quantity, note: note, key: key), actor: actor).map {
            if case .transfer(let t) = $0 { return t }
            preconditionFailure("reply \($0) is not a transfer receipt")
        }
    }

    /// Goods coming back: restocked (on_hand grows) or recorded as damaged.
    public func returnStock(
        variant: String, warehouse: String, quantity: Quantity, disposition: ReturnDisposition, reference: String? = nil,
        key: String? = nil, actor: String = ""
    ) async -> Outcome<CellReceipt> {
        await execute(.returnStock(variant: variant, warehouse: warehouse, quantity: quantity, disposition: disposition, reference: reference, key: key), actor: actor).cell
    }

    /// Creates or changes a warehouse. A retry with the same `key` replays.
    public func setWarehouse(_ change: WarehouseChange, key: String? = nil, actor: String = "") async -> Outcome<Warehouse> {
        await execute(.setWarehouse(change, key: key), actor: actor).map {
            if case .warehouse(let w, _) = $0 { return w }
            preconditionFailure("reply \($0) is not a warehouse")
        }
    }

    /// Changes a variant's policy. A retry with the same `key` replays.
    public func setPolicy(_ change: PolicyChange, key: String? = nil, actor: String = "") async -> Outcome<VariantPolicy> {
        await execute(.setPolicy(change, key: key), actor: actor).map {
            if case .policy(let p, _) = $0 { return p }
            preconditionFailure("reply \($0) is not a policy")
        }
    }
}

extension Engine {
    /// Loads stock from outside (a seed file, an import): each row's on_hand becomes its figure,
    /// logged as type and reason `import`; reservations are untouched. Every row is checked before
    /// any is applied: a row naming a warehouse that does not exist, or a figure that is not valid,
    /// refuses the whole load (naming its line) and changes nothing. Returns the number of rows
    /// applied once all are durable.
    ///
    /// Cost: the rows of each shard are applied as one commit per `importCommitRowCountMax` rows, in
    /// one stretch holding the shard, with one wait for the log at the end: a few hundred
    /// nanoseconds a row. Rows are numbered shard by shard, so the ledger's order of two rows in
    /// different shards need not be the file's; each cell's rows keep the file's order.
    public func importStock(_ rows: [StockRow], actor: String = "import") async -> Outcome<Int> {
        // Checked before anything is applied, in halves on two threads when there are many rows.
        let known = Set(warehouses().map(\.code))
        let halves = rows.count >= 1 << 16 && ProcessInfo.processInfo.activeProcessorCount > 1 ? 2 : 1
        let bounds = (0...halves).map { rows.count * $0 / halves }
        let results = concurrentMap(halves) { k in checkRows(rows[bounds[k]..<bounds[k + 1]], known: known) }
        // The first refusal in row order: the first half's, if it has one.
        if let refusal = (0..<halves).lazy.compactMap({ results[$0].refusal }).first {
            refusals.count(refusal.code)
            return .refused(refusal)
        }
        // Each half's rows stay in its own array (joining them would copy every row): row i of the
        // whole is `parts.rows[k][i - parts.starts[k]]` for the half k it falls in.
        let parts = CheckedParts(results.map(\.rows), results.map(\.cellHashes))
        var byShard = results[0].byShard
        for k in 1..<halves {
            for s in byShard.indices { byShard[s] += results[k].byShard[s].lazy.map { $0 + parts.starts[k] } }
        }
        let now = await settleDueWork()
        // Shards are independent: as many load at once as there are cores, each a shard at a time.
        let work = byShard.enumerated().filter { !$0.element.isEmpty }
        let workers = min(work.count, ProcessInfo.processInfo.activeProcessorCount)
        let refused = ImportStop()
        let refusal = await withTaskGroup(of: Refusal?.self) { group -> Refusal? in
            for k in 0..<workers {
                group.addTask {
                    // Shards are of about the same size (the router spreads cells evenly): every
                    // `workers`-th one each.
                    for (s, indexes) in work[k...].striding(by: workers) {
                        // Room for every new cell at once: the table's index is rebuilt once, not
                        // at each doubling.
                        self.shards[s].withState { $0.cells.reserveCapacity($0.cells.count + indexes.count) }
                        for start in stride(from: 0, to: indexes.count, by: Self.importCommitRowCountMax) {
                            // Another worker was refused: stop at the next commit.
                            if refused.value.load(ordering: .relaxed) { return nil }
                            let lot = indexes[start..<min(indexes.count, start + Self.importCommitRowCountMax)]
                            var part: [StockRow] = []
                            var hashes: [UInt64] = []
                            part.reserveCapacity(lot.count)
                            hashes.reserveCapacity(lot.count)
                            for i in lot {
                                let (row, hash) = parts[i]
                                part.append(row)
                                hashes.append(hash)
                            }
                            if let refusal = self.shards[s].importRows(part[...], cellHashes: hashes, now: now, actor: actor) { return refusal }
                        }
                    }
                    return nil
                }
            }
            for await case let r? in group {
                refused.value.store(true, ordering: .relaxed)
                return r
            }
            return nil
        }
        if let refusal {
            // Rows already applied stay applied, as any other change that was made.
            _ = await waitUntilDurable()
            refusals.count(refusal.code)
            return .refused(refusal)
        }
        if let failure = await waitUntilDurable() { return .refused(failure) }
        return .ok(rows.count)
    }

    /// Loads a stock file's rows a chunk at a time (`StockCSV.rows`), each chunk as `importStock`
    /// loads rows, reading the next chunk on another thread while the current one loads: reading a
    /// million rows takes about as long as a core's share of loading them, and the load leaves a core
    /// idle between its shards' commits. Check the whole file first (`StockCSV.check`): a chunk that
    /// is refused stops the load, and the chunks before it stay loaded. Returns the rows loaded, and
    /// the refusal that stopped the load, if one did.
    public func importStock(_ chunks: StockCSV.Chunks, actor: String = "import") async -> (loaded: Int, refusal: Refusal?) {
        func read(_ rows: StockCSV.Chunks.Iterator) -> Task<([StockRow]?, StockCSV.Chunks.Iterator), Never> {
            Task.detached {
                var rows = rows
                return (rows.next(), rows)
            }
        }
        var loaded = 0
        var upcoming = read(chunks.makeIterator())
        while case let (rows?, rest) = await upcoming.value {
            upcoming = read(rest)
            switch await importStock(rows, actor: actor) {
            case .ok(let n): loaded += n
            case .refused(let refusal):
                upcoming.cancel()
                return (loaded, refusal)
            }
        }
        return (loaded, nil)
    }

    /// The checked rows of an import's parts (checked on several threads), read as one sequence.
    struct CheckedParts: Sendable {
        let rows: [[StockRow]]
        let cellHashes: [[UInt64]]
        /// Where each part starts in the whole.
        let starts: [Int]

        init(_ rows: [[StockRow]], _ cellHashes: [[UInt64]]) {
            self.rows = rows
            self.cellHashes = cellHashes
            var starts = [0]
            for part in rows.dropLast() { starts.append(starts.last! + part.count) }
            self.starts = starts
        }

        /// The last part that starts at or before `i` (a part may be empty): one or two comparisons
        /// for the two halves an import has at most.
        private func part(of i: Int) -> Int {
            var k = starts.count - 1
            while starts[k] > i { k -= 1 }
            return k
        }

        /// Row `i` of the whole and its cell's hash, its part found once for both.
        subscript(i: Int) -> (row: StockRow, cellHash: UInt64) {
            let k = part(of: i)
            return (rows[k][i - starts[k]], cellHashes[k][i - starts[k]])
        }
    }

    /// Rows an import checked: normalised, with each one's shard, or the refusal of the first bad one.
    struct CheckedRows {
        var rows: [StockRow] = []
        /// Each row's `CellTable.hash`, computed with its shard (the name is hashed once).
        var cellHashes: [UInt64] = []
        /// Positions in `rows`, by shard, in row order.
        var byShard: [[Int]]
        var refusal: Refusal?
    }

    /// Checks import rows as `importStock` does (variant, warehouse, figure, configured limits, then
    /// that the warehouse exists) and finds each one's shard. The refusal names the row's line.
    func checkRows(_ rows: ArraySlice<StockRow>, known: Set<String>) -> CheckedRows {
        var out = CheckedRows(byShard: Array(repeating: [], count: shards.count))
        out.rows.reserveCapacity(rows.count)
        out.cellHashes.reserveCapacity(rows.count)
        var knownWarehouse = ""
        var previous: (given: String, normalized: String)?
        for row in rows {
            // What `Validation.normalize` and `configuredLimitRefusal` check of `.importStock`, without
            // building the command for each of millions of rows.
            var refusal: Refusal?
            do throws(Refusal) {
                let w = try Validation.importRow(variant: row.variant, warehouse: row.warehouse, onHand: row.onHand, previous: previous)
                previous = (row.warehouse, w)
                refusal = configuredQuantityRefusal(row.onHand)
                if refusal == nil {
                    if w != knownWarehouse {
                        guard known.contains(w) else { throw .warehouseNotFound(w) }
                        knownWarehouse = w
                    }
                    let cell = CellKey(variant: row.variant, warehouse: w)
                    let stable = cell.stableHash
                    out.byShard[router.shard(forStableHash: stable)].append(out.rows.count)
                    out.rows.append(StockRow(variant: row.variant, warehouse: w, onHand: row.onHand, line: row.line))
                    out.cellHashes.append(CellTable.hash(stable: stable))
                }
            } catch {
                refusal = error
            }
            if let refusal {
                out.refusal = Refusal(refusal.code, "line \(row.line): \(refusal.message)")
                return out
            }
        }
        return out
    }

    /// Room for a shard's share of `count` names the router spreads over the shards: the mean and
    /// four standard deviations of the count a shard gets, so that a table seldom grows while it is
    /// filled, and no more (a table made room for a quarter more had an index of twice the slots at a
    /// million cells over 16 shards, and filling it took a third longer, its probes missing the cache).
    func share(of count: Int) -> Int {
        let mean = Double(count) / Double(shards.count)
        return Int(mean + 4 * mean.squareRoot()) + 64
    }

    /// Makes room for `cells` more cells, spread over the shards as the router spreads them: a
    /// caller about to load millions (a seed) saves the tables' regrowing, each step of which places
    /// every cell again. Changes nothing a reader can see.
    public func reserveCapacity(cells: Int) {
        guard cells > 0 else { return }
        // The router spreads cells evenly; `share` covers the unevenness of a hash.
        let perShard = share(of: cells)
        for shard in shards {
            shard.withState { $0.cells.reserveCapacity($0.cells.count + perShard) }
        }
    }

    /// The most rows one import commit (and so one log record) carries: a few hundred KiB of
    /// record, far below the log's limit on a payload, and a bounded time holding one shard.
    static let importCommitRowCountMax = 4096
}

extension ArraySlice {
    /// Every `step`-th element, from the first.
    fileprivate func striding(by step: Int) -> [Element] {
        stride(from: startIndex, to: endIndex, by: step).map { self[$0] }
    }
}

/// Set when one worker of an import is refused, so the others stop at their next commit. (Task
/// cancellation would also stop them when the caller's task is cancelled, and a cancelled caller
/// must not get a success for a load that stopped half way.)
private final class ImportStop: Sendable {
    let value = Atomic<Bool>(false)
}
