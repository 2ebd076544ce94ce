// The flash-sale scenario's command line: flags into a `FlashSaleConfiguration`, the target (the
// engine in this process, or `--target tcp://HOST:PORT`), the run, and its report. Exit status 0
// when the audit finds nothing wrong (0 oversold, every unit accounted for, the target's figures
// agree with the replies), 1 when it finds something, 2 when the run could not start.

import Foundation
import Stockpile
import StockpileLoad

private let flashSaleUsage = """
    usage: stockpile-bench flash-sale [--buyers N] [--ramp S] [--duration S] [--items N] [--stock N]
                                      [--seed N] [--ttl S] [--workers N] [--restocks N] [--restock-units N]
                                      [--abandon P] [--cancel P] [--late P] [--split P] [--attempts N]
                                      [--shards N | --target tcp://HOST:PORT] [--json]
      --buyers         buyers in all (default 10000), arriving at random over the ramp
      --ramp           seconds over which buyers arrive (default 0.4 x duration)
      --duration       seconds of sale (default 5); nothing starts after it, then the audit runs
      --items          hot items, FLASH-<run>-1 … (default 5); the first ones are the most wanted
      --stock          units of each item at the start (default 500)
      --seed           seed of every buyer's cart, fate and pauses (default: random, printed)
      --ttl            seconds a cart's hold lasts (default 2): abandoned carts expire during the run
      --workers        in-process: tasks; over TCP: connections (default 16)
      --restocks       deliveries during the sale, evenly spaced (default 2)
      --restock-units  units of each item per delivery (default 100)
      --abandon P      share of buyers who leave their hold to expire (default 0.25)
      --cancel P       share who release it (default 0.10)
      --late P         share who pay after the hold expired (default 0.05); the rest pay on time
      --split P        share of paid orders of 2+ units shipped in two parts (default 0.30)
      --attempts N     RESERVE attempts per buyer before giving up (default 5)
      --shards N       in-process: shards of the engine (default 16)
      --target         drive a running `stockpile serve` (no authentication) instead of an engine here
      --json           end with one line: a JSON object with the figures
    """

/// Parses the flash sale's flags (everything after `flash-sale`) and runs it. Nonisolated so that
/// its tasks do not hop to the main actor.
nonisolated func runFlashSaleScenario(_ arguments: [String]) async -> Int32 {
    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("stockpile-bench flash-sale: \(message)\n".utf8))
        exit(2)
    }
    var args = arguments[...]
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fail("\(flag) needs a value") }
        return v
    }
    func seconds(_ flag: String) -> Duration {
        let v = value(flag)
        guard let d = Double(v), d >= 0, d <= 86_400 else { fail("\(flag) must be seconds (0-86400), not '\(v)'") }
        return .milliseconds(Int64((d * 1000).rounded()))
    }
    func whole(_ flag: String, in range: ClosedRange<Int64>) -> Int64 {
        let v = value(flag)
        guard let n = Int64(v), range.contains(n) else { fail("\(flag) must be a whole number in \(range.lowerBound)...\(range.upperBound), not '\(v)'") }
        return n
    }
    func share(_ flag: String) -> Double {
        let v = value(flag)
        guard let p = Double(v), (0...1).contains(p) else { fail("\(flag) must be a share between 0 and 1, not '\(v)'") }
        return p
    }

    var seed = UInt64.random(in: 0...UInt64.max)
    var ramp: Duration?
    var shards = 16
    var target: TCPTarget?
    var json = false
    let runTag = String(Int(Date().timeIntervalSince1970 * 1000), radix: 36) + "." + String(getpid(), radix: 36)
    var c = FlashSaleConfiguration(seed: seed, runTag: runTag)
    while let flag = args.popFirst() {
        switch flag {
        case "--buyers": c.buyerCount = Int(whole(flag, in: 1...10_000_000))
        case "--ramp": ramp = seconds(flag)
        case "--duration": c.duration = seconds(flag)
        case "--items": c.itemCount = Int(whole(flag, in: 1...1_000))
        case "--stock": c.stockPerItem = Quantity(whole(flag, in: 0...Limits.quantityMax.units))
        case "--seed":
            let v = value(flag)
            guard let s = UInt64(v) else { fail("--seed must be a whole number 0-\(UInt64.max), not '\(v)'") }
            seed = s
        case "--ttl": c.holdTTL = .seconds(whole(flag, in: 1...Int64(Limits.ttlMax.components.seconds)))
        case "--workers": c.workerCount = Int(whole(flag, in: 1...10_000))
        case "--restocks": c.restockCount = Int(whole(flag, in: 0...1_000))
        case "--restock-units": c.restockUnits = Quantity(whole(flag, in: 0...Limits.quantityMax.units))
        case "--abandon": c.abandonShare = share(flag)
        case "--cancel": c.cancelShare = share(flag)
        case "--late": c.payTooLateShare = share(flag)
        case "--split": c.splitShipmentShare = share(flag)
        case "--attempts": c.reserveAttemptsMax = Int(whole(flag, in: 1...1_000))
        case "--shards": shards = Int(whole(flag, in: 1...64))
        case "--target":
            let v = value(flag)
            guard let t = TCPTarget(parsing: v) else { fail("--target takes tcp://HOST:PORT, not '\(v)'") }
            target = t
        case "--json": json = true
        case "-h", "--help":
            FileHandle.standardError.write(Data((flashSaleUsage + "\n").utf8))
            exit(2)
        default: fail("unknown flag '\(flag)'\n\(flashSaleUsage)")
        }
    }
    if target != nil && arguments.contains("--shards") { fail("--shards is for the in-process engine; with --target the server's own applies (stockpile serve --shards)") }
    c.seed = seed
    c.ramp = ramp ?? c.duration * 0.4
    if let problem = c.problems.first { fail(problem) }

    let saleTarget: any SaleTarget
    if let target {
        saleTarget = RESPSaleTarget(host: target.host, port: target.port)
    } else {
        saleTarget = EngineSaleTarget(engine: Engine(configuration: EngineConfiguration(shardCount: shards)))
    }
    print(FlashSaleReport.header(c, target: saleTarget.description))
    let report: FlashSaleReport
    do {
        report = try await FlashSale(configuration: c, target: saleTarget).run { line in print(line) }
    } catch {
        fail("\(error)")
    }
    for line in report.lines { print(line) }
    if json { print(report.json) }
    return report.problems.isEmpty ? 0 : 1
}
