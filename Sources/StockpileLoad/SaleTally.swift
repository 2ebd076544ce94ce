// What a worker saw, counted from its replies only: latencies per operation, refusals by code, the
// units each item gained and lost, what became of the buyers, and the holds no reply closed (the
// audit asks the target about those at the end). Tallies of several workers merge by adding.

import Stockpile
import Synchronization

/// The operations of a sale, each with its own latency histogram.
public enum SaleOperation: Int, CaseIterable, Sendable {
    case reserve, confirm, fulfill, release, restock

    public var name: String {
        switch self {
        case .reserve: "reserve"
        case .confirm: "confirm"
        case .fulfill: "fulfill"
        case .release: "release"
        case .restock: "restock"
        }
    }
}

/// One item's units as the replies report them.
public struct ItemUnits: Sendable, Hashable {
    /// Held by successful RESERVE replies.
    public var reserved = Quantity.zero
    /// Shipped by successful FULFILL replies.
    public var sold = Quantity.zero
    /// Given back by RELEASE replies (cancelled carts).
    public var released = Quantity.zero
    /// Given back by expiry: a CONFIRM refused EXPIRED, or an abandoned hold found expired at the end.
    public var expired = Quantity.zero
    /// Added by successful ADJUST … received replies.
    public var restocked = Quantity.zero

    static func + (a: ItemUnits, b: ItemUnits) -> ItemUnits {
        ItemUnits(
            reserved: a.reserved + b.reserved, sold: a.sold + b.sold, released: a.released + b.released, expired: a.expired + b.expired,
            restocked: a.restocked + b.restocked)
    }
}

/// What became of the buyers, judged by the replies they got.
public struct BuyerCounts: Sendable, Hashable {
    /// Sent a first RESERVE before the end.
    public var arrived = 0
    public var gotHold = 0
    /// Refused on every attempt (sold out).
    public var gaveUp = 0
    /// Left a hold to expire.
    public var abandoned = 0
    public var cancelled = 0
    /// CONFIRM succeeded.
    public var paid = 0
    /// Every unit of the order shipped.
    public var shipped = 0
    /// CONFIRM refused EXPIRED: came back after the hold ended.
    public var tooLate = 0
    /// Had a step still to take when the sale ended.
    public var unfinished = 0

    static func + (a: BuyerCounts, b: BuyerCounts) -> BuyerCounts {
        BuyerCounts(
            arrived: a.arrived + b.arrived, gotHold: a.gotHold + b.gotHold, gaveUp: a.gaveUp + b.gaveUp, abandoned: a.abandoned + b.abandoned,
            cancelled: a.cancelled + b.cancelled, paid: a.paid + b.paid, shipped: a.shipped + b.shipped, tooLate: a.tooLate + b.tooLate,
            unfinished: a.unfinished + b.unfinished)
    }
}

/// A line of a hold as the last reply reported it.
struct HeldLine: Sendable, Hashable {
    var item: Int
    var quantity: Quantity
    var fulfilled = Quantity.zero
    var released = Quantity.zero
    var remaining: Quantity { quantity - fulfilled - released }
}

/// A hold that no reply closed (abandoned, or cut short by the end of the sale): the audit reads it.
struct OpenHold: Sendable {
    var id: String
    var lines: [HeldLine]
}

struct SaleTally: Sendable {
    var latency = SaleOperation.allCases.map { _ in LatencyHistogram() }
    /// Every operation since the progress line last took it.
    var recentLatency = LatencyHistogram()
    var succeeded = SaleOperation.allCases.map { _ in 0 }
    var refused = SaleOperation.allCases.map { _ in 0 }
    var refusedByCode: [RefusalCode: Int] = [:]
    var units: [ItemUnits]
    var shipments = 0
    var buyers = BuyerCounts()
    var openHolds: [OpenHold] = []
    /// Replies whose figures disagree with what their request should have done: each one is a
    /// finding. The first few are described.
    var mismatchCount = 0
    var mismatches: [String] = []
    /// Why this worker stopped early: its last request's outcome is unknown.
    var failure: String?

    static let describedMismatchesMax = 10

    init(itemCount: Int) {
        units = Array(repeating: ItemUnits(), count: itemCount)
    }

    var operations: Int { succeeded.reduce(0, +) + refused.reduce(0, +) }
    var refusals: Int { refused.reduce(0, +) }

    mutating func record(_ operation: SaleOperation, took elapsed: Duration, refusal: Refusal?) {
        let nanoseconds = UInt64(max(0, elapsed.wholeNanoseconds))
        latency[operation.rawValue].record(nanoseconds)
        recentLatency.record(nanoseconds)
        if let refusal {
            refused[operation.rawValue] += 1
            refusedByCode[refusal.code, default: 0] += 1
        } else {
            succeeded[operation.rawValue] += 1
        }
    }

    mutating func noteMismatch(_ description: @autoclosure () -> String) {
        mismatchCount += 1
        if mismatches.count < Self.describedMismatchesMax { mismatches.append(description()) }
    }

    mutating func merge(_ other: SaleTally) {
        for i in latency.indices { latency[i].merge(other.latency[i]) }
        recentLatency.merge(other.recentLatency)
        for i in succeeded.indices {
            succeeded[i] += other.succeeded[i]
            refused[i] += other.refused[i]
        }
        refusedByCode.merge(other.refusedByCode, uniquingKeysWith: +)
        for i in units.indices { units[i] = units[i] + other.units[i] }
        shipments += other.shipments
        buyers = buyers + other.buyers
        openHolds += other.openHolds
        mismatchCount += other.mismatchCount
        mismatches += other.mismatches.prefix(Self.describedMismatchesMax - mismatches.count)
        if failure == nil { failure = other.failure }
    }
}

/// A worker's tally, shared with the progress line while the sale runs.
final class TallyBox: Sendable {
    let tally: Mutex<SaleTally>

    init(itemCount: Int) { tally = Mutex(SaleTally(itemCount: itemCount)) }

    /// Operations and refusals so far, and the latencies since the last call (which starts afresh).
    func takeRecent() -> (operations: Int, refusals: Int, latency: LatencyHistogram) {
        var fresh = LatencyHistogram()
        return tally.withLock {
            swap(&fresh, &$0.recentLatency)
            return ($0.operations, $0.refusals, fresh)
        }
    }
}
