// The memory scenario: resident bytes per cell, per open and per closed one-line reservation and per
// idempotency key, of an engine in memory. Each phase adds one kind of item and nothing else; its
// figure is the growth of the process's resident set (VmRSS) over the phase, divided by the items it
// added. Every reading comes after malloc_trim(0), so memory freed during a phase is not counted.

import CStockpileLinux
import Foundation
import Stockpile

/// The process's resident set, now and at its peak, from /proc/self/status.
struct ResidentMemory {
    /// VmRSS: pages resident now, whatever their owner (heap, stacks, code, the runtime).
    var byteCount: Int
    /// VmHWM: the largest VmRSS so far, which includes transient peaks such as a table rehashing
    /// into one twice its size while the old one is still held.
    var peakByteCount: Int

    /// Hands free heap back to the system first, so that what is read is memory in use plus the
    /// allocator's slack: block headers, rounding, and pages kept by a single live block.
    static func read() -> ResidentMemory {
        _ = stockpile_malloc_trim()
        // /proc files report a size of 0, so the file is read to its end rather than by its size.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/status") else { fatalError("cannot open /proc/self/status") }
        defer { try? handle.close() }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        func kibibytes(_ field: String) -> Int {
            // A line reads "VmRSS:\t  123456 kB".
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
                let value = line.split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap({ Int($0) })
            else { fatalError("no \(field) in /proc/self/status") }
            return value
        }
        return ResidentMemory(byteCount: kibibytes("VmRSS") * 1024, peakByteCount: kibibytes("VmHWM") * 1024)
    }

    /// Starts the peak (VmHWM) again from the resident set now (Linux's /proc/self/clear_refs, 5),
    /// so that a later `read` gives the peak of what came after.
    static func resetPeak() {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { fatalError("cannot open /proc/self/clear_refs") }
        defer { try? handle.close() }
        handle.write(Data("5".utf8))
    }

    /// "peak P MiB, R × the resident set of M MiB" for a peak over a resident set.
    static func peakText(peak: Int, over resident: Int) -> String {
        String(format: "peak %.1f MiB, %.2f × the resident set of %.1f MiB", Double(peak) / 1_048_576, Double(peak) / Double(max(1, resident)), Double(resident) / 1_048_576)
    }
}

