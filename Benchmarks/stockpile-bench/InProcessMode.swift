// The in-process mode: the engine runs in this process, with durability off unless --fsync says
// otherwise, and N tasks of the cooperative pool reserve for S seconds. The oversell check reads the
// cells from the engine itself.

import CAllocationCounter
import CStockpileLinux
import Foundation
import Stockpile
import Synchronization

struct TaskResult: Sendable {
    var histogram = LatencyHistogram()
    var ok = 0
    var refused = 0
}

/// A task's latencies (ns) and the cells of its successful replies' lines (one line is one unit), not
/// yet counted: written in order and counted in bulk, into `TaskResult.histogram` and the tally,
/// each time a list is `handedAt` long. Counted at once, each latency touched a random line of the
/// task's 30 KB histogram (30 MB for a thousand tasks), and each cell its own counter in a task's
/// array of one per cell (400 MB for a thousand tasks): a cache miss per request that is the load
/// generator's, not the engine's. Kept in buffers, not arrays: an append to an array first reads the
/// array's header to ask whether its storage is shared, and after each suspension of one of a
/// thousand tasks that read was a cache miss too (3% of the samples of `spread --fsync always
/// --tasks 1000`).
struct PendingCounts: ~Copyable {
    /// How long a list grows before it is counted: short, so that a thousand tasks' lists stay
    /// small and the tally's lock is held briefly.
    static let handedAt = 8192
    private let latencies = UnsafeMutablePointer<UInt64>.allocate(capacity: handedAt)
    private var latencyCount = 0
    private let cells = UnsafeMutablePointer<Int32>.allocate(capacity: handedAt)
    private var cellCount = 0

    deinit {
        latencies.deallocate()
        cells.deallocate()
    }

    /// Notes one request's latency, counting the list into `result` when it is `handedAt` long.
    @inline(__always) mutating func took(_ nanoseconds: UInt64, into result: inout TaskResult) {
        latencies[latencyCount] = nanoseconds
        latencyCount += 1
        if latencyCount == Self.handedAt { countLatencies(into: &result) }
    }

    /// Counts the latencies noted so far into `result`.
    mutating func countLatencies(into result: inout TaskResult) {
        for l in UnsafeBufferPointer(start: latencies, count: latencyCount) { result.histogram.record(l) }
        latencyCount = 0
    }

    /// Notes a successful line on cell `c`, handing the list to `tally` when it is `handedAt` long.
    @inline(__always) mutating func reserved(_ c: Int, tally: UnitTally) {
        cells[cellCount] = Int32(c)
        cellCount += 1
        if cellCount == Self.handedAt { handCells(to: tally) }
    }

    /// Hands the cells noted so far to `tally`.
    mutating func handCells(to tally: UnitTally) {
        tally.add(UnsafeBufferPointer(start: cells, count: cellCount))
        cellCount = 0
    }
}

/// Units reserved by the successful replies, by cell index: what the engine's cells must show.
final class UnitTally: Sendable {
    private let counts: Mutex<[Int64]>

    init(cellCount: Int) { counts = Mutex([Int64](repeating: 0, count: cellCount)) }

    /// Adds one unit per cell in `cells`.
    func add(_ cells: UnsafeBufferPointer<Int32>) {
        counts.withLock { counts in
            for c in cells { counts[Int(c)] += 1 }
        }
    }

    var total: [Int64] { counts.withLock { $0 } }
}

