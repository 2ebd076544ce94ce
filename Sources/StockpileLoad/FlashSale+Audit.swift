// The audit at the end of a sale. The workers counted every unit their replies moved; what no reply
// closed (abandoned holds, orders cut short by the end) is read back with RESERVATION: an expired
// hold's units count as expired, what still remains as held. Then the items' cells and the engine's
// counters are read for the report's cross-checks.
//
// After the workers stop, the only thing that still changes these items is the expiry of the open
// holds. The holds are read before and after the cells and counters; when the two readings agree,
// no expiry fell between them and the cells match the holds. When expiries keep falling in between,
// the audit waits until every open hold's TTL has passed (after which nothing changes) and reads
// again.

import Stockpile

extension FlashSale {
    struct Audit: Sendable {
        /// Per item: the workers' units plus what the open holds showed.
        var units: [ItemUnits]
        var held: [Quantity]
        var atEnd: [ItemFigures]
        var counters: UnitCounters
        var settled: Bool
        var mismatches: [String]
    }

    /// Readings that agree before and after, tried this many times before waiting out the TTL.
    private static let settledReadingAttemptsMax = 10

    func audit(tally: SaleTally, items: [String], on channel: any SaleChannel) async throws(SaleTargetError) -> Audit {
        let ids = tally.openHolds.map(\.id)
        var reading = try await read(ids, items: items, on: channel)
        var attempts = 1
        while !reading.settled && attempts < Self.settledReadingAttemptsMax {
            reading = try await read(ids, items: items, on: channel)
            attempts += 1
        }
        if !reading.settled {
            await pause(until: .now + configuration.holdTTL + .milliseconds(100))
            reading = try await read(ids, items: items, on: channel)
        }

        var audit = Audit(
            units: tally.units, held: items.map { _ in .zero }, atEnd: reading.items, counters: reading.counters, settled: reading.settled,
            mismatches: [])
        for (hold, outcome) in zip(tally.openHolds, reading.holds) {
            guard case .ok(let figures) = outcome else {
                audit.mismatches.append("RESERVATION \(hold.id), a hold the replies left open, answered \(outcome.refusal!)")
                continue
            }
            for line in hold.lines {
                guard let now = figures.lines.first(where: { $0.item == items[line.item] }), now.quantity == line.quantity else {
                    audit.mismatches.append("RESERVATION \(hold.id) has no line of \(items[line.item]) for \(line.quantity): \(figures)")
                    continue
                }
                // Nobody but its buyer ships or releases a hold, and the buyer's replies are counted
                // already: only expiry may have moved it since.
                let shipped = now.fulfilled - line.fulfilled
                let givenBack = now.released - line.released
                if shipped != .zero || (givenBack != .zero && figures.status != .expired) {
                    audit.mismatches.append("RESERVATION \(hold.id) moved without a reply: \(figures)")
                }
                audit.units[line.item].sold += shipped
                if figures.status == .expired {
                    audit.units[line.item].expired += givenBack
                } else {
                    audit.units[line.item].released += givenBack
                }
                audit.held[line.item] += now.remaining
            }
        }
        return audit
    }

    private struct Reading {
        var holds: [Outcome<HoldFigures>]
        var items: [ItemFigures]
        var counters: UnitCounters
        var settled: Bool
    }

    private func read(_ ids: [String], items: [String], on channel: any SaleChannel) async throws(SaleTargetError) -> Reading {
        let before = try await channel.holds(ids)
        let cells = try await channel.items(items)
        let counters = try await channel.counters()
        let after = try await channel.holds(ids)
        return Reading(holds: after, items: cells, counters: counters, settled: before == after)
    }
}