/// Loads cells, opens and closes reservations and uses KEYs, reading the resident set between the
/// phases; prints one line per figure (`--json`: one object as the last line).
///
/// What each figure means (after a baseline of an engine whose recent-entries ring is already full):
/// - bytes per cell: growth while `cells` cells are loaded by import, over `cells`. The cell in its
///   shard's table (key, figures) with the table's share of empty buckets.
/// - bytes per open reservation: growth while the first ⌈M/2⌉ reservations are made (one line, one
///   unit, TTL 600 s), over ⌈M/2⌉. The reservation in its home shard, its slot in the directory and its
///   expiry item in the due-work heap.
/// - bytes per closed reservation: growth while the other ⌊M/2⌋ are made *and* released, over ⌊M/2⌋:
///   everything a closed reservation leaves behind for the 24 h retention window (its record, its id
///   and its expiry item, which schedules its forgetting when it comes due).
///   Measured on reservations of its own rather than derived from the open figure, so it rests on no
///   assumption that an open reservation costs the same before and after others are released.
/// - change on closing: growth while those ⌊M/2⌋ are released, over ⌊M/2⌋ (part of the figure above).
/// - bytes per KEY: growth while M/4 adjustments of existing cells are made, each with a fresh KEY,
///   over M/4: the key's remembered reply and the item that forgets it. The adjustment itself leaves
///   nothing behind: the cell exists and its ledger entry takes the slot of an older one.
///
/// - after the retention window: the resident set once the clock has moved past every hold's expiry
///   and the retention window and the due work has run (the open holds expired, every reservation and
///   KEY forgotten), against its size before the reservations were made: what the engine gives back.
///
/// Two effects blur every figure, and both belong to what an operator pays. Hash tables double, and a
/// rehash touches every bucket of the new table, so a phase that crosses a doubling is charged for its
/// empty buckets: the figures move with N and M (arrays double too, but their untouched tail is not
/// resident). And malloc's slack: an 8-byte header per block, sizes rounded up to 16 (32 at least).
/// Names here (SKU-123, r-123, k-123) are at most 15 bytes, which Swift keeps inside the `String`
/// itself; longer variant names or ids add a heap block per stored copy.
nonisolated func runMemoryBenchmark(_ options: Options) async -> Int32 {
    let cellCount = options.cellsGiven ? options.cells : 1_000_000
    let reservationCount = options.reservations
    let closedCount = reservationCount / 2
    let openCount = reservationCount - closedCount
    let keyCount = reservationCount / 4
    // Every reservation takes one unit of cell i mod N, so each cell holds enough for its share.
    let unitsPerCell = Quantity(Int64(max(1_000_000, reservationCount / cellCount + 1)))
    func fail(_ message: String) -> Int32 {
        FileHandle.standardError.write(Data("stockpile-bench: \(message)\n".utf8))
        return 1
    }

    let beforeEngine = ResidentMemory.read()
    // Time stands still, so no hold expires and no name is forgotten mid-measurement, however slow the
    // machine: each phase measures exactly the items it added.
    var configuration = EngineConfiguration(shardCount: options.shards)
    let clock = ManualClock()
    let engine: Engine
    // With --fsync, the engine writes a log (in a directory removed at the end, unless --data-dir
    // names one), and no snapshot is taken midway: a KEY is then kept as the LSN of its record.
    let logged = options.fsyncGiven && options.durability != .none
    let dataDirectory = options.dataDirectory ?? NSTemporaryDirectory() + "stockpile-bench-memory-\(getpid())"
    if logged {
        configuration.snapshotEveryRecords = 0
        do {
            engine = try Engine.open(dataDirectory: dataDirectory, durability: options.durability, configuration: configuration, clock: clock)
        } catch {
            return fail("\(error)")
        }
    } else {
        engine = Engine(configuration: configuration, clock: clock)
    }
    defer {
        if logged {
            try? engine.close()
            if options.dataDirectory == nil { try? FileManager.default.removeItem(atPath: dataDirectory) }
        }
    }
    let empty = ResidentMemory.read()

    // The ledger keeps the most recent entries in a ring of fixed capacity. Filled first, it costs the
    // same whatever comes after; left empty, the first 262,144 operations measured would each be
    // charged for a slot of it.
    for _ in 0..<configuration.eventsInMemoryCount {
        guard case .ok = await engine.adjust(variant: "WARM-UP", warehouse: "MAIN", by: 1, reason: .received) else {
            return fail("an adjustment of the warm-up cell was refused")
        }
    }
    let baseline = ResidentMemory.read()

    var started = ContinuousClock.now
    // Rows in chunks: importStock is the fast path (one wait for the log per call, none here), and a
    // chunk's rows are freed before the reading.
    let chunkCount = 100_000
    for start in stride(from: 0, to: cellCount, by: chunkCount) {
        let rows = (start..<min(cellCount, start + chunkCount)).map { StockRow(variant: "SKU-\($0)", warehouse: "MAIN", onHand: unitsPerCell, line: $0 + 1) }
        guard case .ok = await engine.importStock(rows) else { return fail("loading the cells failed") }
    }
    let afterCells = ResidentMemory.read()
    let cellSeconds = ContinuousClock.now - started

    func reserve(_ range: Range<Int>) async -> Bool {
        for i in range {
            let line = ReserveLine(variant: "SKU-\(i % cellCount)", warehouse: "MAIN", quantity: 1)
            guard case .ok = await engine.reserve(ReserveRequest(id: "r-\(i)", lines: [line], ttl: .seconds(600))) else { return false }
        }
        return true
    }
    started = ContinuousClock.now
    guard await reserve(0..<openCount) else { return fail("a reservation was refused") }
    let afterOpen = ResidentMemory.read()
    guard await reserve(openCount..<reservationCount) else { return fail("a reservation was refused") }
    let beforeRelease = ResidentMemory.read()
    for i in openCount..<reservationCount {
        guard case .ok = await engine.release("r-\(i)") else { return fail("releasing r-\(i) was refused") }
    }
    let afterClosed = ResidentMemory.read()
    let reservationSeconds = ContinuousClock.now - started

    started = ContinuousClock.now
    for i in 0..<keyCount {
        guard case .ok = await engine.adjust(variant: "SKU-\(i % cellCount)", warehouse: "MAIN", by: 1, reason: .received, key: "k-\(i)") else {
            return fail("adjustment k-\(i) was refused")
        }
    }
    let afterKeys = ResidentMemory.read()
    let keySeconds = ContinuousClock.now - started

    // Past every expiry and the retention window: the open holds expire, then every reservation and
    // KEY is forgotten (the expiries' closings too, a window after them).
    started = ContinuousClock.now
    clock.advance(by: .seconds(600) + configuration.retention + .seconds(1))
    await engine.runDueWork()
    clock.advance(by: configuration.retention + .seconds(1))
    await engine.runDueWork()
    let afterRetention = ResidentMemory.read()
    let forgetSeconds = ContinuousClock.now - started

    /// Growth per item, rounded to a byte; nil when the phase added none.
    func perItem(_ from: ResidentMemory, _ to: ResidentMemory, _ count: Int) -> Int? {
        count == 0 ? nil : Int((Double(to.byteCount - from.byteCount) / Double(count)).rounded())
    }
    let perCell = perItem(baseline, afterCells, cellCount)
    let perOpen = perItem(afterCells, afterOpen, openCount)
    let perClosed = perItem(afterOpen, afterClosed, closedCount)
    let perClose = perItem(beforeRelease, afterClosed, closedCount)
    let perKey = perItem(afterClosed, afterKeys, keyCount)

    func mebibytes(_ byteCount: Int) -> String { String(format: "%.1f MiB", Double(byteCount) / 1_048_576) }
    func seconds(_ d: Duration) -> String { String(format: "%.1f s", Double(d.wholeNanoseconds) / 1e9) }
    func figure(_ value: Int?) -> String { value.map { String($0) } ?? "-" }
    func row(_ name: String, _ value: String, _ note: String) {
        print("  " + name.padding(toLength: 30, withPad: " ", startingAt: 0) + value.padding(toLength: 12, withPad: " ", startingAt: 0) + note)
    }
    let setting = logged ? "with a log (--fsync \(options.durability))" : "in memory"
    print("memory: \(cellCount) cells, \(openCount) open and \(closedCount) closed one-line reservations, \(keyCount) KEYs, \(options.shards) shards, \(setting)")
    print("  (resident set after malloc_trim(0), so allocator slack included; growth over each phase / its items)")
    row("engine, empty", mebibytes(empty.byteCount - beforeEngine.byteCount), "fixed")
    row("recent-entries ring", mebibytes(baseline.byteCount - empty.byteCount), "fixed: \(configuration.eventsInMemoryCount) ledger entries")
    row("bytes per cell", figure(perCell), "\(cellCount) loaded by import in \(seconds(cellSeconds))")
    row("bytes per open reservation", figure(perOpen), "one line, TTL 600 s")
    row("bytes per closed reservation", figure(perClosed), "reserved and released, kept for retention; \(reservationCount) reserved, \(closedCount) released in \(seconds(reservationSeconds))")
    row("change on closing one", figure(perClose), "the release alone (part of the figure above)")
    row("bytes per KEY", figure(perKey), "\(keyCount) keyed adjustments in \(seconds(keySeconds))")
    let grown = afterKeys.byteCount - afterCells.byteCount
    let kept = afterRetention.byteCount - afterCells.byteCount
    row("after the retention window", mebibytes(kept), "of \(mebibytes(grown)) the reservations and KEYs grew; forgotten in \(seconds(forgetSeconds))")
    row("rss", mebibytes(afterRetention.byteCount), "at the end; peak (VmHWM) \(mebibytes(afterRetention.peakByteCount))")
    if options.json {
        func value(_ v: Int?) -> Any { v.map { $0 as Any } ?? NSNull() }
        let object: [String: Any] = [
            "scenario": "memory", "logged": logged, "shards": options.shards, "cells": cellCount, "open_reservations": openCount,
            "closed_reservations": closedCount, "keys": keyCount,
            "engine_bytes": empty.byteCount - beforeEngine.byteCount, "ring_bytes": baseline.byteCount - empty.byteCount,
            "bytes_per_cell": value(perCell), "bytes_per_open_reservation": value(perOpen),
            "bytes_per_closed_reservation": value(perClosed), "bytes_per_close": value(perClose), "bytes_per_key": value(perKey),
            "bytes_kept_after_retention": kept, "bytes_grown": grown,
            "rss_bytes": afterRetention.byteCount, "peak_rss_bytes": afterRetention.peakByteCount,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
    return 0
}
