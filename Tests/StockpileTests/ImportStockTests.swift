// Loading stock from outside: on_hand becomes each row's figure, logged as `import`; reservations
// stay; a row naming a warehouse that does not exist refuses the whole load and changes nothing.

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
}
