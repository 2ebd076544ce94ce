// The flash-sale scenario, run small: in-process, over loopback against a server, and against
// targets that misreport, which the audit must catch. Every figure asserted comes from the run and
// is checked against the engine itself; nothing here asserts a time or a rate.

import Foundation
import Stockpile
import StockpileLoad
import Testing

/// The seed of a randomized test: STOCKPILE_SEED when set, otherwise `fallback`.
func testSeed(fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? fallback
}

@Suite("Flash sale scenario")
struct FlashSaleTests {
    /// A small sale that sells out quickly (about 750 units wanted of 120, plus 60 restocked) and
    /// whose abandoned holds expire before the end (TTL 1 s, everyone arrived by 0.5 s).
    static func smallSale(seed: UInt64, runTag: String, duration: Duration = .seconds(2)) -> FlashSaleConfiguration {
        var c = FlashSaleConfiguration(seed: seed, runTag: runTag)
        c.buyerCount = 300
        c.ramp = .milliseconds(500)
        c.duration = duration
        c.itemCount = 3
        c.stockPerItem = 40
        c.holdTTL = .seconds(1)
        c.workerCount = 4
        c.restockCount = 2
        c.restockUnits = 10
        c.splitShipmentShare = 0.5
        return c
    }

    static func run(_ c: FlashSaleConfiguration, on target: any SaleTarget, name: String) async throws -> FlashSaleReport {
        print("FlashSaleTests \(name): seed \(c.seed) (set STOCKPILE_SEED to repeat)")
        print(FlashSaleReport.header(c, target: target.description))
        let report = try await FlashSale(configuration: c, target: target).run { print($0) }
        for line in report.lines { print(line) }
        return report
    }

    /// What every honest run must show, checked against the engine the target drove.
    static func expectBalanced(_ report: FlashSaleReport, engine: Engine, seed: UInt64) async {
        let c = report.configuration
        #expect(report.problems.isEmpty, "seed \(seed): \(report.problems)")
        #expect(report.oversold == .zero, "seed \(seed)")
        #expect(report.failures.isEmpty, "seed \(seed): \(report.failures)")

        for item in report.items {
            // sold + held + available = stock + restocks, released and expired units back in available.
            #expect(
                item.units.sold + item.atEnd.reserved + item.atEnd.available == item.atStart.onHand + item.units.restocked,
                "seed \(seed): \(item.item)")
            #expect(item.held == item.atEnd.reserved, "seed \(seed): \(item.item) held by the replies \(item.held), by STOCK \(item.atEnd.reserved)")
            #expect(item.unaccounted == .zero, "seed \(seed): \(item.item)")
            #expect(item.units.restocked == c.restockUnits + c.restockUnits, "seed \(seed): \(item.item) restocks")
            #expect(item.units.sold + item.held <= item.supply, "seed \(seed): \(item.item) promised beyond its supply")

            // The engine's own shelf: what left it is exactly what the replies say was sold. (Holds
            // may still expire after the audit, so reserved is not compared here.)
            guard case .ok(let cell) = await engine.cell(variant: item.item, warehouse: "MAIN") else {
                Issue.record("seed \(seed): the engine has no cell \(item.item) MAIN")
                continue
            }
            #expect(cell.onHand == item.atStart.onHand + item.units.restocked - item.units.sold, "seed \(seed): \(item.item)")
            #expect(cell.reserved <= cell.onHand, "seed \(seed): \(item.item) oversold in the engine")
        }
        let problems = await engine.verify()
        #expect(problems.isEmpty, "seed \(seed): \(problems)")
        let counters = await engine.stats().counters
        #expect(counters.unitsReserved == report.totals.reserved, "seed \(seed)")
        #expect(counters.unitsFulfilled == report.totals.sold, "seed \(seed)")
        #expect(counters.unitsReleased == report.totals.released, "seed \(seed)")
        #expect(counters.unitsExpired >= report.totals.expired, "seed \(seed)")

