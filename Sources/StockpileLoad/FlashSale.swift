// The flash-sale scenario: buyers arrive over a ramp, hold 1–3 hot items with a short TTL, then pay
// (and the order ships, sometimes in two parts), cancel, abandon the hold to expiry, or come back
// too late; deliveries restock every item mid-sale. Workers run the buyers, a restocker the
// deliveries, and a monitor samples availability (for the sell-out moment) and prints a progress
// line every second. At the end, an audit balances every unit the replies moved against the
// target's own figures. The same code drives the engine in-process or a server over TCP.

import Foundation
import Stockpile

public struct FlashSale: Sendable {
    public let configuration: FlashSaleConfiguration
    public let target: any SaleTarget

    public init(configuration: FlashSaleConfiguration, target: any SaleTarget) {
        precondition(configuration.problems.isEmpty, "a flash sale needs a valid configuration: \(configuration.problems)")
        self.configuration = configuration
        self.target = target
    }

    /// Runs the sale and audits it. `progress` gets the progress lines as they come. Throws when the
    /// target cannot be reached to set up or audit the sale; a channel that fails mid-sale is
    /// reported in the report's problems instead.
    public func run(progress: @escaping @Sendable (String) -> Void) async throws(SaleTargetError) -> FlashSaleReport {
        let c = configuration
        let items = c.items
        let blocking = target.channelsBlock

        // Before the clock starts: the stock, the engine's counters, and a channel for every worker,
        // so that connecting is no part of the sale.
        let prepared = await runAllowingBlocking(blocking, name: "flash-sale setup") { () async -> Result<Preparation, SaleTargetError> in
            do throws(SaleTargetError) {
                return .success(try await prepare(items: items))
            } catch {
                return .failure(error)
            }
        }
        let preparation = try prepared.get()

        let workerCount = min(c.workerCount, c.buyerCount)
        var dealt: [[(number: Int, plan: BuyerPlan)]] = Array(repeating: [], count: workerCount)
        for number in 0..<c.buyerCount { dealt[number % workerCount].append((number, BuyerPlan(number: number, configuration: c))) }
        let boxes = (0...workerCount).map { _ in TallyBox(itemCount: items.count) }
        let restockBox = boxes[workerCount]

        // With blocking channels every worker, the restocks and the monitor get a thread of their
        // own from the moment their task starts: a task started on the cooperative pool would first
        // wait for a free pool thread, which a busy process may not have for the whole sale.
        let threads = SaleThreads(blocking: blocking, count: workerCount + 2)
        defer { threads.stop() }
        let start = ContinuousClock.now
        let deadline = start + c.duration
        let sellOut = await withTaskGroup(of: SellOut?.self) { group in
            for w in 0..<workerCount {
                let worker = SaleWorker(configuration: c, items: items, buyers: dealt[w], start: start, deadline: deadline, box: boxes[w])
                let channel = preparation.workerChannels[w]
                group.addTask(executorPreference: threads.executor(w)) {
                    await threads.run { await worker.run(channel: channel) }
                    return nil
                }
            }
            group.addTask(executorPreference: threads.executor(workerCount)) {
                await threads.run { await restock(items: items, on: preparation.restockChannel, start: start, box: restockBox) }
                return nil
            }
            group.addTask(executorPreference: threads.executor(workerCount + 1)) {
                await threads.run {
                    await monitor(items: items, on: preparation.monitorChannel, start: start, deadline: deadline, boxes: boxes, progress: progress)
                }
            }
            var found = SellOut(itemCount: items.count)
            for await result in group { if let result { found = result } }
            return found
        }
        let elapsed = ContinuousClock.now - start

        var tally = SaleTally(itemCount: items.count)
        var failures: [String] = []
        for (index, box) in boxes.enumerated() {
            let t = box.tally.withLock { $0 }
            if let failure = t.failure { failures.append(index == workerCount ? "restocks: \(failure)" : "worker \(index): \(failure)") }
            tally.merge(t)
        }
        if let failure = sellOut.failure { failures.append("monitor: \(failure)") }

        let auditResult = await runAllowingBlocking(blocking, name: "flash-sale audit") { [tally] () async -> Result<Audit, SaleTargetError> in
            do throws(SaleTargetError) {
                return .success(try await self.audit(tally: tally, items: items, on: preparation.setupChannel))
            } catch {
                return .failure(error)
            }
        }
        let findings = try auditResult.get()

        var itemAudits: [FlashSaleReport.ItemAudit] = []
        for i in items.indices {
            itemAudits.append(
                FlashSaleReport.ItemAudit(
                    item: items[i], atStart: preparation.atStart[i], units: findings.units[i], held: findings.held[i], atEnd: findings.atEnd[i],
                    soldOutAfter: sellOut.itemSoldOutAfter[i]))
        }
        var counted = UnitCounters()
        for u in findings.units {
            counted.reserved += u.reserved
            counted.fulfilled += u.sold
            counted.released += u.released
            counted.expired += u.expired
        }
        return FlashSaleReport(
            configuration: c, target: target.description, elapsed: elapsed,
            operations: SaleOperation.allCases.map {
                FlashSaleReport.OperationFigures(
                    operation: $0, succeeded: tally.succeeded[$0.rawValue], refused: tally.refused[$0.rawValue], latency: tally.latency[$0.rawValue])
            },
            refusedByCode: tally.refusedByCode, buyers: tally.buyers, shipments: tally.shipments, items: itemAudits,
            soldOutAfter: sellOut.allSoldOutAfter, counterDelta: findings.counters - preparation.countersAtStart, countedByReplies: counted,
            auditedHoldCount: tally.openHolds.count, auditSettled: findings.settled, mismatchCount: tally.mismatchCount + findings.mismatches.count,
            mismatches: Array((tally.mismatches + findings.mismatches).prefix(SaleTally.describedMismatchesMax)), failures: failures)
    }

