// A closed reservation keeps one due item for the retention window: one that closes before its first
// deadline (its request's TTL) is forgotten through its expiry item, which schedules the forgetting
// when it comes due, instead of an item of its own beside it. These tests count the items and hold
// the forgetting to the exact millisecond the window ends, however the reservation closed, across a
// restart from the log or from a snapshot, and when the window ends before the first deadline.

import Foundation
@testable import Stockpile
import Testing

@Suite("The due items of closed reservations")
struct RetentionItemTests {
    enum Closing: String, CaseIterable, CustomStringConvertible {
        case release, fulfill, confirmThenRelease, extendThenRelease, twoShards
        var description: String { rawValue }
    }

    private static let window = Duration.seconds(3600)

    /// Makes hold `h` (TTL 60 s) at time 0 and closes it at 10 s as `closing` says.
    private static func closeBeforeDeadline(_ closing: Closing, _ f: BlackBox.Fixture) async throws {
        let other = Self.variantInAnotherShard(than: "A", f.engine)
        for v in ["A", other] { try await f.receive(v, "MAIN", 10) }
        let lines = closing == .twoShards ? [BlackBox.line("A", "MAIN", 1), BlackBox.line(other, "MAIN", 1)] : [BlackBox.line("A", "MAIN", 1)]
        _ = try BlackBox.must(await f.reserve("h", lines, ttl: .seconds(60)))
        f.advance(.seconds(5))
        switch closing {
        case .confirmThenRelease: _ = try BlackBox.must(await f.engine.confirm("h"))
        case .extendThenRelease: _ = try BlackBox.must(await f.engine.extend("h", ttl: .seconds(60)))
        default: break
        }
        f.advance(.seconds(5))
        let closed = closing == .fulfill ? await f.engine.fulfill("h") : await f.engine.release("h")
        #expect(try !BlackBox.must(closed).reservation.isOpen)
    }

    private static func variantInAnotherShard(than variant: String, _ engine: Engine) -> String {
        let shard = engine.router.shard(for: CellKey(variant: variant, warehouse: "MAIN"))
        return (0...).lazy.map { "V\($0)" }.first { engine.router.shard(for: CellKey(variant: $0, warehouse: "MAIN")) != shard }!
    }

    /// Hold `h` of one unit, TTL 60 s, made now.
    private static func makeHold(_ f: BlackBox.Fixture) async throws {
        try await f.receive("A", "MAIN", 10)
        _ = try BlackBox.must(await f.reserve("h", [BlackBox.line("A", "MAIN", 1)], ttl: .seconds(60)))
    }

    /// Checks that `h` is remembered until `left` from now, to the millisecond, and forgotten then.
    private static func expectForgotten(after left: Duration, _ engine: Engine, advance: (Duration) -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        advance(left - .milliseconds(1))
        #expect(await remembered(engine), "remembered a millisecond before the window ends", sourceLocation: sourceLocation)
        advance(.milliseconds(1))
        #expect(!(await remembered(engine)), "forgotten when the window ends", sourceLocation: sourceLocation)
    }

    /// Whether `h` is still remembered: a query finds it, where a forgotten id is NOTFOUND.
    private static func remembered(_ engine: Engine) async -> Bool {
        await engine.reservation("h").refusal?.code != .notFound
    }

