// Loading stock from outside: on_hand becomes each row's figure, logged as `import`; reservations
// stay; a row naming a warehouse that does not exist refuses the whole load and changes nothing.

import Foundation
import Testing
@testable import Stockpile

@Suite struct ImportStockTests {
    @Test("import sets on_hand, logs type and reason import, and leaves reserved alone")
    func importSetsOnHand() async throws {
        let engine = Engine(clock: ManualClock())
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
        _ = await engine.reserve(ReserveRequest(id: "r", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 4)]))
        let rows = try StockCSV.parse("variant,warehouse,on_hand\nA,MAIN,7\nB,main,3\n", source: "s.csv")
        #expect(await engine.importStock(rows).value == 2)
        let a = await engine.cell(variant: "A", warehouse: "MAIN").value
        #expect(a?.onHand == 7 && a?.reserved == 4)
        #expect(await engine.cell(variant: "B", warehouse: "MAIN").value?.onHand == 3)
        let entry = await engine.history(variant: "A", warehouse: "MAIN", limit: 1).value?.first
        #expect(entry?.type == .import && entry?.reason == .import && entry?.deltaOnHand == -3 && entry?.actor == "import")
        #expect(await engine.verify().isEmpty)
    }

    @Test("a row in a warehouse that does not exist refuses the whole load, naming its line")
    func unknownWarehouse() async throws {
        let engine = Engine(clock: ManualClock())
        let rows = try StockCSV.parse("variant,warehouse,on_hand\nA,MAIN,7\nB,NOWHERE,3\n", source: "s.csv")
        let refusal = await engine.importStock(rows).refusal
        #expect(refusal?.code == .notFound && refusal?.message == "line 3: warehouse NOWHERE does not exist")
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == 0)
        #expect(engine.nextSeq == 1)
    }

    @Test("a row that is not valid refuses the whole load before any row is applied")
    func invalidRowChangesNothing() async throws {
        let engine = Engine(configuration: EngineConfiguration(quantityMax: 100), clock: ManualClock())
        let rows = [
            StockRow(variant: "A", warehouse: "MAIN", onHand: 7, line: 2),
            StockRow(variant: "B", warehouse: "MAIN", onHand: 101, line: 3),
        ]
        let refusal = await engine.importStock(rows).refusal
        #expect(refusal?.code == .limit && refusal?.message.hasPrefix("line 3: ") == true)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == 0)
        #expect(engine.nextSeq == 1)
    }

    @Test("a warehouse code is read as its stored form: a row for `main` loads MAIN")
    func warehouseCodeNormalised() async throws {
        let engine = Engine(clock: ManualClock())
        #expect(await engine.importStock([StockRow(variant: "A", warehouse: "main", onHand: 4, line: 2)]).value == 1)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == 4)
    }

    @Test("in a load checked in halves, the first bad row in row order refuses it, and nothing is applied", arguments: [70_000, 120_000])
    func badRowInALargeLoad(badAt: Int) async throws {
        let engine = Engine(clock: ManualClock())
        var rows = (0..<150_000).map { StockRow(variant: "SKU-\($0)", warehouse: "MAIN", onHand: 1, line: $0 + 2) }
        rows[badAt].warehouse = "NOWHERE"
        rows[130_000].onHand = -1
        let refusal = await engine.importStock(rows).refusal
        #expect(refusal?.code == .notFound && refusal?.message == "line \(badAt + 2): warehouse NOWHERE does not exist")
        #expect(engine.nextSeq == 1)
        #expect(await engine.cell(variant: "SKU-0", warehouse: "MAIN").value?.onHand == 0)
    }

    @Test("a stock file loaded a chunk at a time, the next read while one loads, loads every row in file order")
    func chunkedFile() async throws {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
        let count = 100
        let text = StockCSV.header + "\n" + (0..<count).map { "SKU-\($0 % 40),MAIN,\($0)\n" }.joined()
        let bytes = Array(text.utf8)
        // The same cell in several chunks: each ends at its last row, so the chunks loaded in order.
        let (loaded, refusal) = await engine.importStock(StockCSV.rows(bytes, source: "stock.csv", chunkRowCount: 7))
        #expect(loaded == count && refusal == nil)
        for v in 0..<40 {
            let last = (0..<count).last { $0 % 40 == v }!
            #expect(await engine.cell(variant: "SKU-\(v)", warehouse: "MAIN").value?.onHand == Quantity(Int64(last)))
        }
        let events = await engine.events(from: 1, limit: count + 1)
        #expect(events.count == count)
        #expect(events.filter { $0.variant == "SKU-3" }.map(\.onHand) == [3, 43, 83])
        #expect(await engine.verify().isEmpty)
    }

    @Test("a chunk that is refused stops a chunked load; the chunks before it stay loaded")
    func chunkedFileRefused() async throws {
        let engine = Engine(clock: ManualClock())
        // Row 12 (line 13) names a warehouse that does not exist; chunks of 5 rows: two load first.
        let rows = (0..<20).map { "SKU-\($0),\($0 == 12 ? "NOWHERE" : "MAIN"),1\n" }.joined()
        let bytes = Array((StockCSV.header + "\n" + rows).utf8)
        let (loaded, refusal) = await engine.importStock(StockCSV.rows(bytes, source: "stock.csv", chunkRowCount: 5))
        #expect(loaded == 10)
        #expect(refusal?.code == .notFound && refusal?.message == "line 14: warehouse NOWHERE does not exist")
        #expect(await engine.cell(variant: "SKU-9", warehouse: "MAIN").value?.onHand == 1)
        #expect(await engine.cell(variant: "SKU-10", warehouse: "MAIN").value?.onHand == 0)
    }

    @Test("a cell named twice ends at its last row; every row is one import entry, in file order per cell")
    func repeatedCell() async throws {
        let engine = Engine(clock: ManualClock())
        // A seed file may not name a cell twice (StockCSV refuses it); the API takes any rows.
        let rows = [
            StockRow(variant: "A", warehouse: "MAIN", onHand: 7, line: 2),
            StockRow(variant: "B", warehouse: "MAIN", onHand: 1, line: 3),
            StockRow(variant: "A", warehouse: "MAIN", onHand: 2, line: 4),
        ]
        #expect(await engine.importStock(rows).value == 3)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == 2)
        let history = await engine.history(variant: "A", warehouse: "MAIN", limit: 10).value ?? []
        #expect(history.map(\.onHand) == [2, 7] && history.map(\.deltaOnHand) == [-5, 7])
        #expect(await engine.events(from: 1, limit: 10).count == 3)
        #expect(await engine.verify().isEmpty)
    }

    /// Enough rows to be checked in halves on two threads: every row of both halves lands in its own
    /// cell with its own figure, and a cell named in both halves ends at its row in the second.
    @Test("a load checked in halves applies every row of both halves to its own cell")
    func loadCheckedInHalves() async throws {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
        let count = 70_000
        var rows = (0..<count).map { StockRow(variant: "SKU-\($0)", warehouse: "MAIN", onHand: Quantity(Int64($0 + 1)), line: $0 + 2) }
        // Named again near the end (the second half): the later row wins.
        rows.append(StockRow(variant: "SKU-3", warehouse: "MAIN", onHand: 999, line: count + 2))
        #expect(await engine.importStock(rows).value == count + 1)
        for i in [0, 1, 4, count / 2 - 1, count / 2, count / 2 + 1, count - 1] {
            #expect(await engine.cell(variant: "SKU-\(i)", warehouse: "MAIN").value?.onHand == Quantity(Int64(i + 1)), "row of SKU-\(i)")
        }
        #expect(await engine.cell(variant: "SKU-3", warehouse: "MAIN").value?.onHand == 999)
        #expect(engine.nextSeq == UInt64(count + 2))
        #expect(await engine.verify().isEmpty)
    }

    /// More rows than one commit carries, over every shard: the state, the ledger and the counters
    /// after a restart are what they were before it.
    @Test("a load of many commits per shard comes back whole after a restart")
    func largeLoadSurvivesRestart() async throws {
        var template = Array("/tmp/stockpile-import-test-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configuration = EngineConfiguration(shardCount: 4)
        let count = Engine.importCommitRowCountMax * 4 + 17
        let rows = (0..<count).map { StockRow(variant: "SKU-\($0 % (count - 5))", warehouse: "MAIN", onHand: Quantity(Int64($0)), line: $0 + 2) }
        let before: ([CellRecord], StockCounters, [LedgerEntry])
        do {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
            #expect(await engine.importStock(rows).value == count)
            #expect(engine.nextSeq == UInt64(count) + 1)
            before = (await engine.cells(of: ["SKU-0", "SKU-1", "SKU-\(count - 6)"]), await engine.stats().counters, await engine.events(from: 1, limit: count))
            #expect(await engine.verify().isEmpty)
            try engine.close()
        }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: ManualClock())
        defer { try? engine.close() }
        #expect(await engine.cells(of: ["SKU-0", "SKU-1", "SKU-\(count - 6)"]) == before.0)
        #expect(await engine.stats().counters == before.1)
        #expect(await engine.events(from: 1, limit: count) == before.2)
        // The five cells named twice end at their second row.
        #expect(await engine.cell(variant: "SKU-0", warehouse: "MAIN").value?.onHand == Quantity(Int64(count - 5)))
        #expect(await engine.verify().isEmpty)
    }
}

extension Engine {
    fileprivate func cells(of variants: [String]) async -> [CellRecord] {
        var out: [CellRecord] = []
        for v in variants { out += await stock(variant: v).value?.cells ?? [] }
        return out
    }
}
