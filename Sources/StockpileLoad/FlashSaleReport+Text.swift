// The report for people (aligned lines, latencies in the unit that reads best) and for scripts (one
// JSON object, latencies in microseconds, durations in seconds, null for a sell-out that did not
// happen). Both say the same things in the same order.

import Foundation
import Stockpile

extension FlashSaleReport {
    /// The header a run prints before it starts, so the seed is known even if the run is cut short.
    public static func header(_ c: FlashSaleConfiguration, target: String) -> String {
        String(
            format: "flash sale: seed %llu, %d buyers over %.1f s, %.1f s in all, %d items x %lld units, TTL %lld s, %d restocks of %lld, %d workers, ",
            c.seed, c.buyerCount, c.ramp.seconds, c.duration.seconds, c.itemCount, c.stockPerItem.units, c.holdTTL.components.seconds,
            c.restockCount, c.restockUnits.units, c.workerCount) + target
    }

    public var lines: [String] {
        var out: [String] = []
        out.append(String(format: "throughput: %d operations in %.2f s, %.0f/s", operationCount, elapsed.seconds, operationsPerSecond))
        out.append("latency     count      ok  refused        p50        p90        p99      p99.9        max")
        for op in operations {
            let h = op.latency
            let quantiles = [0.5, 0.9, 0.99, 0.999].map { " " + padded(formatLatency(h.value(atQuantile: $0)), 9) }
            out.append(
                "  " + padded(op.operation.name, -8) + String(format: " %7d %7d %8d", op.succeeded + op.refused, op.succeeded, op.refused)
                    + quantiles.joined() + " " + padded(formatLatency(h.count == 0 ? 0 : h.max), 9))
        }
        let b = buyers
        out.append(
            "buyers: \(b.arrived) arrived, \(b.gotHold) got a hold, \(b.gaveUp) gave up refused; \(b.paid) paid (\(b.shipped) shipped whole), \(b.cancelled) cancelled, \(b.abandoned) abandoned, \(b.tooLate) came back too late, \(b.unfinished) unfinished at the end"
        )
        if let soldOutAfter {
            out.append(String(format: "sell-out: every item at 0 available after %.3f s", soldOutAfter.seconds))
        } else {
            out.append("sell-out: not every item was at 0 available at once (sampled every \(configuration.sampleInterval.wholeMilliseconds) ms)")
        }
        let t = totals
        out.append(
            "units: \(t.reserved) reserved, \(t.sold) sold in \(shipments) shipments, \(t.released) released, \(t.expired) expired, \(held) still held; \(t.restocked) restocked"
        )
        let codes = refusedByCode.sorted { $0.key < $1.key }.map { "\($0.key.name) \($0.value)" }
        out.append("refusals: \(codes.isEmpty ? "none" : codes.joined(separator: ", "))")
        out.append("item                    initial + restocks =   sold +   held + available   oversold  sold out at")
        for item in items {
            out.append(
                "  " + padded(item.item, -22)
                    + String(
                        format: " %7lld + %8lld = %6lld + %6lld + %9lld   %8lld  ", item.atStart.onHand.units, item.units.restocked.units,
                        item.units.sold.units, item.atEnd.reserved.units, item.atEnd.available.units,
                        (item.oversoldByReplies + item.oversoldByTarget).units)
                    + (item.soldOutAfter.map { String(format: "%.3f s", $0.seconds) } ?? "-"))
        }
        out.append(
            "oversold: \(oversold) (by the replies \(oversoldByReplies): sold + held never beyond stock + restocks; by the target \(oversoldByTarget): reserved never beyond on_hand)"
        )
        out.append(
            "audit: \(auditedHoldCount) holds no reply closed were read at the end; units unaccounted \(unaccounted); replies at odds with their requests \(mismatchCount)"
        )
        let d = counterDelta
        out.append(
            "engine counters: reserved \(d.reserved), fulfilled \(d.fulfilled), released \(d.released), expired \(d.expired) (\(d == countedByReplies ? "the replies agree" : "the replies count \(countedByReplies.reserved) \(countedByReplies.fulfilled) \(countedByReplies.released) \(countedByReplies.expired)"))"
        )
        let found = problems
        out.append(found.isEmpty ? "result: OK" : "result: FAILED")
        for problem in found { out.append("  \(problem)") }
        return out
    }

    /// `text` padded with spaces to `width` characters: on the left for a positive width, on the
    /// right for a negative one.
    private func padded(_ text: String, _ width: Int) -> String {
        let fill = String(repeating: " ", count: max(0, abs(width) - text.count))
        return width < 0 ? text + fill : fill + text
    }

    /// One JSON object on one line, keys sorted.
    public var json: String {
        func microseconds(_ ns: UInt64) -> Double { (Double(ns) / 10).rounded() / 100 }
        var latency: [String: Any] = [:]
        for op in operations {
            let h = op.latency
            latency[op.operation.name] = [
                "count": op.succeeded + op.refused, "ok": op.succeeded, "refused": op.refused,
                "p50_us": microseconds(h.value(atQuantile: 0.5)), "p90_us": microseconds(h.value(atQuantile: 0.9)),
                "p99_us": microseconds(h.value(atQuantile: 0.99)), "p999_us": microseconds(h.value(atQuantile: 0.999)),
                "max_us": microseconds(h.count == 0 ? 0 : h.max),
            ]
        }
        let t = totals
        let b = buyers
        let c = configuration
        let object: [String: Any] = [
            "scenario": "flash-sale", "target": target, "seed": c.seed, "buyers": c.buyerCount, "ramp_s": c.ramp.seconds, "duration_s": c.duration.seconds,
            "items": c.itemCount, "stock_per_item": c.stockPerItem.units, "ttl_s": c.holdTTL.components.seconds, "workers": c.workerCount,
            "restocks": c.restockCount, "restock_units": c.restockUnits.units,
            "seconds": elapsed.seconds, "ops": operationCount, "ops_per_s": Int(operationsPerSecond), "latency": latency,
            "refused": Dictionary(uniqueKeysWithValues: refusedByCode.map { ($0.key.name, $0.value) }),
            "sold_out_after_s": soldOutAfter.map { $0.seconds as Any } ?? NSNull(),
            "buyer_outcomes": [
                "arrived": b.arrived, "got_hold": b.gotHold, "gave_up": b.gaveUp, "paid": b.paid, "shipped": b.shipped, "cancelled": b.cancelled,
                "abandoned": b.abandoned, "too_late": b.tooLate, "unfinished": b.unfinished,
            ],
            "units": [
                "reserved": t.reserved.units, "sold": t.sold.units, "released": t.released.units, "expired": t.expired.units, "held": held.units,
                "restocked": t.restocked.units,
            ],
            "shipments": shipments,
            "per_item": items.map { item -> [String: Any] in
                [
                    "item": item.item, "initial": item.atStart.onHand.units, "restocked": item.units.restocked.units, "sold": item.units.sold.units,
                    "held": item.atEnd.reserved.units, "available": item.atEnd.available.units, "oversold": (item.oversoldByReplies + item.oversoldByTarget).units,
                    "identity_holds": item.identityHolds, "sold_out_after_s": item.soldOutAfter.map { $0.seconds as Any } ?? NSNull(),
                ]
            },
            "oversold": oversold.units, "oversold_by_replies": oversoldByReplies.units, "oversold_by_target": oversoldByTarget.units,
            "unaccounted": unaccounted.units, "mismatches": mismatchCount, "audited_holds": auditedHoldCount,
            "engine_counters_agree": counterDelta == countedByReplies, "problems": problems, "ok": problems.isEmpty,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
