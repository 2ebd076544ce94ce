// The allocations scenario: heap allocations per operation, counted by the malloc interposer
// (CAllocationCounter) around one task's requests on an engine in memory, after a warm-up. It counts,
// it does not time, so the figure is the same on any machine; the allocation test runs it and
// compares each figure with its limit. The `wire_` figures count a request the way the server
// answers it, without the socket: the bytes of a pipeline of 16 (of 1 for `wire_reserve_p1`) go
// through the connection's request parser and the request handler (framing, command table,
// authorisation, engine, reply bytes), so they include the engine's own allocations and everything
// the wire adds to them.

import CAllocationCounter
import Foundation
import Stockpile
import StockpileWAL

/// Allocations per operation of the engine's hot paths, one line each (`--json`: one object).
nonisolated func runAllocationBenchmark(_ options: Options) async -> Int32 {
    let engine = Engine(configuration: EngineConfiguration(shardCount: options.shards))
    let count = 20_000
    _ = await engine.setQuantity(variant: "SKU-HOT", warehouse: "MAIN", to: Quantity(1_000_000_000), reason: .import)
    // Requests are built before counting: what is counted is the engine's own work.
    let line = [ReserveLine(variant: "SKU-HOT", warehouse: "MAIN", quantity: 1)]
    let warmUp = (0..<2_000).map { ReserveRequest(id: "w\($0)", lines: line) }
    let reserves = (0..<count).map { ReserveRequest(id: "r\($0)", lines: line) }
    let ids = reserves.map(\.id)
    for r in warmUp { _ = await engine.reserve(r) }
    for r in warmUp { _ = await engine.release(r.id) }

    var figures: [(name: String, perOperation: Double)] = []
    func measure(_ name: String, _ body: () async -> Void) async {
        let before = stockpile_allocation_count()
        await body()
        figures.append((name, Double(stockpile_allocation_count() - before) / Double(count)))
    }
    await measure("reserve") { for r in reserves { _ = await engine.reserve(r) } }
    await measure("reserve_replay") { for r in reserves { _ = await engine.reserve(r) } }
    await measure("release") { for id in ids { _ = await engine.release(id) } }
    await measure("adjust") { for _ in 0..<count { _ = await engine.adjust(variant: "SKU-HOT", warehouse: "MAIN", by: 1, reason: .received) } }
    await measure("cell") { for _ in 0..<count { _ = await engine.cell(variant: "SKU-HOT", warehouse: "MAIN") } }

    // A reservation of three lines on cells in three shards (each request's lines built before
    // counting): what holding several shards costs in allocations, most of them made before the
    // shards are held.
    let router = ShardRouter(count: options.shards)
    var spread: [String] = []
    var shardsUsed = Set<Int>()
    var i = 0
    while spread.count < min(3, options.shards) {
        let v = "SKU-X\(i)"
        if shardsUsed.insert(router.shard(for: CellKey(variant: v, warehouse: "MAIN"))).inserted { spread.append(v) }
        i += 1
    }
    for v in spread { _ = await engine.setQuantity(variant: v, warehouse: "MAIN", to: Quantity(1_000_000_000), reason: .import) }
    let threeLines = spread.map { ReserveLine(variant: $0, warehouse: "MAIN", quantity: 1) }
    for i in 0..<200 { _ = await engine.reserve(ReserveRequest(id: "wx\(i)", lines: threeLines)) }
    let acrossShards = (0..<count).map { ReserveRequest(id: "x\($0)", lines: threeLines) }
    await measure("reserve_across_shards") { for r in acrossShards { _ = await engine.reserve(r) } }

    // The wire: each pipeline is encoded as a client sends it before counting; the counted part
    // parses it as a connection does (one parser, reused) and answers the batch (`HandlerTurns`).
    func pipelines(of pipeline: Int = 16, _ words: (Int) -> [String]) -> [[UInt8]] {
        HandlerTurns.pipelines(count: count, of: pipeline, words)
    }
    let turns = HandlerTurns(engine: engine)
    func answer(_ bytes: [UInt8], pipeline: Int = 16) async { await turns.answer(bytes, pipeline: pipeline) }
    let wireReserves = pipelines { ["RESERVE", "wr\($0)", "SKU-HOT", "MAIN", "1"] }
    let wireStocks = pipelines { _ in ["STOCK", "SKU-HOT", "MAIN"] }
    // The RESERVEs' reservations, released: a cart given up, as the flash sale's buyers do.
    let wireReleases = pipelines { ["RELEASE", "wr\($0)"] }
    let wireLoneReserves = pipelines(of: 1) { ["RESERVE", "w1r\($0)", "SKU-HOT", "MAIN", "1"] }
    for bytes in pipelines({ ["RESERVE", "ww\($0)", "SKU-HOT", "MAIN", "1"] }).prefix(100) { await answer(bytes) }
    await measure("wire_reserve") { for bytes in wireReserves { await answer(bytes) } }
    await measure("wire_stock") { for bytes in wireStocks { await answer(bytes) } }
    let openBefore = await engine.stats().activeReservations
    await measure("wire_release") { for bytes in wireReleases { await answer(bytes) } }
    // A RELEASE refused (an id not found) allocates otherwise: the figure is of releases made.
    let closed = openBefore - (await engine.stats().activeReservations)
    guard closed == count else {
        FileHandle.standardError.write(Data("stockpile-bench: \(count) RELEASEs closed \(closed) reservations, not one each\n".utf8))
        return 2
    }
    // Pipeline 1: a batch of one request, as an unpipelined client's each is.
    await measure("wire_reserve_p1") { for bytes in wireLoneReserves { await answer(bytes, pipeline: 1) } }
    // Pipeline 64: a batch longer than a client at pipeline 16 sends (a load harness, an order service
    // that sends a basket's reservations together).
    let wireDeepReserves = pipelines(of: 64) { ["RESERVE", "w64r\($0)", "SKU-HOT", "MAIN", "1"] }
    for bytes in pipelines(of: 64, { ["RESERVE", "ww64r\($0)", "SKU-HOT", "MAIN", "1"] }).prefix(10) { await answer(bytes, pipeline: 64) }
    await measure("wire_reserve_p64") { for bytes in wireDeepReserves { await answer(bytes, pipeline: 64) } }

    // Names as a shop's are: a 16-byte SKU (the form compare-redis.sh sends) and a 24-byte order id.
    // Swift keeps a string of up to 15 UTF-8 bytes inline; a longer one is an object of its own, made
    // when the command table reads the word. Every RESERVE here names one SKU, as a flash sale's do:
    // its string is made once and shared by the RESERVEs after it (`SpareLines.variant`).
    let longVariant = "SKU-000000012345"
    _ = await engine.setQuantity(variant: longVariant, warehouse: "MAIN", to: Quantity(1_000_000_000), reason: .import)
    let wireLongReserves = pipelines { ["RESERVE", String(format: "order-2026-12-07-%07d", $0), longVariant, "MAIN", "1"] }
    for bytes in pipelines({ ["RESERVE", String(format: "order-warm-up-0000-%06d", $0), longVariant, "MAIN", "1"] }).prefix(100) { await answer(bytes) }
    await measure("wire_reserve_long_names") { for bytes in wireLongReserves { await answer(bytes) } }

    // With a log (`always`): 64 tasks reserving at once, as an order service's requests come, so
    // that each sync acknowledges a few dozen. What is counted besides the engine's own work is the
    // log's: its thread's commits and the resumption of every waiting task.
    let dataDirectory = NSTemporaryDirectory() + "stockpile-bench-allocations-\(getpid())"
    var durableRecordsPerSync = 0.0
    do {
        let durable = try Engine.open(dataDirectory: dataDirectory, durability: .always, configuration: EngineConfiguration(shardCount: options.shards))
        defer {
            try? durable.close()
            try? FileManager.default.removeItem(atPath: dataDirectory)
        }
        _ = await durable.setQuantity(variant: "SKU-HOT", warehouse: "MAIN", to: Quantity(1_000_000_000), reason: .import)
        // The requests' ids are made before counting, one list per task.
        let taskCount = 64
        func idLists(_ prefix: String, perTask: Int) -> [[String]] { (0..<taskCount).map { t in (0..<perTask).map { "\(prefix)\(t)-\($0)" } } }
        func reserveConcurrently(_ lists: [[String]]) async {
            await withTaskGroup(of: Void.self) { group in
                for ids in lists {
                    group.addTask { for id in ids { _ = await durable.reserve(ReserveRequest(id: id, lines: line)) } }
                }
            }
        }
        await reserveConcurrently(idLists("dw", perTask: 50))
        let counted = idLists("d", perTask: count / taskCount)
        let logBefore = durable.logStatus
        let before = stockpile_allocation_count()
        await reserveConcurrently(counted)
        let logAfter = durable.logStatus
        // Each commit resumes `GroupCommitter.directResumeCount` waiters on the log's thread, an
        // allocation each: their share of a reservation is that over the records a sync covers.
        durableRecordsPerSync = Double(logAfter.lastLSN - logBefore.lastLSN) / Double(max(1, logAfter.syncCount - logBefore.syncCount))
        figures.append(("reserve_durable", Double(stockpile_allocation_count() - before) / Double(counted.count * counted[0].count)))
    } catch {
        FileHandle.standardError.write(Data("stockpile-bench: a durable engine: \(error)\n".utf8))
        return 2
    }

    print("allocations per operation (engine in memory but reserve_durable, \(options.shards) shards, \(count) operations each, after a warm-up):")
    for f in figures { print("  " + f.name.padding(toLength: 25, withPad: " ", startingAt: 0) + String(format: "%.2f", f.perOperation)) }
    print(String(format: "  (reserve_durable: %.1f records a sync, %d waiters resumed on the log's thread a commit)", durableRecordsPerSync, GroupCommitter.directResumeCount))
    if options.json {
        var object: [String: Any] = ["scenario": "allocations", "shards": options.shards, "operations": count]
        for f in figures { object["\(f.name)_allocations"] = f.perOperation }
        object["reserve_durable_records_per_sync"] = durableRecordsPerSync
        object["direct_resume_count"] = GroupCommitter.directResumeCount
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
    return 0
}
