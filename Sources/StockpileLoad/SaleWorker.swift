// One worker of the sale: it runs its buyers' steps in order of their due time, one request at a
// time on its own channel, until the sale's end. Everything it counts comes from the replies: units
// move when a reply says they moved (a release that finds its hold expired counts as expired), and
// a reply whose figures disagree with what its request should have done is a finding, never
// smoothed over. A hold that no reply closed is handed to the audit.

import Stockpile

struct SaleWorker: Sendable {
    let configuration: FlashSaleConfiguration
    let items: [String]
    /// The buyers this worker serves: their numbers (for cart ids) and plans.
    let buyers: [(number: Int, plan: BuyerPlan)]
    let start: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant
    let box: TallyBox

    private enum Step {
        case reserve, confirm, ship, shipRest, release, done
    }

    /// A buyer as the worker follows them.
    private struct Buyer {
        var id: String
        var plan: BuyerPlan
        var cart: [CartLine]
        var attempts = 0
        var step = Step.reserve
        var hold: [HeldLine] = []
        /// The hold still has stock and no reply closed it.
        var holdIsOpen = false
    }

    func run(channel: any SaleChannel) async {
        var followed = buyers.map { Buyer(id: "cart-\(configuration.runTag)-\($0.number)", plan: $0.plan, cart: $0.plan.cart) }
        var agenda = Agenda(capacity: followed.count)
        for i in followed.indices { agenda.schedule(i, at: start + followed[i].plan.arrival) }

        while let next = agenda.earliest, next.due < deadline {
            _ = agenda.popEarliest()
            if next.due > .now { await pause(until: next.due) }
            // No step starts once the sale is over: what was due stays pending.
            guard ContinuousClock.now < deadline else {
                agenda.schedule(next.buyer, at: next.due)
                break
            }
            do {
                if let due = try await take(&followed[next.buyer], on: channel) { agenda.schedule(next.buyer, at: due) }
            } catch {
                box.tally.withLock { $0.failure = "\(error)" }
                break
            }
        }

        let pending = agenda.pendingBuyers
        box.tally.withLock { t in
            t.buyers.unfinished += pending.count
            for buyer in followed where buyer.holdIsOpen { t.openHolds.append(OpenHold(id: buyer.id, lines: buyer.hold)) }
        }
    }

    /// Takes the buyer's next step; returns when the one after is due, or nil when the buyer is done.
    private func take(_ buyer: inout Buyer, on channel: any SaleChannel) async throws(SaleTargetError) -> ContinuousClock.Instant? {
        switch buyer.step {
        case .reserve: return try await reserve(&buyer, on: channel)
        case .confirm: return try await confirm(&buyer, on: channel)
        case .ship, .shipRest: return try await ship(&buyer, on: channel)
        case .release: return try await release(&buyer, on: channel)
        case .done: return nil
        }
    }

