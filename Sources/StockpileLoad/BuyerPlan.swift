// What one buyer means to do, decided from the run's seed and the buyer's number alone, so a seed
// repeats every cart, fate and pause whatever the interleaving. The plan is an intention: what the
// buyer actually gets (a hold, a refusal, an expiry) comes from the replies.

import Stockpile

/// A line of a cart: an item (by its index in the catalogue) and how many.
struct CartLine: Sendable, Hashable {
    var item: Int
    var quantity: Quantity
}

enum BuyerFate: Sendable, Hashable {
    /// Leaves the hold to expire.
    case abandon
    /// Releases the hold.
    case cancel
    /// Confirms within the hold, then the order ships (in one or two parts).
    case pay
    /// Means to pay, but comes back after the hold expired.
    case payTooLate
}

struct BuyerPlan: Sendable {
    var arrival: Duration
    var cart: [CartLine]
    var fate: BuyerFate
    /// From the hold to the confirm or release.
    var decisionTime: Duration
    var splitsShipment: Bool
    /// The buyer's own generator, for the pauses decided later (retries, shipping).
    var random: SplitMix64

    /// The plan of buyer `number` (0-based).
    init(number: Int, configuration c: FlashSaleConfiguration) {
        var random = SplitMix64(seed: c.seed ^ (UInt64(number) &+ 1) &* 0xD1B5_4A32_D192_ED03)
        arrival = .nanoseconds(Int64(random.unit() * Double(c.ramp.wholeNanoseconds)))

        // One to three different items, the first items of the catalogue the most wanted (weights
        // 1, 1/2, 1/3, …): a drop always has a favourite.
        let lineCount = min(
            c.itemCount, random.chance(BuyerPace.oneItemCartShare) ? 1 : (random.chance(BuyerPace.twoItemShareOfTheRest) ? 2 : 3))
        var cart: [CartLine] = []
        let weights = (0..<c.itemCount).map { 1 / Double($0 + 1) }
        while cart.count < lineCount {
            var pick = random.unit() * weights.reduce(0, +)
            var item = 0
            while item < c.itemCount - 1 && pick >= weights[item] {
                pick -= weights[item]
                item += 1
            }
            if cart.contains(where: { $0.item == item }) { continue }
            cart.append(CartLine(item: item, quantity: random.chance(BuyerPace.twoUnitLineShare) ? 2 : 1))
        }
        self.cart = cart

        let draw = random.unit()
        if draw < c.abandonShare {
            fate = .abandon
        } else if draw < c.abandonShare + c.cancelShare {
            fate = .cancel
        } else if draw < c.abandonShare + c.cancelShare + c.payTooLateShare {
            fate = .payTooLate
        } else {
            fate = .pay
        }
        let share = BuyerPace.decisionShareOfTTL
        let withinHold = Duration.nanoseconds(
            Int64((share.lowerBound + random.unit() * (share.upperBound - share.lowerBound)) * Double(c.holdTTL.wholeNanoseconds)))
        decisionTime = fate == .payTooLate ? c.holdTTL + random.duration(in: BuyerPace.latenessAfterTTL) : withinHold
        splitsShipment = random.chance(c.splitShipmentShare)
        self.random = random
    }
}
