// The result of a flash sale: throughput, latency per operation, the sell-out moment, what became of
// the buyers and the units, and the audit of every item. `problems` is empty exactly when nothing
// was oversold, every unit is accounted for, and the target's own figures agree with the replies.

import Foundation
import Stockpile

public struct FlashSaleReport: Sendable {
    public struct OperationFigures: Sendable {
        public var operation: SaleOperation
        public var succeeded: Int
        public var refused: Int
        /// Nanoseconds, from the request sent to the reply read.
        public var latency: LatencyHistogram
    }

    /// One item's audit: its figures from the replies beside the target's at the end.
    public struct ItemAudit: Sendable {
        public var item: String
        /// on_hand and reserved when the sale began (after the initial stock arrived).
        public var atStart: ItemFigures
        /// From the replies (and, for holds no reply closed, from reading them at the end).
        public var units: ItemUnits
        /// Still reserved at the end, from the replies and the holds read at the end.
        public var held: Quantity
        /// STOCK at the end.
        public var atEnd: ItemFigures
        /// When this item's available was first seen at 0, from the start of the sale.
        public var soldOutAfter: Duration?

        /// What the sale could ever hand out: stock at the start that nobody held, and the restocks.
        public var supply: Quantity { atStart.available + units.restocked }
        /// Units promised beyond the supply, by the replies' count (sold and still held).
        public var oversoldByReplies: Quantity { (units.sold + held - supply).clampedAtZero }
        /// Units the target reserves beyond what it has on hand.
        public var oversoldByTarget: Quantity { (atEnd.reserved - atEnd.onHand).clampedAtZero }
        /// Units reserved by replies and not found sold, released, expired or still held: 0 when the
        /// replies balance.
        public var unaccounted: Quantity { units.reserved - units.sold - units.released - units.expired - held }
        /// sold + held + available = initial stock + restocks, with held and available as the target
        /// reports them at the end and sold as the replies count it.
        public var identityHolds: Bool { units.sold + atEnd.reserved + atEnd.available == atStart.onHand + units.restocked }
        /// The target's figures are what the replies imply: on_hand lost exactly what shipped, and
        /// reserved holds exactly the units still held.
        public var targetAgrees: Bool {
            atEnd.onHand == atStart.onHand + units.restocked - units.sold && atEnd.reserved == atStart.reserved + held
        }
    }

    public var configuration: FlashSaleConfiguration
    public var target: String
    public var elapsed: Duration
    public var operations: [OperationFigures]
    public var refusedByCode: [RefusalCode: Int]
    public var buyers: BuyerCounts
    public var shipments: Int
    public var items: [ItemAudit]
    /// When available was first seen at 0 for every item at once, from the start of the sale.
    public var soldOutAfter: Duration?
    /// The engine's unit counters over the sale (STATS after minus before), and the replies' totals.
    public var counterDelta: UnitCounters
    public var countedByReplies: UnitCounters
    /// Holds the audit read at the end because no reply closed them.
    public var auditedHoldCount: Int
    /// False when expiries kept changing the holds during every reading at the end.
    public var auditSettled: Bool
    public var mismatchCount: Int
    public var mismatches: [String]
    public var failures: [String]

    public var operationCount: Int { operations.reduce(0) { $0 + $1.succeeded + $1.refused } }
    public var operationsPerSecond: Double { Double(operationCount) / max(elapsed.seconds, 1e-9) }
    public var totals: ItemUnits { items.reduce(ItemUnits()) { $0 + $1.units } }
    public var held: Quantity { items.reduce(.zero) { $0 + $1.held } }
    public var oversoldByReplies: Quantity { items.reduce(.zero) { $0 + $1.oversoldByReplies } }
    public var oversoldByTarget: Quantity { items.reduce(.zero) { $0 + $1.oversoldByTarget } }
    public var oversold: Quantity { oversoldByReplies + oversoldByTarget }
    public var unaccounted: Quantity { items.reduce(.zero) { $0 + ($1.unaccounted.units < 0 ? -$1.unaccounted : $1.unaccounted) } }

    /// Everything that is wrong, one sentence each; empty when the sale checks out.
    public var problems: [String] {
        var found = failures.map { "a channel failed, so the outcome of its last request is unknown: \($0)" }
        if oversold.isPositive {
            found.append("oversold \(oversold) units (\(oversoldByReplies) by the replies' count, \(oversoldByTarget) by the target's figures)")
        }
        for item in items {
            if item.unaccounted != .zero { found.append("\(item.item): \(item.unaccounted) units reserved by replies are not accounted for") }
            if !item.identityHolds { found.append("\(item.item): sold + held + available is not initial stock + restocks") }
            if !item.targetAgrees {
                found.append(
                    "\(item.item): the target reports on_hand \(item.atEnd.onHand) reserved \(item.atEnd.reserved), the replies imply on_hand \(item.atStart.onHand + item.units.restocked - item.units.sold) reserved \(item.atStart.reserved + item.held)"
                )
            }
        }
        if mismatchCount > 0 { found.append("\(mismatchCount) replies disagree with their requests: \(mismatches.joined(separator: "; "))") }
        if counterDelta != countedByReplies {
            found.append(
                "STATS moved by reserved \(counterDelta.reserved) fulfilled \(counterDelta.fulfilled) released \(counterDelta.released) expired \(counterDelta.expired), the replies count \(countedByReplies.reserved) \(countedByReplies.fulfilled) \(countedByReplies.released) \(countedByReplies.expired) (did something else use the target meanwhile?)"
            )
        }
        if !auditSettled { found.append("holds kept expiring while they were read at the end, so the audit may mix moments") }
        return found
    }
}
