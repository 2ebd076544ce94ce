// What a flash sale looks like: how many buyers arrive over how long, the catalogue of hot items,
// the shares of buyers who pay, cancel or abandon, the restocks, and the pace of a buyer's steps.
// Every figure lives here with the reason for its default; `problems` says what a configuration
// cannot run, so a command line can refuse it before anything starts.

import Stockpile

public struct FlashSaleConfiguration: Sendable {
    /// The seed of every buyer's plan: the same seed gives the same carts, fates and pauses (the
    /// interleaving of buyers is the scheduler's, so replies may still differ between runs).
    public var seed: UInt64
    public var buyerCount = 10_000
    /// Buyers arrive at random moments spread over the ramp, from the start of the sale.
    public var ramp: Duration = .seconds(2)
    /// No operation starts after this; what is still under way then is left as it is and audited.
    public var duration: Duration = .seconds(5)
    public var itemCount = 5
    /// Units of each item before the sale: small against the buyers, so the sale sells out.
    public var stockPerItem = Quantity(500)
    /// The hold of a cart: short, so that abandoned carts really expire during the run. Whole seconds,
    /// as RESERVE … TTL takes them (1 s at least).
    public var holdTTL: Duration = .seconds(2)
    /// In-process: tasks; over TCP: connections, each on a thread of its own. Buyers are dealt to
    /// workers in turn, and a worker runs its buyers' steps in order of their due time.
    public var workerCount = 16
    /// Shares of buyers, decided when they arrive; those who pay are the rest.
    public var abandonShare = 0.25
    public var cancelShare = 0.10
    /// Buyers who mean to pay but come back after their hold expired (CONFIRM is refused EXPIRED).
    public var payTooLateShare = 0.05
    /// Of the paid carts with 2 units or more, the share shipped in two parts.
    public var splitShipmentShare = 0.30
    /// Deliveries during the sale (ADJUST … REASON received on every item), evenly spaced over the
    /// duration, each of `restockUnits` per item.
    public var restockCount = 2
    public var restockUnits = Quantity(100)
    /// RESERVE attempts per buyer: a refused buyer drops the sold-out item (or takes what is left of
    /// it) and tries again at once, or waits and tries again when nothing else is in the cart.
    public var reserveAttemptsMax = 5
    /// How often availability is sampled for the sell-out moment: its resolution.
    public var sampleInterval: Duration = .milliseconds(10)
    public var progressInterval: Duration = .seconds(1)
    /// Part of every item and cart name, so that runs against one server never share a cell or an id.
    public var runTag: String

    public init(seed: UInt64, runTag: String) {
        self.seed = seed
        self.runTag = runTag
    }

    /// The hot items' variant names, in warehouse `MAIN`.
    public var items: [String] { (1...max(1, itemCount)).map { "FLASH-\(runTag)-\($0)" } }

    public var payShare: Double { 1 - abandonShare - cancelShare - payTooLateShare }

    /// What stops this configuration from running, one sentence each; empty when it can run.
    public var problems: [String] {
        var found: [String] = []
        if buyerCount < 1 { found.append("buyers must be at least 1") }
        if itemCount < 1 || itemCount > 1_000 { found.append("items must be 1-1000") }
        if workerCount < 1 || workerCount > 10_000 { found.append("workers must be 1-10000") }
        if duration <= .zero { found.append("duration must be positive") }
        if ramp < .zero || ramp > duration { found.append("ramp must be between 0 and the duration") }
        if stockPerItem < .zero || stockPerItem > Limits.quantityMax { found.append("stock must be 0-\(Limits.quantityMax)") }
        if restockUnits < .zero || restockUnits > Limits.quantityMax { found.append("restock units must be 0-\(Limits.quantityMax)") }
        if restockCount < 0 || restockCount > 1_000 { found.append("restocks must be 0-1000") }
        if holdTTL < .seconds(1) || holdTTL.components.attoseconds != 0 { found.append("the hold TTL must be whole seconds, 1 at least") }
        if reserveAttemptsMax < 1 { found.append("reserve attempts must be at least 1") }
        for (name, share) in [("abandon", abandonShare), ("cancel", cancelShare), ("late", payTooLateShare), ("split", splitShipmentShare)]
        where !(0...1).contains(share) {
            found.append("the \(name) share must be 0-1")
        }
        if payShare < -1e-9 { found.append("the abandon, cancel and late shares add up to more than 1") }
        if runTag.isEmpty || !Identifiers.isValidVariant("FLASH-\(runTag)-1") { found.append("the run tag must be letters, digits, '.', '-' or '_'") }
        return found
    }
}

/// How a buyer fills a cart and the pace of their steps, as fractions of the hold's TTL or fixed
/// pauses: what a person at a checkout takes. One place, so the scenario can be read at a glance.
enum BuyerPace {
    /// A cart holds one item half the time, otherwise two (60 %) or three; a line asks for two units
    /// now and then, so that a refusal can sometimes be met by taking what is left.
    static let oneItemCartShare = 0.5
    static let twoItemShareOfTheRest = 0.6
    static let twoUnitLineShare = 0.2
    /// From the hold to paying or cancelling: within the hold, with room to spare for a worker that
    /// runs a little late.
    static let decisionShareOfTTL = 0.1...0.7
    /// A late payer comes back this long after the hold expired.
    static let latenessAfterTTL: ClosedRange<Duration> = .milliseconds(200)...(.milliseconds(800))
    /// From payment to the first shipment, and between the two parts of a split shipment.
    static let pickingTime: ClosedRange<Duration> = .milliseconds(50)...(.milliseconds(300))
    static let secondShipmentDelay: ClosedRange<Duration> = .milliseconds(100)...(.milliseconds(400))
    /// A buyer refused with nothing else to drop waits this long before trying again (a refresh).
    static let retryBackoff: ClosedRange<Duration> = .milliseconds(150)...(.milliseconds(600))
}
