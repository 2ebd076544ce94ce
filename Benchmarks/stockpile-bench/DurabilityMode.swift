// The durability scenarios (in-process, on a fresh temporary data directory, removed afterwards):
//
//   snapshot  loads --cells cells, then --tasks tasks reserve for --duration seconds while one snapshot
//             is written a third of the way in. Reports the snapshot's size and times, how long every
//             shard was held, and the writes' latency during the snapshot against the rest of the run:
//             the longest write pause is the largest latency of a write that overlapped it; and the
//             peak resident set while it was written against the resident set before it.
//   startup   loads --cells cells, writes a snapshot, then --records log records after it (reservations
//             of --tasks tasks), closes the engine and opens it again, timed: snapshot load, log read,
//             replay (records/s) and the whole start-up, and the start-up's peak resident set against
//             the resident set after it. Also the log's bytes per reservation.

import CStockpileLinux
import Foundation
import Stockpile

/// Opens a durable engine on a fresh directory and loads `cells` cells of 1,000,000 units each.
private func loadedEngine(_ options: Options, directory: String, durability: DurabilityPolicy) async -> Engine? {
    let engine: Engine
    do {
        engine = try Engine.open(
            dataDirectory: directory, durability: durability,
            configuration: EngineConfiguration(shardCount: options.shards, snapshotEveryRecords: 0))
    } catch {
        FileHandle.standardError.write(Data("stockpile-bench: \(error)\n".utf8))
        return nil
    }
    let started = ContinuousClock.now
    let batch = 100_000
    for start in stride(from: 0, to: options.cells, by: batch) {
        let rows = (start..<min(options.cells, start + batch)).map { StockRow(variant: "SKU-\($0)", warehouse: "MAIN", onHand: 1_000_000, line: $0 + 2) }
        guard case .ok = await engine.importStock(rows) else {
            FileHandle.standardError.write(Data("stockpile-bench: loading the cells failed\n".utf8))
            return nil
        }
    }
    print("loaded \(options.cells) cells in \(seconds(ContinuousClock.now - started)) s")
    return engine
}

private func seconds(_ d: Duration) -> String { String(format: "%.2f", Double(d.wholeNanoseconds) / 1e9) }
private func millis(_ d: Duration) -> String { String(format: "%.1f", Double(d.wholeNanoseconds) / 1e6) }

/// Reserves one unit of a random cell with a fresh id, until `keepGoing` says stop; reports each
/// write's start and latency to `record`.
private func reserveLoop(
    _ engine: Engine, task: Int, cells: Int, keepGoing: @Sendable () -> Bool, record: (ContinuousClock.Instant, Duration) -> Void
) async -> Int {
    var rng = SplitMix64(seed: UInt64(task) &* 0x9E37_79B9_7F4A_7C15 &+ 7)
    var i = 0
    while i & 63 != 0 || keepGoing() {
        i += 1
        let cell = Int(rng.next() % UInt64(cells))
        let begin = ContinuousClock.now
        _ = await engine.reserve(ReserveRequest(id: "t\(task)-\(i)", lines: [ReserveLine(variant: "SKU-\(cell)", warehouse: "MAIN", quantity: 1)]))
        record(begin, ContinuousClock.now - begin)
    }
    return i
}