    // MARK: Before the sale

    private struct Preparation: Sendable {
        var setupChannel: any SaleChannel
        var workerChannels: [any SaleChannel]
        var restockChannel: any SaleChannel
        var monitorChannel: any SaleChannel
        var atStart: [ItemFigures]
        var countersAtStart: UnitCounters
    }

    private func prepare(items: [String]) async throws(SaleTargetError) -> Preparation {
        let setup = try target.openChannel()
        var atStart = try await setup.items(items)
        if configuration.stockPerItem.isPositive {
            for i in items.indices {
                switch try await setup.restock(item: items[i], units: configuration.stockPerItem) {
                case .ok(let figures): atStart[i] = figures
                case .refused(let r): throw SaleTargetError("stocking \(items[i]): \(r)")
                }
            }
        }
        let counters = try await setup.counters()
        var workers: [any SaleChannel] = []
        for _ in 0..<min(configuration.workerCount, configuration.buyerCount) { workers.append(try target.openChannel()) }
        return Preparation(
            setupChannel: setup, workerChannels: workers, restockChannel: try target.openChannel(), monitorChannel: try target.openChannel(),
            atStart: atStart, countersAtStart: counters)
    }

    // MARK: During the sale

    /// Deliveries at evenly spaced moments of the sale: k/(n+1) of the duration for k = 1…n.
    private func restock(items: [String], on channel: any SaleChannel, start: ContinuousClock.Instant, box: TallyBox) async {
        let c = configuration
        guard c.restockCount > 0, c.restockUnits.isPositive else { return }
        for k in 1...c.restockCount {
            await pause(until: start + c.duration * (Double(k) / Double(c.restockCount + 1)))
            for i in items.indices {
                let began = ContinuousClock.now
                do {
                    let outcome = try await channel.restock(item: items[i], units: c.restockUnits)
                    let elapsed = ContinuousClock.now - began
                    box.tally.withLock { t in
                        t.record(.restock, took: elapsed, refusal: outcome.refusal)
                        switch outcome {
                        case .ok: t.units[i].restocked += c.restockUnits
                        case .refused(let r): t.noteMismatch("ADJUST \(items[i]) MAIN \(c.restockUnits) REASON received refused \(r)")
                        }
                    }
                } catch {
                    box.tally.withLock { $0.failure = "\(error)" }
                    return
                }
            }
        }
    }

    /// What the monitor saw of the sell-out.
    struct SellOut: Sendable {
        var itemSoldOutAfter: [Duration?]
        var allSoldOutAfter: Duration?
        var failure: String?
        init(itemCount: Int) { itemSoldOutAfter = Array(repeating: nil, count: itemCount) }
    }

    /// Samples availability every `sampleInterval` until the end, and prints a progress line every
    /// `progressInterval`: operations and refusals per second, p99 over that second, units available.
    private func monitor(
        items: [String], on channel: any SaleChannel, start: ContinuousClock.Instant, deadline: ContinuousClock.Instant, boxes: [TallyBox],
        progress: @Sendable (String) -> Void
    ) async -> SellOut {
        let c = configuration
        var seen = SellOut(itemCount: items.count)
        var nextSample = start
        var nextProgress = start + c.progressInterval
        var lastProgress = start
        var lastOperations = 0
        var lastRefusals = 0
        var available = Quantity.zero
        var itemsAtZero = 0
        while nextSample < deadline {
            await pause(until: nextSample)
            let figures: [ItemFigures]
            do {
                figures = try await channel.items(items)
            } catch {
                seen.failure = "\(error)"
                return seen
            }
            let at = ContinuousClock.now - start
            available = figures.reduce(.zero) { $0 + $1.available.clampedAtZero }
            itemsAtZero = 0
            for i in figures.indices where !figures[i].available.isPositive {
                itemsAtZero += 1
                if seen.itemSoldOutAfter[i] == nil { seen.itemSoldOutAfter[i] = at }
            }
            if seen.allSoldOutAfter == nil && itemsAtZero == figures.count { seen.allSoldOutAfter = at }

            let now = ContinuousClock.now
            if now >= nextProgress {
                var operations = 0
                var refusals = 0
                var latency = LatencyHistogram()
                for box in boxes {
                    let recent = box.takeRecent()
                    operations += recent.operations
                    refusals += recent.refusals
                    latency.merge(recent.latency)
                }
                let seconds = max((now - lastProgress).seconds, 1e-9)
                progress(
                    String(
                        format: "[%5.1f s] %8.0f ops/s, %8.0f refused/s, p99 ", (now - start).seconds, Double(operations - lastOperations) / seconds,
                        Double(refusals - lastRefusals) / seconds) + formatLatency(latency.value(atQuantile: 0.99))
                        + "; \(available) units available, \(itemsAtZero)/\(items.count) items at 0")
                lastOperations = operations
                lastRefusals = refusals
                lastProgress = now
                while nextProgress <= now { nextProgress += c.progressInterval }
            }
            nextSample += c.sampleInterval
            if nextSample < now { nextSample = now }
        }
        return seen
    }
}

/// A latency in nanoseconds, in the unit that reads best: "38.2 us", "1.25 ms".
func formatLatency(_ nanoseconds: UInt64) -> String {
    let us = Double(nanoseconds) / 1000
    if us < 1000 { return String(format: "%.1f us", us) }
    return String(format: "%.2f ms", us / 1000)
}