    private func reserve(_ buyer: inout Buyer, on channel: any SaleChannel) async throws(SaleTargetError) -> ContinuousClock.Instant? {
        buyer.attempts += 1
        let lines = buyer.cart.map { SaleLine(item: items[$0.item], quantity: $0.quantity) }
        let began = ContinuousClock.now
        let outcome = try await channel.reserve(id: buyer.id, lines: lines, ttl: configuration.holdTTL)
        let now = ContinuousClock.now
        switch outcome {
        case .ok(let figures):
            buyer.hold = buyer.cart.map { HeldLine(item: $0.item, quantity: $0.quantity) }
            buyer.holdIsOpen = true
            let fate = buyer.plan.fate
            box.tally.withLock { [buyer] t in
                t.record(.reserve, took: now - began, refusal: nil)
                if buyer.attempts == 1 { t.buyers.arrived += 1 }
                t.buyers.gotHold += 1
                if fate == .abandon { t.buyers.abandoned += 1 }
                for line in buyer.hold { t.units[line.item].reserved += line.quantity }
                if let problem = disagreement(figures, with: buyer.hold, statuses: [.active]) { t.noteMismatch("RESERVE \(buyer.id): \(problem)") }
            }
            switch fate {
            case .abandon:
                buyer.step = .done
                return nil
            case .cancel:
                buyer.step = .release
            case .pay, .payTooLate:
                buyer.step = .confirm
            }
            return now + buyer.plan.decisionTime

        case .refused(let refusal):
            let attempts = buyer.attempts
            let givesUp = attempts >= configuration.reserveAttemptsMax
            box.tally.withLock { [buyer] t in
                t.record(.reserve, took: now - began, refusal: refusal)
                if attempts == 1 { t.buyers.arrived += 1 }
                if givesUp { t.buyers.gaveUp += 1 }
                if refusal.code != .insufficient { t.noteMismatch("RESERVE \(buyer.id) refused \(refusal), not INSUFFICIENT") }
            }
            guard !givesUp, refusal.code == .insufficient else {
                buyer.step = .done
                return nil
            }
            // Sold out of one item: take what is left of it, or drop it when something else is in the
            // cart, and try again at once; otherwise wait for stock to come back (a refresh).
            if let k = buyer.cart.firstIndex(where: { items[$0.item] == refusal.variant }) {
                if let available = refusal.available, available.isPositive, available < buyer.cart[k].quantity {
                    buyer.cart[k].quantity = available
                    return now
                }
                if buyer.cart.count > 1 {
                    buyer.cart.remove(at: k)
                    return now
                }
            }
            return now + buyer.plan.random.duration(in: BuyerPace.retryBackoff)
        }
    }

    private func confirm(_ buyer: inout Buyer, on channel: any SaleChannel) async throws(SaleTargetError) -> ContinuousClock.Instant? {
        let began = ContinuousClock.now
        let outcome = try await channel.confirm(id: buyer.id)
        let now = ContinuousClock.now
        buyer.step = .done
        switch outcome {
        case .ok(let figures):
            let expected = buyer.hold.map(\.remaining)
            box.tally.withLock { [id = buyer.id] t in
                t.record(.confirm, took: now - began, refusal: nil)
                t.buyers.paid += 1
                absorb(figures, into: &buyer.hold, tally: &t, context: "CONFIRM \(id)", remaining: expected, statuses: [.active])
            }
            buyer.step = .ship
            return now + buyer.plan.random.duration(in: BuyerPace.pickingTime)
        case .refused(let refusal):
            box.tally.withLock { [id = buyer.id] t in
                t.record(.confirm, took: now - began, refusal: refusal)
                guard refusal.code == .expired else {
                    t.noteMismatch("CONFIRM \(id) refused \(refusal)")
                    return
                }
                // The hold ended by expiry: everything it held went back to available, nothing shipped.
                t.buyers.tooLate += 1
                for i in buyer.hold.indices {
                    t.units[buyer.hold[i].item].expired += buyer.hold[i].remaining
                    buyer.hold[i].released += buyer.hold[i].remaining
                }
                buyer.holdIsOpen = false
            }
            return nil
        }
    }

    private func ship(_ buyer: inout Buyer, on channel: any SaleChannel) async throws(SaleTargetError) -> ContinuousClock.Instant? {
        // The first part of a split shipment: half of the first line (rounded up), when the order has
        // two units or more; the rest ships later in one go.
        let remaining = buyer.hold.reduce(Quantity.zero) { $0 + $1.remaining }
        var partial: (index: Int, line: SaleLine)?
        if buyer.step == .ship, buyer.plan.splitsShipment, remaining.units >= 2, let k = buyer.hold.firstIndex(where: { $0.remaining.isPositive }) {
            let line = buyer.hold[k]
            let quantity = Quantity(min((line.remaining.units + 1) / 2, remaining.units - 1))
            partial = (k, SaleLine(item: items[line.item], quantity: quantity))
        }
        var expected = buyer.hold.map { _ in Quantity.zero }
        if let partial {
            expected = buyer.hold.map(\.remaining)
            expected[partial.index] -= partial.line.quantity
        }

        let began = ContinuousClock.now
        let outcome = try await channel.fulfill(id: buyer.id, line: partial?.line)
        let now = ContinuousClock.now
        buyer.step = .done
        switch outcome {
        case .ok(let figures):
            box.tally.withLock { [id = buyer.id] t in
                t.record(.fulfill, took: now - began, refusal: nil)
                t.shipments += 1
                if partial == nil { t.buyers.shipped += 1 }
                absorb(
                    figures, into: &buyer.hold, tally: &t, context: "FULFILL \(id)", remaining: expected,
                    statuses: partial == nil ? [.fulfilled] : [.partiallyFulfilled])
            }
            guard partial != nil else {
                buyer.holdIsOpen = false
                return nil
            }
            buyer.step = .shipRest
            return now + buyer.plan.random.duration(in: BuyerPace.secondShipmentDelay)
        case .refused(let refusal):
            box.tally.withLock { [id = buyer.id] t in
                t.record(.fulfill, took: now - began, refusal: refusal)
                t.noteMismatch("FULFILL \(id) of a confirmed order refused \(refusal)")
            }
            return nil
        }
    }

