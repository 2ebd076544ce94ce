// The table of names KEYs are claimed in: a request waiting for a claim wakes when it settles.

import StockpileCore
import Testing

@testable import Stockpile

@Suite("Idempotency table")
struct IdempotencyTableTests {
    @Test("a request waiting for a claim on its name wakes when the claim settles, and sees the result")
    func waitersWakeOnSettle() async {
        let table = IdempotencyTable<UInt64>()
        guard case .claimed = table.tryClaim("r1", hash: "r1".hashValue) else {
            Issue.record("a free name is claimed")
            return
        }
        #expect(table.isInFlight("r1"))
        #expect(table.tryLookup("r1", hash: "r1".hashValue) == nil, "in flight: no answer without waiting")
        async let seen = table.lookup("r1")
        async let claimedAgain = table.claim("r1")
        // Settled once both wait.
        while table.waiterCount("r1") < 2 { await Task.yield() }
        table.commit("r1", 5)
        #expect(await seen == 5)
        guard case .existing(5) = await claimedAgain else {
            Issue.record("a claim after the commit finds the committed value")
            return
        }
        #expect(!table.isInFlight("r1") && table.peek("r1") == 5)
        // Given up, the name is free again, for a waiter too.
        #expect(table.reclaim("r1") == 5)
        async let free = table.lookup("r1")
        while table.waiterCount("r1") < 1 { await Task.yield() }
        table.abandon("r1")
        #expect(await free == nil)
        #expect(table.all().isEmpty && table.pendingNames().isEmpty && table.waiterCount("r1") == 0)
    }
}
