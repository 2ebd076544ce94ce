// TCP mode: drives a running `stockpile serve` over the wire. It reads the cells' figures, stocks
// them, runs `--clients` threads that each keep `--pipeline` RESERVE requests in flight for
// `--duration` seconds, then reads the cells again and checks that nothing was oversold: reserved ≤
// on_hand in every cell, and reserved grew by exactly the units of the successful replies (cell by
// cell and in all). The check holds on a server used before, since it compares with the figures read
// at the start; it assumes that nothing else changes these cells during the run.

import Foundation
import Stockpile
import StockpileClient
import Synchronization

/// Runs one scenario against `target` and reports it. Exit status: 0 when the check holds, 1 when it
/// does not (or a connection failed, which leaves the outcome of its last requests unknown), 2 when
/// the run could not be set up.
func runTCPBenchmark(_ options: Options, target: TCPTarget) -> Int32 {
    do {
        return try runTCP(options, target: target)
    } catch {
        FileHandle.standardError.write(Data("stockpile-bench: \(error)\n".utf8))
        return 2
    }
}

/// Each client thread's result, stored when the thread ends.
private final class ResultSlots: Sendable {
    let slots: Mutex<[TCPClientResult]>
    init(count: Int) { slots = Mutex(Array(repeating: TCPClientResult(), count: count)) }
    func store(_ result: TCPClientResult, at index: Int) { slots.withLock { $0[index] = result } }
    var all: [TCPClientResult] { slots.withLock { $0 } }
}

private func runTCP(_ options: Options, target: TCPTarget) throws(BenchFailure) -> Int32 {
    let variants = options.scenario == "hot" ? ["SKU-HOT"] : (0..<options.cells).map { "SKU-\($0)" }
    let linesPerRequest = options.scenario == "multiline" ? 3 : 1
    guard variants.count >= linesPerRequest else { throw BenchFailure("multiline needs --cells 3 or more") }

    // Before: what the cells hold already (a server may have been used before), then the new stock.
    let setup = try WireCells.connect(target)
    let before = try WireCells.read(variants, over: setup)
    try WireCells.stock(variants, units: options.stock, over: setup)
    let availableBefore = before.reduce(Int64(0)) { $0 + max(0, $1.onHand - $1.reserved) }
    let availableAtStart = before.reduce(Int64(0)) { $0 + max(0, $1.onHand + options.stock - $1.reserved) }

    // Connections are opened before the clock starts, so that connecting is not part of the run.
    var clients: [RESPClient] = []
    for _ in 0..<options.clients { clients.append(try WireCells.connect(target)) }

    let epochMilliseconds = Int(Date().timeIntervalSince1970 * 1000)
    let loop = TCPClientLoop(
        variants: variants.map { Array($0.utf8) }, linesPerRequest: linesPerRequest, pipeline: options.pipeline,
        runPrefix: "b" + String(epochMilliseconds, radix: 36) + "." + String(getpid(), radix: 36))
    let slots = ResultSlots(count: clients.count)
    let finished = DispatchGroup()
    let started = ContinuousClock.now
    let deadline = started + .milliseconds(Int(options.duration * 1000))
    for (index, client) in clients.enumerated() {
        finished.enter()
        let thread = Thread {
            slots.store(loop.run(client: client, index: index, deadline: deadline), at: index)
            finished.leave()
        }
        thread.name = "stockpile-bench client \(index)"
        thread.start()
    }
    finished.wait()
    let elapsed = ContinuousClock.now - started
    clients.removeAll()

    var histogram = LatencyHistogram()
    var total = TCPClientResult()
    var failures: [String] = []
    for (index, r) in slots.all.enumerated() {
        histogram.merge(r.histogram)
        total.ok += r.ok
        total.okUnits += r.okUnits
        total.reservedByCell.merge(r.reservedByCell, uniquingKeysWith: +)
        total.refused.merge(r.refused, uniquingKeysWith: +)
        total.errors.merge(r.errors, uniquingKeysWith: +)
        total.unanswered += r.unanswered
        if let failure = r.failure { failures.append("client \(index): \(failure)") }
    }

    // A connection that failed is reported now, since the check below cannot run when the server is gone.
    for failure in failures { FileHandle.standardError.write(Data("stockpile-bench: \(failure)\n".utf8)) }

    // After: the oversell check, over a connection of its own.
    let after = try WireCells.read(variants, over: try WireCells.connect(target))
    var oversold: Int64 = 0
    var reservedDelta: Int64 = 0
    var mismatched = 0
    for i in variants.indices {
        oversold += max(0, after[i].reserved - after[i].onHand)
        let delta = after[i].reserved - before[i].reserved
        reservedDelta += delta
        if delta != total.reservedByCell[i, default: 0] { mismatched += 1 }
    }

    let ops = total.replies
    let seconds = Double(elapsed.wholeNanoseconds) / 1e9
    let opsPerSecond = Double(ops) / seconds
    func microseconds(_ q: Double) -> Double { Double(histogram.value(atQuantile: q)) / 1000 }
    let p50 = microseconds(0.50), p90 = microseconds(0.90), p99 = microseconds(0.99), p999 = microseconds(0.999)
    let maxUs = Double(histogram.max) / 1000
    func counts(_ byCode: [String: Int]) -> String {
        byCode.isEmpty ? "none" : byCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    print("scenario \(options.scenario) over \(target): \(options.clients) clients, pipeline \(options.pipeline), \(variants.count) cells, \(String(format: "%.1f", seconds)) s")
    print("  stock +\(options.stock) per cell; available at start \(availableAtStart) units")
    if availableBefore > 0 {
        print("  (\(availableBefore) of them were left by earlier runs: to sell out just --stock, restart a server without --data-dir)")
    }
    print(String(format: "  %d requests, %.0f/s: %d ok (%lld units); refused: %@; errors: %@", ops, opsPerSecond, total.ok, total.okUnits, counts(total.refused), counts(total.errors)))
    print(String(format: "  latency p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us", p50, p90, p99, p999, maxUs))
    print("  oversold \(oversold); reserved grew by \(reservedDelta) units, the successful replies reserved \(total.okUnits); cells that differ \(mismatched)")
    if options.json {
        let object: [String: Any] = [
            "mode": "tcp", "target": "\(target)", "clients": options.clients, "pipeline": options.pipeline, "scenario": options.scenario,
            "cells": variants.count, "stock": options.stock, "available_at_start": availableAtStart, "duration": options.duration,
            "seconds": seconds, "ops": ops, "ops_per_sec": Int(opsPerSecond), "ok": total.ok, "ok_units": total.okUnits,
            "refused": total.refused, "errors": total.errors, "unanswered": total.unanswered,
            "p50_us": p50, "p90_us": p90, "p99_us": p99, "p999_us": p999, "max_us": maxUs,
            "oversold": oversold, "reserved_delta": reservedDelta, "mismatched_cells": mismatched,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }

    var problems: [String] = []
    if !failures.isEmpty { problems.append("\(failures.count) connections failed during the run") }
    if total.unanswered > 0 { problems.append("\(total.unanswered) requests got no reply, so the check below cannot balance") }
    if oversold > 0 { problems.append("oversold: \(oversold) units are reserved beyond on_hand") }
    if reservedDelta != total.okUnits || mismatched > 0 {
        problems.append(
            "reserved grew by \(reservedDelta) units but the successful replies reserved \(total.okUnits) (\(mismatched) cells differ);"
                + " did something else change these cells during the run?")
    }
    for problem in problems { FileHandle.standardError.write(Data("stockpile-bench: \(problem)\n".utf8)) }
    return problems.isEmpty ? 0 : 1
}