    private func release(_ buyer: inout Buyer, on channel: any SaleChannel) async throws(SaleTargetError) -> ContinuousClock.Instant? {
        let began = ContinuousClock.now
        let outcome = try await channel.release(id: buyer.id)
        let now = ContinuousClock.now
        buyer.step = .done
        box.tally.withLock { [id = buyer.id] t in
            t.record(.release, took: now - began, refusal: outcome.refusal)
            switch outcome {
            case .ok(let figures):
                // A cancel that comes after the hold expired finds it expired, and releases nothing.
                if figures.status == .expired { t.buyers.tooLate += 1 } else { t.buyers.cancelled += 1 }
                absorb(
                    figures, into: &buyer.hold, tally: &t, context: "RELEASE \(id)", remaining: buyer.hold.map { _ in .zero },
                    statuses: [.released, .expired])
                buyer.holdIsOpen = false
            case .refused(let refusal):
                t.noteMismatch("RELEASE \(id) refused \(refusal)")
            }
        }
        return nil
    }

    // MARK: Reading replies

    /// Takes a reply's figures as the truth about the hold: what its lines shipped since the last
    /// reply is sold, what they gave back is released (or expired, when the reply says the hold
    /// expired). Then checks the result against what the request should have left.
    private func absorb(
        _ figures: HoldFigures, into hold: inout [HeldLine], tally t: inout SaleTally, context: String, remaining expected: [Quantity],
        statuses: Set<ReservationStatus>
    ) {
        for i in hold.indices {
            guard let line = figures.lines.first(where: { $0.item == items[hold[i].item] }), line.quantity == hold[i].quantity,
                line.fulfilled >= hold[i].fulfilled, line.released >= hold[i].released
            else {
                t.noteMismatch("\(context): the reply's line of \(items[hold[i].item]) does not continue the last one: \(figures)")
                continue
            }
            t.units[hold[i].item].sold += line.fulfilled - hold[i].fulfilled
            if figures.status == .expired {
                t.units[hold[i].item].expired += line.released - hold[i].released
            } else {
                t.units[hold[i].item].released += line.released - hold[i].released
            }
            hold[i].fulfilled = line.fulfilled
            hold[i].released = line.released
        }
        if figures.lines.count != hold.count || hold.map(\.remaining) != expected || !statuses.contains(figures.status) {
            t.noteMismatch("\(context): expected \(statuses.map(\.rawValue).sorted()) with \(expected) remaining, got \(figures)")
        }
    }

    /// Why a fresh hold's reply is not the cart that was asked for; nil when it is.
    private func disagreement(_ figures: HoldFigures, with hold: [HeldLine], statuses: Set<ReservationStatus>) -> String? {
        let asked = hold.map { HoldFigures.Line(item: items[$0.item], quantity: $0.quantity, fulfilled: .zero, released: .zero) }
        guard statuses.contains(figures.status), Set(figures.lines) == Set(asked), figures.lines.count == asked.count else {
            return "asked for \(asked), got \(figures)"
        }
        return nil
    }
}
