// What the queries of SPEC §2 answer, and what a subscriber receives: plain values, so that the
// engine, the wire and an embedding service all speak of the same things.

/// A variant's cells in every warehouse where it has one, and the totals (warehouse `*`).
public struct VariantStock: Sendable, Hashable {
    public var cells: [CellRecord]
    public var totals: CellRecord

    public init(cells: [CellRecord], totals: CellRecord) {
        self.cells = cells
        self.totals = totals
    }
}

/// The figures of STATS (SPEC §7.12).
public struct Stats: Sendable, Equatable {
    public var cells = 0
    public var warehouses = 0
    public var variants = 0
    public var onHand = Quantity.zero
    public var reserved = Quantity.zero
    public var available: Quantity { onHand.addingSaturating(-reserved) }
    public var lowStock = 0
    public var activeReservations = 0
    public var counters = StockCounters()
    /// Share of cycle counts without variance, in basis points (10000 when nothing was counted).
    public var accuracyBasisPoints: Int {
        counters.cycleCounts == 0 ? 10_000 : counters.cycleCountsWithoutVariance * 10_000 / counters.cycleCounts
    }
    /// Refused mutations by code.
    public var refused: [RefusalCode: Int] = [:]

    public init() {}
}

/// An active line that available stock did not fully cover when it was reserved.
public struct BackorderLine: Sendable, Hashable {
    public var reservation: String
    public var variant: String
    public var warehouse: String
    public var quantity: Quantity
    public var remaining: Quantity
    public var backordered: Quantity

    public init(reservation: String, variant: String, warehouse: String, quantity: Quantity, remaining: Quantity, backordered: Quantity) {
        self.reservation = reservation
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
        self.remaining = remaining
        self.backordered = backordered
    }
}

/// The KPI counters of SPEC §6, summed over shards for STATS.
public struct StockCounters: Sendable, Equatable {
    public var unitsReserved = Quantity.zero
    public var unitsFulfilled = Quantity.zero
    public var unitsReleased = Quantity.zero
    public var unitsExpired = Quantity.zero
    /// Changes that took a cell's available from above zero to zero or below.
    public var stockouts = 0
    /// Units removed by ADJUST damaged or lost.
    public var shrinkage = Quantity.zero
    public var cycleCounts = 0
    public var cycleCountsWithoutVariance = 0
    /// Net on_hand change of ADJUST, per reason code: the adjustment trend.
    public var adjustedByReason: [ReasonCode: Quantity] = [:]

    public init() {}

    public static func + (a: StockCounters, b: StockCounters) -> StockCounters {
        var s = a
        s.unitsReserved = s.unitsReserved.addingSaturating(b.unitsReserved)
        s.unitsFulfilled = s.unitsFulfilled.addingSaturating(b.unitsFulfilled)
        s.unitsReleased = s.unitsReleased.addingSaturating(b.unitsReleased)
        s.unitsExpired = s.unitsExpired.addingSaturating(b.unitsExpired)
        s.stockouts += b.stockouts
        s.shrinkage = s.shrinkage.addingSaturating(b.shrinkage)
        s.cycleCounts += b.cycleCounts
        s.cycleCountsWithoutVariance += b.cycleCountsWithoutVariance
        s.adjustedByReason.merge(b.adjustedByReason) { $0.addingSaturating($1) }
        return s
    }

    /// `count(_:)` for a reservation's entry, given by what it changes (a replayed reservation record
    /// has the figures without building its entry).
    @inlinable public mutating func countReserve(deltaReserved: Quantity, before: CellState, after: CellState) {
        unitsReserved = unitsReserved.addingSaturating(deltaReserved)
        countStockout(before: before, after: after)
    }

    /// Counts a change that took a cell's available from above zero to zero or below.
    @inlinable mutating func countStockout(before: CellState, after: CellState) {
        if before.available.isPositive && !after.available.isPositive { stockouts += 1 }
    }

    /// Adds what one ledger entry contributes to the counters.
    public mutating func count(_ e: LedgerEntry) {
        switch e.type {
        case .reserve: unitsReserved = unitsReserved.addingSaturating(e.deltaReserved)
        case .fulfill: unitsFulfilled = unitsFulfilled.addingSaturating(-e.deltaOnHand)
        case .release: unitsReleased = unitsReleased.addingSaturating(-e.deltaReserved)
        case .expire: unitsExpired = unitsExpired.addingSaturating(-e.deltaReserved)
        case .adjust:
            if let reason = e.reason {
                adjustedByReason[reason] = adjustedByReason[reason, default: .zero].addingSaturating(e.deltaOnHand)
                if reason == .damaged || reason == .lost { shrinkage = shrinkage.addingSaturating(-e.deltaOnHand) }
            }
        case .count:
            cycleCounts += 1
            if e.deltaOnHand == .zero { cycleCountsWithoutVariance += 1 }
        default: break
        }
        countStockout(before: e.before, after: e.after)
    }
}

/// Something worth telling a subscriber.
public enum EngineEvent: Sendable, Hashable {
    /// A ledger entry, in sequence order.
    case entry(LedgerEntry)
    /// A cell crossed its variant's low-stock threshold (edge-triggered: once on the way down, once on
    /// the way back up). Delivered right after the entry that caused it.
    case lowStock(LowStockAlert)
    /// The last event of a stream that ends before the engine does, with why and where to go on.
    case ended(SubscriptionEnd)
}

/// Why an event stream ended while the engine went on.
public enum SubscriptionEnd: Sendable, Hashable {
    /// The consumer left more than `backlogLimit` events unread. Nothing from `resumeSeq` on was
    /// delivered: read the rest with `events(from: resumeSeq)` (EVENTS on the wire), then subscribe
    /// again (subscribe first and skip what EVENTS already gave, so nothing falls in between).
    case fellBehind(backlogLimit: Int, resumeSeq: UInt64)
}

public struct LowStockAlert: Sendable, Hashable {
    public var variant: String
    public var warehouse: String
    public var available: Quantity
    public var threshold: Quantity
    /// True when the cell fell to or below the threshold; false when it recovered above it.
    public var isLow: Bool
    /// The entry that caused the crossing.
    public var seq: UInt64

    public init(variant: String, warehouse: String, available: Quantity, threshold: Quantity, isLow: Bool, seq: UInt64) {
        self.variant = variant
        self.warehouse = warehouse
        self.available = available
        self.threshold = threshold
        self.isLow = isLow
        self.seq = seq
    }
}