        // The scenario did what it claims: holds expired, carts were cancelled, orders shipped (some
        // in two parts), restocks arrived, and the hot items ran out.
        #expect(report.totals.expired.isPositive, "seed \(seed): no hold expired")
        #expect(report.totals.released.isPositive, "seed \(seed): no cart was cancelled")
        #expect(report.totals.sold.isPositive, "seed \(seed): nothing shipped")
        #expect(report.shipments > report.buyers.shipped, "seed \(seed): no order shipped in two parts")
        #expect(report.refusedByCode[.insufficient, default: 0] > 0, "seed \(seed): nothing sold out")
        #expect(report.items.contains { $0.soldOutAfter != nil }, "seed \(seed): no item was ever seen at 0")
        for op in SaleOperation.allCases {
            #expect(report.operations[op.rawValue].succeeded > 0, "seed \(seed): no \(op.name) succeeded")
        }
    }

    @Test("an in-process flash sale sells out, oversells nothing and accounts for every unit")
    func inProcess() async throws {
        let seed = testSeed(fallback: 20_260_601)
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4))
        let report = try await Self.run(Self.smallSale(seed: seed, runTag: "local"), on: EngineSaleTarget(engine: engine, threadPerWorker: true), name: "in-process")
        await Self.expectBalanced(report, engine: engine, seed: seed)
    }

    @Test("the same sale against a server over loopback oversells nothing and balances with the server's engine")
    func overTCP() async throws {
        let seed = testSeed(fallback: 20_260_602)
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4))
        let report = try await withLoopbackServer(engine: engine) { server in
            try await Self.run(
                Self.smallSale(seed: seed, runTag: "tcp"), on: RESPSaleTarget(host: "127.0.0.1", port: server.port), name: "over TCP")
        }
        #expect(report.target.hasPrefix("tcp://127.0.0.1:"))
        await Self.expectBalanced(report, engine: engine, seed: seed)
    }

    @Test("the audit catches a target whose figures disagree with its replies", arguments: [Misreport.holdBehindTheSalesBack, .stockOverstatesReserved])
    func catchesMisreports(_ misreport: Misreport) async throws {
        let seed = testSeed(fallback: 20_260_603)
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4))
        let target = MisreportingTarget(engine: engine, misreport: misreport)
        let report = try await Self.run(Self.smallSale(seed: seed, runTag: "bad", duration: .milliseconds(1500)), on: target, name: "\(misreport)")
        #expect(!report.problems.isEmpty, "seed \(seed): the audit found nothing wrong with \(misreport)")
        switch misreport {
        case .holdBehindTheSalesBack:
            // One unit per item per restock went to a hold the replies never saw.
            #expect(report.items.allSatisfy { !$0.targetAgrees }, "seed \(seed)")
            #expect(report.oversoldByReplies == .zero, "seed \(seed)")
        case .stockOverstatesReserved:
            #expect(report.oversoldByTarget == Quantity(Int64(report.items.count)), "seed \(seed)")
            #expect(report.items.allSatisfy { !$0.identityHolds || !$0.targetAgrees }, "seed \(seed)")
        }
    }
}

enum Misreport: CustomStringConvertible, Sendable {
    /// Every restock also reserves one unit under an id the sale does not know.
    case holdBehindTheSalesBack
    /// STOCK reports one unit more reserved than on hand.
    case stockOverstatesReserved

    var description: String {
        switch self {
        case .holdBehindTheSalesBack: "a hold behind the sale's back"
        case .stockOverstatesReserved: "STOCK overstating reserved"
        }
    }
}

/// The in-process target with one lie in it.
struct MisreportingTarget: SaleTarget {
    let engine: Engine
    let misreport: Misreport
    var description: String { "in-process engine with \(misreport)" }
    /// A thread per worker, like the honest in-process test: the sale must not wait for the pool.
    var channelsBlock: Bool { true }
    func openChannel() -> any SaleChannel {
        MisreportingChannel(honest: EngineSaleTarget(engine: engine).openChannel(), engine: engine, misreport: misreport)
    }
}

struct MisreportingChannel: SaleChannel {
    let honest: any SaleChannel
    let engine: Engine
    let misreport: Misreport

    func reserve(id: String, lines: [SaleLine], ttl: Duration) async throws(SaleTargetError) -> Outcome<HoldFigures> {
        try await honest.reserve(id: id, lines: lines, ttl: ttl)
    }
    func confirm(id: String) async throws(SaleTargetError) -> Outcome<HoldFigures> { try await honest.confirm(id: id) }
    func fulfill(id: String, line: SaleLine?) async throws(SaleTargetError) -> Outcome<HoldFigures> { try await honest.fulfill(id: id, line: line) }
    func release(id: String) async throws(SaleTargetError) -> Outcome<HoldFigures> { try await honest.release(id: id) }
    func holds(_ ids: [String]) async throws(SaleTargetError) -> [Outcome<HoldFigures>] { try await honest.holds(ids) }
    func counters() async throws(SaleTargetError) -> UnitCounters { try await honest.counters() }

    func restock(item: String, units: Quantity) async throws(SaleTargetError) -> Outcome<ItemFigures> {
        let outcome = try await honest.restock(item: item, units: units)
        if misreport == .holdBehindTheSalesBack, outcome.value != nil {
            let id = "hidden-\(item)-\(UInt64.random(in: 0...UInt64.max))"
            _ = await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: item, warehouse: "MAIN", quantity: 1)]))
        }
        return outcome
    }

    func items(_ names: [String]) async throws(SaleTargetError) -> [ItemFigures] {
        let figures = try await honest.items(names)
        guard misreport == .stockOverstatesReserved else { return figures }
        return figures.map { ItemFigures(onHand: $0.onHand, reserved: $0.onHand + 1) }
    }
}
