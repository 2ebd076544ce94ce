// stockpile-bench: throughput and latency of reservations, in one of two modes.
//
//   In-process (no --target): the engine runs in this process, durability off unless --fsync says so.
//   swift run -c release stockpile-bench <hot|spread|multiline> [--tasks N] [--duration S] [--shards N]
//                                        [--cells N] [--fsync always|interval=<ms>|none] [--json]
//
//   TCP (--target): a running `stockpile serve` is driven over the wire by N client threads, each
//   keeping P requests in flight. Unlike redis-benchmark it goes on past error replies, so it can
//   drive a sell-out (a small --stock) and count the refusals by code.
//   swift run -c release stockpile-bench <hot|spread|multiline> --target tcp://HOST:PORT [--clients N]
//                                        [--pipeline P] [--duration S] [--cells N] [--stock N] [--json]
//
//   swift run -c release stockpile-bench crc [--duration S]    (the log's checksum, in GB/s)
//   swift run -c release stockpile-bench syncs [--data-dir D] [--duration S]   (the disk's fdatasync)
//
//   Durability (in-process, on a temporary data directory): `snapshot` measures the longest write
//   pause while a snapshot of --cells cells is written; `startup` the start-up from a snapshot of
//   --cells cells and --records records after it, the replay rate, and the log's bytes per reservation.
//   swift run -c release stockpile-bench snapshot|startup [--cells N] [--records N] [--tasks N] [--fsync …]
//
//   Memory (in-process, in memory): resident bytes per cell, per open and per closed one-line
//   reservation and per KEY, each the growth of VmRSS over a phase that adds only that kind of item.
//   swift run -c release stockpile-bench memory [--cells N] [--reservations M] [--shards S] [--json]
//
//   Flash sale (either mode): buyers arrive over a ramp, hold 1–3 hot items with a short TTL, then
//   pay and ship, cancel, abandon to expiry or pay too late, while deliveries restock mid-sale; a
//   progress line every second, then latency per operation, the sell-out moment and an audit of
//   every unit (StockpileLoad does the work; docs/LOAD-TESTING.md explains the report).
//   swift run -c release stockpile-bench flash-sale [--buyers N] [--duration S] [--items N] [--stock N]
//                                        [--seed N] [--target tcp://HOST:PORT] [--json] …  (--help: all flags)
//
// Every reservation scenario reserves for S seconds, then checks that nothing was oversold: reserved ≤ on_hand in
// every cell, and the growth of reserved is what the successful replies add up to.
// The last line of --json output is one JSON object with the figures.

import Foundation
import Stockpile
import StockpileServer

struct Options {
    var scenario = ""
    var tasks = 64
    /// In-process: commands per `Engine.execute(_ batch:)` call (1: one `reserve` call per request).
    var batch = 1
    var duration = 5.0
    var shards = EngineConfiguration.defaultShardCount
    var json = false
    var cells = 100_000
    /// Whether --cells was given (the memory scenario defaults to more).
    var cellsGiven = false
    /// memory: reservations made (half stay open, half are released); KEYs are a quarter of them.
    var reservations = 1_000_000
    var durability = DurabilityPolicy.none
    /// Whether --fsync was given (the durability scenarios default to a log).
    var fsyncGiven = false
    /// startup: log records written after the snapshot.
    var records = 5_000_000
    /// startup: a data directory to keep (one with a log already is only started up).
    var dataDirectory: String?
    /// startup: threads that apply the log (`EngineConfiguration.replayThreadCount`).
    var replayThreads = EngineConfiguration.defaultReplayThreadCount
    /// TCP mode: the server to drive; nil runs the engine in-process.
    var target: TCPTarget?
    var clients = 50
    var pipeline = 1
    var pipelineGiven = false
    /// TCP mode: units added to every cell before the run.
    var stock: Int64 = 1_000_000_000
}