/// Runs one scenario and reports it. Nonisolated on purpose: code at the top level of main.swift runs
/// on the main actor, and tasks made there would hop to it and back around every request.
nonisolated func runBenchmark(_ options: Options) async -> Int32 {
    let dataDirectory = NSTemporaryDirectory() + "stockpile-bench-\(getpid())"
    let engine: Engine
    do {
        engine = try Engine.open(dataDirectory: dataDirectory, durability: options.durability, configuration: EngineConfiguration(shardCount: options.shards))
    } catch {
        FileHandle.standardError.write(Data("stockpile-bench: \(error)\n".utf8))
        return 2
    }
    defer {
        try? engine.close()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
    let stockPerCell: Int64 = options.scenario == "hot" ? 1_000_000_000_000 : 1_000_000

    // Cells, and for multiline three groups of cells that each live in a different shard.
    let cellCount = options.scenario == "hot" ? 1 : options.cells
    let variants: [String] = options.scenario == "hot" ? ["SKU-HOT"] : (0..<cellCount).map { "SKU-\($0)" }
    // Loaded as one import: set one at a time, each waited for the log's sync, and with `--fsync
    // always` the 100,000 cells took longer than the run itself.
    let rows = variants.enumerated().map { StockRow(variant: $1, warehouse: "MAIN", onHand: Quantity(stockPerCell), line: $0 + 1) }
    guard case .ok = await engine.importStock(rows) else {
        FileHandle.standardError.write(Data("stockpile-bench: loading the cells failed\n".utf8))
        return 2
    }
    // Each cell's line, made once: the generator picks a cell by index and builds no string and no
    // array per request, so what is measured is the engine. A one-line request's array is the task's
    // own, its line replaced in place once the request (or the batch) that held it is done: an array
    // shared per cell cost an atomic increment of its reference count, and a cache miss, per request,
    // and with both cores reserving, the line of that count moved between them (a fifth of a batched
    // run's samples were retains and releases of those arrays).
    let cellLines: [ReserveLine] = variants.map { ReserveLine(variant: $0, warehouse: "MAIN", quantity: 1) }
    let router = ShardRouter(count: options.shards)
    var byShard: [[Int]] = Array(repeating: [], count: options.shards)
    for (i, v) in variants.enumerated() { byShard[router.shard(for: CellKey(variant: v, warehouse: "MAIN"))].append(i) }
    let populatedShards = byShard.filter { !$0.isEmpty }
    if options.scenario == "multiline" && populatedShards.count < 3 {
        FileHandle.standardError.write(Data("stockpile-bench: multiline needs cells in at least 3 shards\n".utf8))
        exit(2)
    }

    let tally = UnitTally(cellCount: cellCount)
    let deadline = monotonicNanoseconds() + UInt64(options.duration * 1e9)
    let logBefore = engine.logStatus
    let allocationsBefore = stockpile_allocation_count()
    let cpuBefore = ProcessCPU.now()
    let started = ContinuousClock.now
    let results = await withTaskGroup(of: TaskResult.self) { group in
        for t in 0..<options.tasks {
            group.addTask {
                var r = TaskResult()
                // multiline: 4,096 requests of three lines made at the start, each with one cell in
                // each of three distinct shards, so that requests build no array while the clock runs.
                var multilineRequests: [(lines: [ReserveLine], cells: [Int])] = []
                if options.scenario == "multiline" {
                    var pickRNG = SplitMix64(seed: UInt64(t) &* 0x9E37_79B9_7F4A_7C15 &+ 7)
                    for _ in 0..<4096 {
                        var picked: [Int] = []
                        while picked.count < 3 {
                            let s = Int(pickRNG.next() % UInt64(populatedShards.count))
                            if !picked.contains(s) { picked.append(s) }
                        }
                        let cells = picked.map { populatedShards[$0][Int(pickRNG.next() % UInt64(populatedShards[$0].count))] }
                        multilineRequests.append((cells.map { cellLines[$0] }, cells))
                    }
                }
                var pending = PendingCounts()
                var rng = SplitMix64(seed: UInt64(t) &* 0x1234_5678_9ABC_DEF1 &+ 42)
                // Each request's cell is drawn one request ahead, and its line asked for then: among
                // 100,000 cells it is a cache miss, which a harness that has its next request ready
                // does not wait for, and which is not the engine's.
                var nextCell = Int(rng.next() % UInt64(cellCount))
                func prefetchCell(_ c: Int) {
                    cellLines.withUnsafeBufferPointer { stockpile_prefetch($0.baseAddress! + c) }
                }
                var i = 0
                var batch: [Command] = []
                var batchCells: [Int] = []
                // The request's cell (hot, spread), or which of the task's multiline requests it is.
                var cell = 0
                var multiline = -1
                var oneLine = [cellLines[0]]
                // A batch's one-line requests' arrays, one per place in the batch (`oneLine` for a batch).
                var batchLines: [[ReserveLine]] = options.batch > 1 ? (0..<options.batch).map { _ in [cellLines[0]] } : []
                var ids = RequestIDs(prefix: "t\(t)-")
                // An unbatched request starts when the one before it ended: one clock read per
                // request, where a read before and one after cost two (a tenth of a reservation's
                // time). Its latency takes in the generator's own work between the two (a few tens of
                // nanoseconds: drawing a cell, numbering the id), never less than the engine's.
                var previousEnd = monotonicNanoseconds()
                while true {
                    // Every 64 requests: an unbatched one's end is the clock's last reading.
                    if i & 63 == 0 && (options.batch > 1 ? monotonicNanoseconds() : previousEnd) >= deadline { break }
                    i += 1
                    let lines: [ReserveLine]
                    switch options.scenario {
                    case "hot":
                        cell = 0
                        lines = oneLine
                    case "spread":
                        let c = nextCell
                        nextCell = Int(rng.next() % UInt64(cellCount))
                        prefetchCell(nextCell)
                        cell = c
                        if options.batch > 1 {
                            // Unique again: the batch that held it is done and emptied.
                            batchLines[batch.count][0] = cellLines[c]
                            lines = batchLines[batch.count]
                        } else {
                            oneLine[0] = cellLines[c]
                            lines = oneLine
                        }
                    default:
                        // One of the task's requests made before the clock started, in turn.
                        multiline = i & (multilineRequests.count - 1)
                        lines = multilineRequests[multiline].lines
                    }
                    if options.batch > 1 {
                        // A batch of requests in one call; the cells of each are kept for the tally.
                        if i == 1 { batch.reserveCapacity(options.batch) }
                        batch.append(.reserve(ReserveRequest(id: ids.next(), lines: lines)))
                        if multiline >= 0 { batchCells += multilineRequests[multiline].cells } else { batchCells.append(cell) }
                        guard batch.count == options.batch else { continue }
                        let begin = monotonicNanoseconds()
                        let outcomes = await engine.execute(batch)
                        let elapsed = monotonicNanoseconds() &- begin
                        let perRequest = batchCells.count / batch.count
                        for (k, outcome) in outcomes.enumerated() {
                            pending.took(elapsed, into: &r)
                            guard case .ok = outcome else {
                                r.refused += 1
                                continue
                            }
                            r.ok += 1
                            for c in batchCells[(k * perRequest)..<((k + 1) * perRequest)] { pending.reserved(c, tally: tally) }
                        }
                        batch.removeAll(keepingCapacity: true)
                        batchCells.removeAll(keepingCapacity: true)
                        continue
                    }
                    let outcome = await engine.reserve(ReserveRequest(id: ids.next(), lines: lines))
                    let end = monotonicNanoseconds()
                    pending.took(end &- previousEnd, into: &r)
                    previousEnd = end
                    switch outcome {
                    case .ok:
                        r.ok += 1
                        if multiline >= 0 {
                            for c in multilineRequests[multiline].cells { pending.reserved(c, tally: tally) }
                        } else {
                            pending.reserved(cell, tally: tally)
                        }
                    case .refused:
                        r.refused += 1
                    }
                }
                pending.handCells(to: tally)
                pending.countLatencies(into: &r)
                return r
            }
        }
        var all: [TaskResult] = []
        for await r in group { all.append(r) }
        return all
    }
    let elapsed = ContinuousClock.now - started
    let cpu = ProcessCPU.now() - cpuBefore
    let allocations = stockpile_allocation_count() - allocationsBefore
    let logAfter = engine.logStatus
    let syncs = logAfter.syncCount - logBefore.syncCount

    var histogram = LatencyHistogram()
    var ok = 0
    var refused = 0
    for r in results {
        histogram.merge(r.histogram)
        ok += r.ok
        refused += r.refused
    }
    let expected = tally.total

    // The oversell check: every cell's reserved is what the successful replies add up to, and never more
    // than on hand.
    var oversold: Int64 = 0
    var mismatched = 0
    for (c, v) in variants.enumerated() {
        guard case .ok(let cell) = await engine.cell(variant: v, warehouse: "MAIN") else { continue }
        oversold += max(0, cell.reserved.units - cell.onHand.units)
        if cell.reserved.units != expected[c] { mismatched += 1 }
    }
    let problems = await engine.verify()

    let ops = ok + refused
    let seconds = Double(elapsed.wholeNanoseconds) / 1e9
    let opsPerSecond = Double(ops) / seconds
    let p50 = Double(histogram.value(atQuantile: 0.50)) / 1000
    let p99 = Double(histogram.value(atQuantile: 0.99)) / 1000
    let p999 = Double(histogram.value(atQuantile: 0.999)) / 1000
    let maxUs = Double(histogram.max) / 1000

    print("scenario \(options.scenario): \(options.tasks) tasks\(options.batch > 1 ? " in batches of \(options.batch)" : ""), \(options.shards) shards, \(cellCount) cells, fsync \(options.durability), \(String(format: "%.1f", seconds)) s")
    print(String(format: "  %d reservations (%d refused), %.0f/s; latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us", ops, refused, opsPerSecond, p50, p99, p999, maxUs))
    // Counted over the whole run: the engine's allocations and the load generator's (none for a
    // one-line request, one array for a multiline one); `stockpile-bench allocations` counts the
    // engine's alone.
    let allocationsPerOp = Double(allocations) / Double(max(ops, 1))
    print(String(format: "  allocations per reservation %.1f (with the load generator's own)", allocationsPerOp))
    // What the work costs, without the time a thread waits for a core. With both cores busy
    // throughout, it drifts with the machine's speed as the rate does.
    let cpuPerOp = cpu.microseconds / Double(max(ops, 1))
    print(String(format: "  CPU per reservation %.2f us (user %.2f, system %.2f; every thread, the load generator's included)", cpuPerOp, cpu.user / Double(max(ops, 1)) * 1e6, cpu.system / Double(max(ops, 1)) * 1e6))
    if syncs > 0 {
        print(String(format: "  log: %d syncs, %.1f records per sync", syncs, Double(logAfter.lastLSN - logBefore.lastLSN) / Double(syncs)))
    }
    print("  oversold \(oversold), cells whose reserved differs from the replies \(mismatched), invariant violations \(problems.count)")
    if options.json {
        let object: [String: Any] = [
            "scenario": options.scenario, "fsync": "\(options.durability)", "tasks": options.tasks, "batch": options.batch, "shards": options.shards, "cells": cellCount, "seconds": seconds,
            "ops": ops, "ops_per_s": Int(opsPerSecond), "allocations_per_op": allocationsPerOp, "p50_us": p50, "p99_us": p99, "p999_us": p999, "max_us": maxUs,
            "refused": refused, "syncs": syncs, "cpu_us_per_op": cpuPerOp, "oversold": oversold, "mismatched_cells": mismatched, "invariant_violations": problems.count,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
    return oversold == 0 && mismatched == 0 && problems.isEmpty ? 0 : 1
}

/// A task's reservation ids, `prefix` and then 1, 2, 3, …: the number is kept as decimal digits and
/// counted up in place, so that an id is a copy of a few bytes (a small string, no allocation), where
/// `prefix + String(i)` converted the number and appended, each time.
struct RequestIDs {
    private var bytes: [UInt8]
    /// Where the number starts in `bytes`.
    private let digitsStart: Int

    init(prefix: String) {
        bytes = Array(prefix.utf8) + [UInt8(ascii: "0")]
        digitsStart = bytes.count - 1
    }

    /// The next id: the number one more than the last (the first is 1).
    mutating func next() -> String {
        var k = bytes.count - 1
        while true {
            if bytes[k] != UInt8(ascii: "9") {
                bytes[k] += 1
                break
            }
            bytes[k] = UInt8(ascii: "0")
            if k == digitsStart {
                bytes.insert(UInt8(ascii: "1"), at: digitsStart)
                break
            }
            k -= 1
        }
        return bytes.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }
}

/// CLOCK_MONOTONIC in nanoseconds, for a request's latency: a clock read and integer arithmetic, where
/// `ContinuousClock`'s instants took `Duration` arithmetic too (1.4% of `spread --fsync always
/// --tasks 1000`, two reads per request).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// The CPU time the process has used so far, user and system, over all its threads.
struct ProcessCPU {
    var user: Double
    var system: Double

    static func now() -> ProcessCPU {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return ProcessCPU(user: seconds(usage.ru_utime), system: seconds(usage.ru_stime))
    }

    static func - (a: ProcessCPU, b: ProcessCPU) -> ProcessCPU { ProcessCPU(user: a.user - b.user, system: a.system - b.system) }

    var microseconds: Double { (user + system) * 1e6 }
}
