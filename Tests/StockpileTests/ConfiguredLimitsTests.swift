// Limits set lower than `Limits` allows (`--max-lines`, `--max-quantity`): inclusive, LIMIT one past,
// and a refusal changes nothing.

import Testing
@testable import Stockpile

@Suite struct ConfiguredLimitsTests {
    static func engine() -> Engine {
        Engine(configuration: EngineConfiguration(linesPerReservationMax: 2, quantityMax: 50), clock: ManualClock())
    }

    @Test("a reservation may have as many lines as configured, and one more is LIMIT")
    func lines() async {
        let engine = Self.engine()
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received)
        _ = await engine.adjust(variant: "B", warehouse: "MAIN", by: 10, reason: .received)
        _ = await engine.adjust(variant: "C", warehouse: "MAIN", by: 10, reason: .received)
        let two = [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1), ReserveLine(variant: "B", warehouse: "MAIN", quantity: 1)]
        #expect(await engine.reserve(ReserveRequest(id: "two", lines: two)).value != nil)
        let three = two + [ReserveLine(variant: "C", warehouse: "MAIN", quantity: 1)]
        let refused = await engine.reserve(ReserveRequest(id: "three", lines: three)).refusal
        #expect(refused?.code == .limit && refused?.message == "a reservation may have at most 2 lines")
        // The refused id is left unused.
        #expect(await engine.reserve(ReserveRequest(id: "three", lines: two)).value != nil)
    }

    @Test("quantities up to the configured maximum are accepted in every command, one more is LIMIT")
    func quantities() async {
        let engine = Self.engine()
        #expect(await engine.adjust(variant: "A", warehouse: "MAIN", by: 50, reason: .received).value != nil)
        #expect(await engine.adjust(variant: "A", warehouse: "MAIN", by: 51, reason: .received).refusal?.code == .limit)
        #expect(await engine.adjust(variant: "A", warehouse: "MAIN", by: -51, reason: .lost).refusal?.code == .limit)
        #expect(await engine.setQuantity(variant: "A", warehouse: "MAIN", to: 51, reason: .correction).refusal?.code == .limit)
        #expect(await engine.count(variant: "A", warehouse: "MAIN", counted: 51).refusal?.code == .limit)
        #expect(await engine.transfer(variant: "A", from: "MAIN", to: "MAIN", quantity: 51).refusal?.code != nil)
        #expect(await engine.reserve(ReserveRequest(id: "r", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 51)])).refusal?.code == .limit)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand == 50)
    }
}
