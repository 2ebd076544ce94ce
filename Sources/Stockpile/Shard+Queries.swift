// Reads a shard answers from its own state, computed holding the shard (`Shard.withState`) so that no
// large copy of the state ever leaves it (a copy of the reservation table would make the next write
// copy its index). STATS is the exception: it walks every cell, too long to hold a shard for
// (tens of milliseconds at a million cells), so it takes the cell table out, a reference to its
// chunks (the next write to a cell copies the one 64 KiB chunk it touches while the walk still holds
// them), and walks it outside (`Stats(walking:)`).

import StockpileCore

/// What STATS takes of one shard, holding it for a moment: its cell table by reference, its copy of
/// the catalog, its count of open reservations and its counters.
struct ShardStatsPart: Sendable {
    var cells: CellTable
    var catalog: Catalog
    var activeReservations: Int
    var counters: StockCounters
}

extension Stats {
    /// STATS's figures over every shard's part, walked without holding any shard. Distinct variants
    /// are counted without a set of names: each cell gives one integer, its variant's FNV-1a hash with
    /// the low bits replaced by the cell's number, the integers are sorted (`radixSort`), and names are
    /// compared only within a run of equal hash bits (a variant's cells in several warehouses, or two
    /// variants whose hashes share those bits), so the count is exact. A set of names, hashing each
    /// with SipHash and inserting it twice (per shard, then overall), took 0.6 s at a million cells.
    /// `keptHashBits`: how many of the hash's top bits are kept at most (fewer make more runs share
    /// them, as the tests do to compare names in long runs).
    init(walking parts: [ShardStatsPart], keptHashBits: Int = 64) {
        self.init()
        let total = parts.reduce(0) { $0 + $1.cells.count }
        // Cell numbers run from 0 through total - 1: part k's cells from firsts[k], in position order.
        var firsts: [Int] = []
        firsts.reserveCapacity(parts.count)
        var keys: [UInt64] = []
        keys.reserveCapacity(total)
        let numberBits = UInt64(Swift.max(1, Int.bitWidth - total.leadingZeroBitCount))
        let droppedBits = Swift.max(Int(numberBits), 64 - Swift.max(0, keptHashBits))
        let numberMask: UInt64 = droppedBits >= 64 ? .max : (1 << UInt64(droppedBits)) &- 1
        for part in parts {
            firsts.append(keys.count)
            // Only the variants with a low-stock threshold are looked up, cell by cell.
            let thresholds = part.catalog.policies.compactMapValues { $0.lowStock.isPositive ? $0.lowStock : nil }
            for (key, slot) in part.cells {
                onHand = onHand.addingSaturating(slot.state.onHand)
                reserved = reserved.addingSaturating(slot.state.reserved)
                if !thresholds.isEmpty, let t = thresholds[key.variant], slot.state.available <= t { lowStock += 1 }
                keys.append((FNV1a.hash(key.variant) & ~numberMask) | UInt64(keys.count))
            }
            cells += part.cells.count
            activeReservations += part.activeReservations
            counters = counters + part.counters
        }
        keys.radixSort()
        func variant(ofCell number: Int) -> String {
            // The last part whose first number is at or below `number`.
            var k = parts.count - 1
            while firsts[k] > number { k -= 1 }
            return parts[k].cells.key(at: number - firsts[k]).variant
        }
        var names: [String] = []
        var i = 0
        while i < keys.count {
            let bits = keys[i] & ~numberMask
            var end = i + 1
            while end < keys.count && keys[end] & ~numberMask == bits { end += 1 }
            if end - i == 1 {
                variants += 1
            } else {
                // Runs are a variant's few warehouses, or a chance meeting of hashes; a long one (FNV-1a
                // is not seeded, so names can be chosen to meet) is counted with a set.
                if end - i <= 16 {
                    names.removeAll(keepingCapacity: true)
                    for k in i..<end {
                        let name = variant(ofCell: Int(keys[k] & numberMask))
                        if !names.contains(name) { names.append(name) }
                    }
                    variants += names.count
                } else {
                    variants += Set((i..<end).lazy.map { variant(ofCell: Int(keys[$0] & numberMask)) }).count
                }
            }
            i = end
        }
    }
}

extension ShardState {
    /// The figures of those of `keys` that were ever used.
    func cellStates(_ keys: [CellKey]) -> [(CellKey, CellState)] {
        keys.compactMap { k in cells[k].map { (k, $0.state) } }
    }

    /// Cells at or below `threshold` (or their variant's own threshold when nil), in LOWSTOCK order,
    /// at most `limit`.
    func lowStock(threshold: Quantity?, limit: Int) -> [CellRecord] {
        var out: [CellRecord] = []
        for (key, slot) in cells {
            let t = threshold ?? catalog.policy(of: key.variant).lowStock
            guard threshold != nil || t.isPositive else { continue }
            if slot.state.available <= t { out.append(CellRecord(key: key, state: slot.state)) }
        }
        out.sort(by: lowStockOrder)
        return Array(out.prefix(limit))
    }

    /// Every cell this shard owns, for an export.
    func allCells() -> [CellRecord] {
        cells.map { CellRecord(key: $0.key, state: $0.value.state) }
    }

    func backorders(limit: Int) -> [BackorderLine] {
        var out: [BackorderLine] = []
        for r in allReservations where r.isOpen {
            for line in r.lines where line.backordered.isPositive && line.remaining.isPositive {
                out.append(BackorderLine(reservation: r.id, variant: line.variant, warehouse: line.warehouse, quantity: line.quantity, remaining: line.remaining, backordered: line.backordered))
            }
        }
        out.sort(by: backorderOrder)
        return Array(out.prefix(limit))
    }
}

/// LOWSTOCK order (SPEC §7.13): available, then variant, then warehouse.
func lowStockOrder(_ a: CellRecord, _ b: CellRecord) -> Bool {
    if a.available != b.available { return a.available < b.available }
    if a.variant != b.variant { return a.variant < b.variant }
    return a.warehouse < b.warehouse
}

/// BACKORDERS order: reservation id, then variant, then warehouse.
func backorderOrder(_ a: BackorderLine, _ b: BackorderLine) -> Bool {
    if a.reservation != b.reservation { return a.reservation < b.reservation }
    if a.variant != b.variant { return a.variant < b.variant }
    return a.warehouse < b.warehouse
}