    @Test("a reservation closed before its first deadline keeps only its expiry item, which schedules the forgetting at the window's end", arguments: Closing.allCases)
    func oneItemPerClosedReservation(closing: Closing) async throws {
        let f = BlackBox.Fixture(shardCount: 4, retention: Self.window)
        let expiriesBefore = f.engine.dueWork.count(of: .expire)
        try await Self.closeBeforeDeadline(closing, f)
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 0, "no item of its own while its expiry item waits")
        #expect(f.engine.dueWork.count(of: .expire) == expiriesBefore + (closing == .extendThenRelease ? 2 : 1))
        // Past the first deadline (60 s): the expiry item has scheduled one forgetting, and left the id.
        f.advance(.seconds(60))
        await f.engine.runDueWork()
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 1)
        #expect(f.engine.dueWork.count(of: .expire) == expiriesBefore)
        #expect(await Self.remembered(f.engine))
        // Closed at 10 s: remembered until 10 s + the window, to the millisecond.
        await Self.expectForgotten(after: Self.window - .seconds(60), f.engine, advance: f.advance)
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 0)
        #expect(await f.engine.verify().isEmpty)
    }

    @Test("a window that ends before the first deadline gets an item of its own and forgets on time")
    func windowShorterThanTTL() async throws {
        let f = BlackBox.Fixture(shardCount: 4, retention: .seconds(30))
        try await Self.closeBeforeDeadline(.release, f)
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 1)
        await Self.expectForgotten(after: .seconds(30), f.engine, advance: f.advance)
    }

    @Test("a hold closed at its deadline (it expired) gets an item of its own")
    func expiredHold() async throws {
        let f = BlackBox.Fixture(shardCount: 4, retention: Self.window)
        try await Self.makeHold(f)
        f.advance(.seconds(60))
        await f.engine.runDueWork()
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 1)
        #expect(f.engine.dueWork.count(of: .expire) == 0)
        await Self.expectForgotten(after: Self.window, f.engine, advance: f.advance)
    }

    @Test("a close timed before the first deadline but applied after its item ran (a clock set back) gets an item of its own")
    func closeAfterTheFirstDeadlinesItemRan() async throws {
        let f = BlackBox.Fixture(shardCount: 4, retention: Self.window)
        try await Self.makeHold(f)
        f.advance(.seconds(5))
        _ = try BlackBox.must(await f.engine.confirm("h"))
        // The item at the first deadline runs and finds the confirmed reservation open: it leaves it.
        f.advance(.seconds(55))
        await f.engine.runDueWork()
        #expect(f.engine.dueWork.count(of: .expire) == 0)
        // The clock is set back a second; the release is timed before the first deadline.
        f.advance(.seconds(-1))
        _ = try BlackBox.must(await f.engine.release("h"))
        #expect(f.engine.dueWork.count(of: .forgetReservation) == 1, "the close must not count on an item that ran")
        // Closed at 59 s: remembered until 59 s + the window, to the millisecond.
        await Self.expectForgotten(after: Self.window, f.engine, advance: f.advance)
    }

    enum Restart: String, CaseIterable, CustomStringConvertible {
        /// Confirmed and closed before the restart: the log replays both.
        case closedBeforeLog
        /// Confirmed before a snapshot, closed after the restart from it: the snapshot's open
        /// reservation has no expiry, yet its first deadline must still come.
        case confirmedInSnapshot
        /// Confirmed and closed before a snapshot: it loads closed.
        case closedInSnapshot
        var description: String { rawValue }
    }

    @Test("across a restart, a reservation closed before its first deadline is forgotten exactly one window after it closed", arguments: Restart.allCases)
    func acrossRestart(restart: Restart) async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, retention: Self.window, snapshotEveryRecords: 0)
        let first = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
        _ = try BlackBox.must(await first.adjust(variant: "A", warehouse: "MAIN", by: 10, reason: .received))
        _ = try BlackBox.must(await first.reserve(ReserveRequest(id: "h", lines: [BlackBox.line("A", "MAIN", 1)], ttl: .seconds(60))))
        clock.advance(by: .seconds(5))
        _ = try BlackBox.must(await first.confirm("h"))
        clock.advance(by: .seconds(5))
        if restart != .confirmedInSnapshot { _ = try BlackBox.must(await first.release("h")) }
        if restart != .closedBeforeLog { _ = try await first.writeSnapshot() }
        try first.close()

        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
        defer { try? engine.close() }
        if restart == .confirmedInSnapshot { _ = try BlackBox.must(await engine.release("h")) }
        #expect(engine.dueWork.count(of: .forgetReservation) == (restart == .closedInSnapshot ? 1 : 0))
        // Closed at 10 s: remembered until 10 s + the window, to the millisecond.
        await Self.expectForgotten(after: Self.window, engine, advance: { clock.advance(by: $0) })
        #expect(engine.dueWork.count(of: .forgetReservation) == 0)
        #expect(engine.dueWork.count(of: .expire) == 0)
    }
}