nonisolated func runSnapshotBenchmark(_ options: Options) async -> Int32 {
    let directory = NSTemporaryDirectory() + "stockpile-bench-snapshot-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let durability = options.fsyncGiven ? options.durability : .always
    guard durability != .none else { return fail("the snapshot scenario needs a log: --fsync always or interval=<ms>") }
    guard let engine = await loadedEngine(options, directory: directory, durability: durability) else { return 2 }
    defer { try? engine.close() }

    struct Window: Sendable { var start: ContinuousClock.Instant; var end: ContinuousClock.Instant }
    let deadline = ContinuousClock.now + .milliseconds(Int(options.duration * 1000))
    let snapshotAt = ContinuousClock.now + .milliseconds(Int(options.duration * 1000 / 3))
    // The resident set before the snapshot, and the peak from then until it is written (the writers'
    // own growth over that time included).
    let snapshotTask = Task { () -> (SnapshotReport?, Window, before: ResidentMemory, after: ResidentMemory) in
        try? await Task.sleep(until: snapshotAt)
        let before = ResidentMemory.read()
        ResidentMemory.resetPeak()
        let start = ContinuousClock.now
        let report = try? await engine.writeSnapshot()
        let end = ContinuousClock.now
        return (report, Window(start: start, end: end), before, ResidentMemory.read())
    }
    struct Latencies: Sendable { var samples: [(ContinuousClock.Instant, Duration)] = [] }
    let perTask = await withTaskGroup(of: Latencies.self) { group in
        for t in 0..<options.tasks {
            group.addTask {
                var l = Latencies()
                l.samples.reserveCapacity(200_000)
                _ = await reserveLoop(engine, task: t, cells: options.cells, keepGoing: { ContinuousClock.now < deadline }) { l.samples.append(($0, $1)) }
                return l
            }
        }
        var all: [Latencies] = []
        for await l in group { all.append(l) }
        return all
    }
    let (report, window, before, after) = await snapshotTask.value
    guard let report else { return fail("the snapshot failed") }
    var during = LatencyHistogram()
    var outside = LatencyHistogram()
    for l in perTask {
        for (begin, latency) in l.samples {
            let nanos = UInt64(max(0, latency.wholeNanoseconds))
            // A write overlapped the snapshot when it began before the end and ended after the start.
            if begin < window.end && begin + latency > window.start { during.record(nanos) } else { outside.record(nanos) }
        }
    }
    func us(_ v: UInt64) -> String { String(format: "%.0f", Double(v) / 1000) }
    print("snapshot of \(report.cellCount) cells, \(report.reservationCount) reservations: \(report.byteCount / 1_048_576) MiB, "
        + "written in \(seconds(report.totalDuration)) s; every shard held for \(millis(report.captureDuration)) ms")
    print("  writes during the snapshot: \(during.count), p50 \(us(during.value(atQuantile: 0.5))) us, p99 \(us(during.value(atQuantile: 0.99))) us, "
        + "longest \(us(during.max)) us")
    print("  writes outside it:          \(outside.count), p50 \(us(outside.value(atQuantile: 0.5))) us, p99 \(us(outside.value(atQuantile: 0.99))) us, "
        + "longest \(us(outside.max)) us")
    print("  memory while it was written: \(ResidentMemory.peakText(peak: after.peakByteCount, over: before.byteCount)) before it")
    if options.json {
        printJSON([
            "scenario": "snapshot", "fsync": durability.flagText, "cells": report.cellCount, "bytes": report.byteCount,
            "snapshot_s": Double(report.totalDuration.wholeNanoseconds) / 1e9, "capture_ms": Double(report.captureDuration.wholeNanoseconds) / 1e6,
            "during_max_us": Double(during.max) / 1000, "during_p99_us": Double(during.value(atQuantile: 0.99)) / 1000,
            "outside_max_us": Double(outside.max) / 1000, "outside_p99_us": Double(outside.value(atQuantile: 0.99)) / 1000,
            "resident_before_bytes": before.byteCount, "peak_during_bytes": after.peakByteCount,
        ])
    }
    return 0
}

