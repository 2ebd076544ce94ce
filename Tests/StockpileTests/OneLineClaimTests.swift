// A new one-line reservation is answered where its shard makes it, and its id's claim is settled from
// what the shard decided: a refusal frees the id (the same id succeeds once there is stock), a
// reservation keeps it (a retry replays, another request with it conflicts), and its hold expires at
// its TTL (the expiry was scheduled). Alone and in a batch, the same.

import StockpileCore
import Testing

@testable import Stockpile

@Suite("One-line reservations settle their claims")
struct OneLineClaimTests {
    @Test("a refusal frees the id, a reservation keeps it and expires on time", arguments: [false, true])
    func claimsSettle(inBatch: Bool) async {
        let clock = ManualClock()
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: clock)
        var others = 0
        func reserve(_ request: ReserveRequest) async -> Outcome<Reply> {
            if inBatch {
                // With a new reservation beside it, so that the batch decides a run of two.
                others += 1
                let other = ReserveRequest(id: "other-\(others)", lines: [ReserveLine(variant: "B", warehouse: "MAIN", quantity: 1)])
                return await engine.execute([.reserve(request), .reserve(other)])[0]
            }
            return await engine.execute(.reserve(request))
        }
        _ = await engine.adjust(variant: "B", warehouse: "MAIN", by: 100, reason: .received)
        let request = ReserveRequest(id: "r1", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)], ttl: .seconds(30))
        // No stock of A: refused, and the id is free again.
        guard case .refused(let refusal) = await reserve(request) else {
            Issue.record("reserved without stock")
            return
        }
        #expect(refusal.code == .insufficient)
        #expect(!engine.directory.isInFlight("r1") && engine.directory.peek("r1") == nil)
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received)
        guard case .ok(.reservation(let made)) = await reserve(request) else {
            Issue.record("not reserved with stock")
            return
        }
        #expect(!made.replayed && made.reservation.status == .active)
        #expect(engine.directory.peek("r1") != nil)
        // A retry replays; the same id for another cell conflicts.
        guard case .ok(.reservation(let again)) = await reserve(request) else {
            Issue.record("the retry did not replay")
            return
        }
        #expect(again.replayed)
        let conflicting = ReserveRequest(id: "r1", lines: [ReserveLine(variant: "B", warehouse: "MAIN", quantity: 1)])
        if case .refused(let r) = await reserve(conflicting) { #expect(r.code == .conflict) } else { Issue.record("a reuse of the id did not conflict") }
        // The hold expires at its TTL: its expiry was scheduled when the claim was settled.
        clock.advance(by: .seconds(31))
        await engine.runDueWork()
        #expect(await engine.reservation("r1").value?.reservation.status == .expired)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.reserved == .zero)
    }
}
