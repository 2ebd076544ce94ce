// The wire scenario: what a server's loop spends on a RESERVE besides its socket, timed. The bytes of
// pipelines of --pipeline RESERVEs (16 by default, at most a server's turn) are encoded before the
// clock starts, with ids and SKUs shaped as `compare-redis.sh` sends them; the timed part parses each pipeline as a connection does
// and answers it through the request handler (framing, command table, authorisation, engine, reply
// bytes), one pipeline after another on one task, as one loop turn per pipeline. An engine in memory:
// the log's part is not in it. Pinned to one CPU (`taskset -c 1`) it repeats within a few percent,
// where the server's own figures move with the machine: the way to compare two builds of the
// request path.

import Foundation
import Stockpile

nonisolated func runWireBenchmark(_ options: Options) async -> Int32 {
    let cellCount = options.cellsGiven ? options.cells : 100_000
    let pipeline = options.pipelineGiven ? options.pipeline : 16
    let requestCount = max(pipeline, Int(options.duration * 200_000) / pipeline * pipeline)
    let engine = Engine(configuration: EngineConfiguration(shardCount: options.shards))
    let variants = (0..<cellCount).map { String(format: "SKU-%012d", $0) }
    let rows = variants.enumerated().map { StockRow(variant: $1, warehouse: "MAIN", onHand: Quantity(1_000_000_000_000), line: $0 + 1) }
    guard case .ok = await engine.importStock(rows) else {
        FileHandle.standardError.write(Data("stockpile-bench: loading the cells failed\n".utf8))
        return 2
    }
    // Every pipeline's bytes, made before the clock starts: ids of 41 bytes, unique over the run, and
    // cells drawn at random (seeded), as compare-redis.sh's `o:__rand_int__:__rand_int__:__rand_int__`
    // and `SKU-__rand_int__` make them (redis-benchmark writes each `__rand_int__` as 12 digits).
    var rng = SplitMix64(seed: 2026)
    func pipelines(_ count: Int, prefix: String) -> [[UInt8]] {
        HandlerTurns.pipelines(count: count, of: pipeline) { i in
            let id = String(format: "%@:%012d:%012llu:%012llu", prefix, i, rng.next() % 1_000_000_000_000, rng.next() % 1_000_000_000_000)
            return ["RESERVE", id, variants[Int(rng.next() % UInt64(cellCount))], "MAIN", "1"]
        }
    }
    let warmUp = pipelines(min(requestCount, 20_000), prefix: "w")
    let timed = pipelines(requestCount, prefix: "o")

    let turns = HandlerTurns(engine: engine)
    var replyBytes = 0
    func answer(_ bytes: [UInt8]) async { replyBytes += await turns.answer(bytes, pipeline: pipeline) }
    for bytes in warmUp { await answer(bytes) }
    replyBytes = 0
    let cpuBefore = ProcessCPU.now()
    let started = ContinuousClock.now
    for bytes in timed { await answer(bytes) }
    let elapsed = ContinuousClock.now - started
    let cpu = ProcessCPU.now() - cpuBefore
    let seconds = Double(elapsed.wholeNanoseconds) / 1e9
    let stats = await engine.stats()
    let perRequest = seconds * 1e9 / Double(requestCount)
    print("scenario wire: \(requestCount) RESERVEs in pipelines of \(pipeline), \(options.shards) shards, \(cellCount) cells, \(String(format: "%.2f", seconds)) s")
    print(String(format: "  %.0f ns per request (%.0f/s); CPU %.0f ns per request (user %.0f, system %.0f); %.0f reply bytes each",
                 perRequest, Double(requestCount) / seconds, (cpu.user + cpu.system) * 1e9 / Double(requestCount), cpu.user * 1e9 / Double(requestCount),
                 cpu.system * 1e9 / Double(requestCount), Double(replyBytes) / Double(requestCount)))
    let reserved = stats.reserved.units
    if reserved != Int64(requestCount + warmUp.count * pipeline) {
        print("  reserved \(reserved) units, not one per request")
        return 1
    }
    if options.json {
        let object: [String: Any] = [
            "scenario": "wire", "pipeline": pipeline, "shards": options.shards, "cells": cellCount, "requests": requestCount,
            "ns_per_request": perRequest, "cpu_ns_per_request": (cpu.user + cpu.system) * 1e9 / Double(requestCount),
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
    return 0
}