nonisolated func runStartupBenchmark(_ options: Options) async -> Int32 {
    // With --data-dir the directory is kept, and one that already has a log is only started up.
    let directory = options.dataDirectory ?? NSTemporaryDirectory() + "stockpile-bench-startup-\(getpid())"
    defer { if options.dataDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
    let prepared = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).contains { $0.hasPrefix("wal-") }
    // What is measured is the start-up; the log is written as fast as the policy allows.
    let durability = options.fsyncGiven ? options.durability : .interval(.milliseconds(10))
    guard durability != .none else { return fail("the startup scenario needs a log: --fsync always or interval=<ms>") }
    var recordByteCount = 0
    var reservations = 0
    var idByteCount = 0
    if !prepared {
        guard let engine = await loadedEngine(options, directory: directory, durability: durability) else { return 2 }
        let snapshot: SnapshotReport
        do { snapshot = try await engine.writeSnapshot() } catch { return fail("the snapshot failed: \(error)") }
        print("snapshot of \(snapshot.cellCount) cells: \(snapshot.byteCount / 1_048_576) MiB in \(seconds(snapshot.totalDuration)) s")
        let bytesBefore = engine.logStatus.recordByteCount
        let target = snapshot.lsn + UInt64(options.records)
        let started = ContinuousClock.now
        let counts = await withTaskGroup(of: (task: Int, count: Int).self) { group in
            for t in 0..<options.tasks {
                group.addTask {
                    (t, await reserveLoop(engine, task: t, cells: options.cells, keepGoing: { engine.logStatus.lastLSN < target }) { _, _ in })
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        reservations = counts.reduce(0) { $0 + $1.count }
        // The ids were t<task>-1 … t<task>-<count>: their bytes, for the figure below.
        idByteCount = counts.reduce(0) { sum, c in (1...max(c.count, 1)).reduce(sum) { $0 + "t\(c.task)-\($1)".utf8.count } }
        recordByteCount = engine.logStatus.recordByteCount - bytesBefore
        print("wrote \(engine.logStatus.lastLSN - snapshot.lsn) records after the snapshot (\(reservations) reservations) in \(seconds(ContinuousClock.now - started)) s")
        do { try engine.close() } catch { return fail("close failed: \(error)") }
    }
    // The peak of the start-up alone: what the run before it left is handed back (the heap's free
    // pages) and forgotten.
    _ = stockpile_malloc_trim()
    ResidentMemory.resetPeak()
    let opened = ContinuousClock.now
    let engine: Engine
    do {
        engine = try Engine.open(
            dataDirectory: directory, durability: durability,
            configuration: EngineConfiguration(shardCount: options.shards, snapshotEveryRecords: 0, replayThreadCount: options.replayThreads))
    } catch {
        return fail("start-up failed: \(error)")
    }
    let total = ContinuousClock.now - opened
    let memory = ResidentMemory.read()
    defer { try? engine.close() }
    guard let r = engine.startupReport else { return fail("no start-up report") }
    let replaySeconds = Double(r.replayDuration.wholeNanoseconds) / 1e9
    let rate = Double(r.recordsReplayed) / max(replaySeconds, 1e-9)
    let bytesPerReservation = Double(recordByteCount) / Double(max(1, reservations))
    let cells = await engine.stats().cells
    print("start-up: \(seconds(total)) s — snapshot load \(seconds(r.snapshotLoadDuration)) s (\(r.snapshotCellCount) cells), "
        + "replay \(seconds(r.replayDuration)) s of \(r.recordsReplayed) records (\(String(format: "%.0f", rate)) records/s, read "
        + "and applied by \(r.replayThreadCount) threads beside the reader and the preparer, overlapped; reading alone \(seconds(r.logReadDuration)) s of it)")
    print("memory: \(ResidentMemory.peakText(peak: memory.peakByteCount, over: memory.byteCount)) after start-up")
    if !prepared {
        // The format's aim is 40 bytes a reservation besides its id's own bytes.
        let idBytes = Double(idByteCount) / Double(max(1, reservations))
        print(String(format: "log bytes per reservation: %.1f (its id %.1f of them: %.1f besides)", bytesPerReservation, idBytes, bytesPerReservation - idBytes))
        if cells != options.cells { return fail("start-up has \(cells) cells, not \(options.cells)") }
    }
    if options.json {
        printJSON([
            "scenario": "startup", "cells": options.cells, "records": r.recordsReplayed, "startup_s": Double(total.wholeNanoseconds) / 1e9,
            "snapshot_load_s": Double(r.snapshotLoadDuration.wholeNanoseconds) / 1e9, "replay_records_per_s": Int(rate),
            "log_bytes_per_reservation": bytesPerReservation, "resident_after_bytes": memory.byteCount, "peak_bytes": memory.peakByteCount,
        ])
    }
    return 0
}

private func fail(_ message: String) -> Int32 {
    FileHandle.standardError.write(Data("stockpile-bench: \(message)\n".utf8))
    return 2
}

func printJSON(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