func usage() -> Never {
    let text = """
        usage: stockpile-bench <scenario> [--tasks N] [--duration S] [--shards N] [--cells N]
                               [--fsync always|interval=<ms>|none] [--json]
               stockpile-bench <scenario> --target tcp://HOST:PORT [--clients N] [--pipeline P]
                               [--duration S] [--cells N] [--stock N] [--json]
               stockpile-bench memory [--cells N] [--reservations M] [--shards S] [--json]
        in-process (no --target):
          --tasks      concurrent tasks (default 64)
          --batch      commands per Engine.execute(_ batch:) call (default 1: one reserve call each);
                       each command's latency is its batch's
          --shards     shards of the engine under test (default 16)
          --fsync      durability of the engine under test (default none); with a log, the data
                       directory is a fresh temporary directory, removed afterwards
        over TCP (--target tcp://HOST:PORT, a `stockpile serve` without authentication):
          --clients    client threads, one connection each (default 50)
          --pipeline   requests each client keeps in flight: it sends P, reads P replies, repeats
                       (default 1)
          --stock      units added to every cell (ADJUST … REASON received) before the run (default
                       1000000000); a small one, e.g. --stock 20000 with hot, drives a sell-out, whose
                       refusals are counted by code (INSUFFICIENT). Cells keep what earlier runs
                       left, so selling out exactly --stock needs a server started afresh.
        both:
          --duration   seconds of reserving (default 5)
          --cells      cells of spread and multiline (default 100000)
          --json       end with one line: a JSON object with the figures
        scenarios (every request reserves 1 unit per line, in warehouse MAIN):
          hot        one cell, SKU-HOT
          spread     a random cell among --cells, SKU-0 … SKU-<cells-1>
          multiline  3 lines; in-process on cells in three different shards, over TCP on three
                     different random cells
          crc        not reservations: the log's CRC-32C in GB/s, CPU instruction against tables
          syncs      not reservations: the disk under --data-dir (default: the temporary directory)
                     with the log's kind of write, the ceiling of --fsync always: syncs per second
                     and a sync's latency for 256-byte appends each followed by fdatasync, from 1, 2
                     and 4 threads at once (does the disk overlap syncs?) and from one thread that
                     pauses 1 ms between them (a quiet log), --duration / 4 s each
          allocations  heap allocations per reserve, replay, release, adjust and cell query of the
                     engine in memory, per reservation of three lines in three shards, and per
                     RESERVE, STOCK and RELEASE through the request handler in pipelines of 16, and per
                     RESERVE in pipelines of 1 (counted by a malloc interposer, not timed)
          wire       RESERVEs in pipelines of --pipeline (default 16) through the request parser and
                     the request handler of an engine in memory, one turn per pipeline, without a
                     socket: the server loop's own work per request, timed (--cells cells, default
                     100000, 1 for the hot cell; --duration s worth at 200,000/s). Pin it to one CPU
                     to compare builds
          snapshot   --cells cells (e.g. 1000000) loaded, --tasks tasks reserving for --duration s while
                     one snapshot is written: its size and time, the longest write pause, and the
                     peak memory while it is written (--fsync defaults to always here)
          startup    --cells cells loaded, a snapshot, --records log records after it (default
                     5000000), then a timed start-up: snapshot load, replay rate, total, its peak
                     memory; and the log's bytes per reservation (--fsync defaults to interval=10 here). With --data-dir D
                     the directory is kept; one that has a log already is only started up;
                     --replay-threads N sets the threads that apply the log (default: one per core,
                     at most 4)
          memory     resident bytes per cell, per open and per closed one-line reservation and per
                     KEY, of an engine in memory: --cells cells (default 1000000) loaded by import,
                     --reservations M (default 1000000; 0 measures cells only) of which half stay
                     open and half are released, then M/4 adjustments with a KEY each. Each figure is
                     the growth of VmRSS (after malloc_trim) over a phase adding only that item. With
                     --fsync always|interval=<ms>, of an engine with a log (in --data-dir, or a
                     directory of its own removed at the end), which keeps a KEY as its record's LSN
        the flash sale, in-process or over TCP, with flags of its own (stockpile-bench flash-sale --help):
               stockpile-bench flash-sale [--buyers N] [--ramp S] [--duration S] [--items N] [--stock N]
                               [--seed N] [--ttl S] [--target tcp://HOST:PORT] [--json] …
          flash-sale buyers hold, pay, ship, cancel and abandon carts of hot items while restocks
                     arrive; reports latency per operation, the sell-out moment, refusals by code and
                     an audit: 0 oversold, sold + held + available = stock + restocks per item
        """
    FileHandle.standardError.write(Data((text + "\n").utf8))
    exit(2)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()[...]
    // The flags that belong to one mode only, so that a misplaced one is reported, not ignored.
    var inProcessFlags: [String] = []
    var tcpFlags: [String] = []
    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("stockpile-bench: \(message)\n".utf8))
        exit(2)
    }
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fail("\(flag) needs a value") }
        return v
    }
    func number(_ flag: String) -> Double {
        let v = value(flag)
        guard let d = Double(v), d > 0 else { fail("\(flag) must be a positive number, not '\(v)'") }
        return d
    }
    func integer(_ flag: String, in range: ClosedRange<Int64>) -> Int64 {
        let v = value(flag)
        guard let n = Int64(v), range.contains(n) else { fail("\(flag) must be a whole number in \(range.lowerBound)...\(range.upperBound), not '\(v)'") }
        return n
    }
    while let a = args.popFirst() {
        switch a {
        case "--tasks":
            o.tasks = Int(number(a))
            inProcessFlags.append(a)
        case "--batch":
            o.batch = Int(integer(a, in: 1...100_000))
            inProcessFlags.append(a)
        case "--duration": o.duration = number(a)
        case "--shards":
            o.shards = min(64, Int(number(a)))
            inProcessFlags.append(a)
        case "--cells":
            o.cells = Int(number(a))
            o.cellsGiven = true
        case "--reservations":
            o.reservations = Int(integer(a, in: 0...100_000_000))
            inProcessFlags.append(a)
        case "--json": o.json = true
        case "--fsync":
            let v = value(a)
            guard let policy = DurabilityPolicy(parsing: v) else { fail("--fsync takes always, interval=<ms> or none, not '\(v)'") }
            o.durability = policy
            o.fsyncGiven = true
            inProcessFlags.append(a)
        case "--data-dir":
            o.dataDirectory = value(a)
            inProcessFlags.append(a)
        case "--records":
            o.records = Int(integer(a, in: 1...1_000_000_000))
            inProcessFlags.append(a)
        case "--replay-threads":
            o.replayThreads = Int(integer(a, in: 1...64))
            inProcessFlags.append(a)
        case "--target":
            let v = value(a)
            guard let target = TCPTarget(parsing: v) else { fail("--target takes tcp://HOST:PORT, not '\(v)'") }
            o.target = target
        case "--clients":
            o.clients = Int(integer(a, in: 1...100_000))
            tcpFlags.append(a)
        case "--pipeline":
            o.pipeline = Int(integer(a, in: 1...100_000))
            o.pipelineGiven = true
            tcpFlags.append(a)
        case "--stock":
            o.stock = integer(a, in: 1...Limits.quantityMax.units)
            tcpFlags.append(a)
        case "-h", "--help": usage()
        default:
            if a.hasPrefix("-") || !o.scenario.isEmpty { usage() }
            o.scenario = a
        }
    }
    guard ["hot", "spread", "multiline", "crc", "syncs", "snapshot", "startup", "allocations", "memory", "wire"].contains(o.scenario) else { usage() }
    // The wire scenario answers pipelines in-process: --pipeline is its own, up to what a server's
    // loop answers in one turn of a connection.
    if o.scenario == "wire" {
        if o.target != nil { fail("wire runs the request handler in-process; it takes no --target") }
        if o.pipeline > ServerConfiguration.batchRequestCountMaxDefault {
            fail("wire's --pipeline is at most \(ServerConfiguration.batchRequestCountMaxDefault), the requests a server's loop answers of a connection in one turn")
        }
        tcpFlags.removeAll { $0 == "--pipeline" }
    }
    if o.target == nil, let flag = tcpFlags.first { fail("\(flag) needs --target tcp://HOST:PORT (without it the engine runs in-process)") }
    if o.target != nil, let flag = inProcessFlags.first {
        if flag == "--tasks" { fail("--tasks is for the in-process mode; with --target use --clients and --pipeline") }
        fail("\(flag) is for the in-process mode; with --target the server's own applies (stockpile serve \(flag))")
    }
    return o
}

// The flash sale has flags of its own, so it is told apart before the other scenarios' parsing.
if let index = CommandLine.arguments.dropFirst().firstIndex(of: "flash-sale") {
    var rest = Array(CommandLine.arguments.dropFirst())
    rest.remove(at: index - 1)
    exit(await runFlashSaleScenario(rest))
}
let options = parseOptions()
if options.scenario == "crc" { exit(runCRCBenchmark(options)) }
if options.scenario == "syncs" { exit(runSyncsBenchmark(options)) }
if options.scenario == "allocations" { exit(await runAllocationBenchmark(options)) }
if options.scenario == "memory" { exit(await runMemoryBenchmark(options)) }
if options.scenario == "wire" { exit(await runWireBenchmark(options)) }
if options.scenario == "snapshot" { exit(await runSnapshotBenchmark(options)) }
if options.scenario == "startup" { exit(await runStartupBenchmark(options)) }
if let target = options.target { exit(runTCPBenchmark(options, target: target)) }
exit(await runBenchmark(options))

