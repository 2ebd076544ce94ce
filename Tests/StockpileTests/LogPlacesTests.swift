// The log's writer numbers a reservation's cell by where its shard keeps it (`CellPlace`): after RESETs
// that empty the cell tables and cells made again in another order, so that positions come back
// naming other cells within one segment, a reopened engine replays every reservation onto its own
// cell. Names longer than 15 bytes, so that the names are not kept inside their strings. Seeded
// (STOCKPILE_SEED).

import Foundation
import StockpileCore
import Testing

@testable import Stockpile

@Suite struct LogPlacesTests {
    @Test("cells made again in another order after each RESET replay onto their own cells")
    func placesAcrossResets() async throws {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 0x91AC_E6
        var rng = SplitMix64(seed: seed)
        let directory = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = EngineConfiguration(shardCount: 3, snapshotEveryRecords: 0)
        let clock = ManualClock()
        let variants = (0..<30).map { "A-VARIANT-NAMED-AT-LENGTH-\($0)" }
        var ids: [String] = []
        let engine = try Engine.open(dataDirectory: directory, durability: .always, configuration: configuration, clock: clock)
        for round in 0..<5 {
            var order = variants
            for k in order.indices.reversed() { order.swapAt(k, Int(rng.next() % UInt64(k + 1))) }
            let used = order.prefix(12 + 3 * round)
            for v in used { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: Quantity(Int64(100 + round)), reason: .received) }
            for i in 0..<150 {
                let v = used[used.startIndex + Int(rng.next() % UInt64(used.count))]
                let id = "round-\(round)-reservation-\(i)"
                let outcome = await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: 1)]))
                guard case .ok = outcome else {
                    Issue.record("seed \(seed): \(id) refused: \(outcome)")
                    return
                }
                ids.append(id)
            }
            if round < 4 {
                #expect(await engine.reset() == nil, "seed \(seed)")
                ids.removeAll()
            }
        }
        let before = await DurabilityTests.observe(engine, variants: variants, ids: ids)
        try engine.close()
        let reopened = try Engine.open(dataDirectory: directory, durability: .always, configuration: configuration, clock: clock, warn: { _ in })
        let after = await DurabilityTests.observe(reopened, variants: variants, ids: ids)
        #expect(after.reservations == before.reservations, "seed \(seed)")
        #expect(after.cells == before.cells, "seed \(seed)")
        #expect(after.counters == before.counters, "seed \(seed)")
        #expect(await reopened.verify().isEmpty, "seed \(seed)")
        try reopened.close()
    }
}
