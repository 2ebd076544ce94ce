// Reads a shard answers from its own state, computed holding the shard (`Shard.withState`) so that no
// large copy of the state ever leaves it (a copy of the reservation table would make the next write
// copy its index). STATS is the exception: it walks every cell, too long to hold a shard for (a
// million cells took half a second), so it takes the cell table out, a reference to its chunks
// (the next write to a cell copies the one 64 KiB chunk it touches while the walk still holds them),
// and walks it outside.

import StockpileCore

/// One shard's share of STATS.
struct ShardSummary: Sendable {
    var cellCount = 0
    var variants: Set<String> = []
    var onHand = Quantity.zero
    var reserved = Quantity.zero
    var lowStockCount = 0
    var activeReservations = 0
    var counters = StockCounters()
}


extension ShardSummary {
    /// The summary of a shard from what `Engine.stats` took holding it: walks every cell, so build it
    /// without holding the shard.
    init(cells: CellTable, catalog: Catalog, activeReservations: Int, counters: StockCounters) {
        cellCount = cells.count
        for (key, slot) in cells {
            variants.insert(key.variant)
            onHand = onHand.addingSaturating(slot.state.onHand)
            reserved = reserved.addingSaturating(slot.state.reserved)
            let threshold = catalog.policy(of: key.variant).lowStock
            if threshold.isPositive && slot.state.available <= threshold { lowStockCount += 1 }
        }
        self.activeReservations = activeReservations
        self.counters = counters
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
