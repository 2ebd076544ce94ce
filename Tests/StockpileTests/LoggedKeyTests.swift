// A used KEY of an engine with a log is kept as the LSN of the record that used it (16 bytes), and its
// retry reads the original reply back from that record: for every kind of keyed command, a commit's
// record or a `keyUse` record, live, after a start-up that replays the log, and after one from a
// snapshot (which keeps the LSNs). The segments that hold remembered KEYs' records survive the log's
// retention until the KEYs are forgotten. Without a log, replies are kept.

import Foundation
import StockpileWAL
import Testing

@testable import Stockpile

@Suite("KEYs kept as the LSNs of their records")
struct LoggedKeyTests {
    /// Stock, a warehouse and four holds for the keyed commands to act on.
    private static func prepare(_ engine: Engine) async throws {
        _ = try BlackBox.must(await engine.setWarehouse(WarehouseChange(code: "EAST", priority: 2)))
        for v in ["A", "B", "C"] { _ = try BlackBox.must(await engine.adjust(variant: v, warehouse: "MAIN", by: 20, reason: .received)) }
        for i in 1...4 {
            _ = try BlackBox.must(await engine.reserve(ReserveRequest(id: "r\(i)", lines: [BlackBox.line("A", "MAIN", 1)], ttl: .seconds(600))))
        }
    }

    /// One keyed command of every kind; `r1` is released twice, the second time changing nothing (a
    /// `keyUse` record).
    private static let commands: [Command] = [
        .adjust(variant: "A", warehouse: "MAIN", delta: 5, reason: .received, note: "n", reference: "ref", key: "k1"),
        .setQuantity(variant: "B", warehouse: "MAIN", quantity: 7, reason: .correction, key: "k2"),
        .count(variant: "C", warehouse: "MAIN", counted: 3, note: "cycle", key: "k3"),
        .transfer(variant: "A", from: "MAIN", to: "EAST", quantity: 2, key: "k4"),
        .returnStock(variant: "A", warehouse: "MAIN", quantity: 1, disposition: .restock, key: "k5"),
        .release(id: "r1", key: "k6"),
        .release(id: "r1", key: "k7"),
        .confirm(id: "r2", key: "k8"),
        .extend(id: "r3", ttl: .seconds(60), key: "k9"),
        .fulfill(id: "r4", key: "k10"),
        .setWarehouse(WarehouseChange(code: "WEST", priority: 3), key: "k11"),
        .setPolicy(PolicyChange(variant: "A", lowStock: 2), key: "k12"),
    ]

    /// Retries every command and checks it gets its original reply, marked as a replay; a different
    /// command with a used key is CONFLICT.
    private static func retries(_ engine: Engine, _ originals: [Reply], _ when: String) async {
        for (command, original) in zip(commands, originals) {
            #expect(await engine.execute(command).value == original.markedReplayed, "\(command.key!) \(when)")
        }
        let other = Command.adjust(variant: "A", warehouse: "MAIN", delta: 6, reason: .received, key: "k1")
        #expect(await engine.execute(other).refusal?.code == .conflict, "\(when)")
    }

    @Test(
        "with a log, each KEY is kept as its record's LSN, and its retry replays the original reply: live, after replaying the log, after a snapshot",
        arguments: ["always", "interval=5"])
    func retriesReadTheLog(fsync: String) async throws {
        let durability = try #require(DurabilityPolicy(parsing: fsync))
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0)
        var engine = try Engine.open(dataDirectory: dir, durability: durability, configuration: configuration, clock: clock)
        try await Self.prepare(engine)
        var originals: [Reply] = []
        for command in Self.commands {
            originals.append(try BlackBox.must(await engine.execute(command)))
            #expect(engine.keys.peek(command.key!)?.loggedLSN != nil, "\(command.key!) should be kept as an LSN")
        }
        await Self.retries(engine, originals, "live")
        try engine.close()

        engine = try Engine.open(dataDirectory: dir, durability: durability, configuration: configuration, clock: clock)
        for command in Self.commands { #expect(engine.keys.peek(command.key!)?.loggedLSN != nil, "\(command.key!) replayed") }
        await Self.retries(engine, originals, "after replaying the log")
        _ = try await engine.writeSnapshot()
        try engine.close()

        engine = try Engine.open(dataDirectory: dir, durability: durability, configuration: configuration, clock: clock)
        defer { try? engine.close() }
        for command in Self.commands { #expect(engine.keys.peek(command.key!)?.loggedLSN != nil, "\(command.key!) from the snapshot") }
        await Self.retries(engine, originals, "after a start-up from a snapshot")
    }

    @Test("a snapshot leaves out a logged KEY whose record comes after its LSN (replay restores it)")
    func keyAfterTheSnapshotsLSN() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine.open(
            dataDirectory: dir, durability: .always, configuration: EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0), clock: ManualClock())
        defer { try? engine.close() }
        _ = try BlackBox.must(await engine.execute(.adjust(variant: "A", warehouse: "MAIN", delta: 1, reason: .received, key: "before")))
        _ = try BlackBox.must(await engine.execute(.adjust(variant: "A", warehouse: "MAIN", delta: 1, reason: .received, key: "after")))
        let lsn = try #require(engine.keys.peek("after")?.loggedLSN)
        // As if "after" had settled between the capture of the shards and the copy of the keys.
        var (capture, _) = await engine.captureSnapshot()
        capture.position.lastLSN = lsn - 1
        let contents = engine.contents(of: capture, createdAt: Timestamp(milliseconds: 0)).contents
        #expect(contents.loggedKeys.map(\.key) == ["before"])
        #expect(contents.keys.isEmpty)
    }

    @Test("without a log, each KEY keeps its reply")
    func inMemoryKeeps() async throws {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
        try await Self.prepare(engine)
        var originals: [Reply] = []
        for command in Self.commands {
            originals.append(try BlackBox.must(await engine.execute(command)))
            #expect(engine.keys.peek(command.key!)?.keptUse != nil)
        }
        await Self.retries(engine, originals, "in memory")
    }

    @Test("the log's retention keeps the segment of a remembered KEY's record, and removes it once the KEY is forgotten")
    func retentionKeepsKeyedSegments() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 4, retention: .seconds(3600), snapshotEveryRecords: 0, logRetentionByteCount: 1)
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, segmentByteCount: 64 << 10)
        defer { try? engine.close() }
        func fill() async throws {
            for i in 0..<1_500 { _ = try BlackBox.must(await engine.adjust(variant: "F\(i % 50)", warehouse: "MAIN", by: 1, reason: .received)) }
        }
        func segments() throws -> [UInt64] {
            try FileManager.default.contentsOfDirectory(atPath: dir).compactMap(SegmentHeader.firstLSN(fromFileName:)).sorted()
        }
        try await fill()
        let keyed = Command.adjust(variant: "K", warehouse: "MAIN", delta: 3, reason: .received, key: "kept")
        let original = try BlackBox.must(await engine.execute(keyed))
        let lsn = try #require(engine.keys.peek("kept")?.loggedLSN)
        try await fill()
        _ = try await engine.writeSnapshot()
        _ = try await engine.writeSnapshot()
        let kept = try segments()
        #expect(kept.first! > 1, "segments before the KEY's should go")
        #expect(kept.first! <= lsn, "the KEY's segment should stay")
        #expect(await engine.execute(keyed).value == original.markedReplayed)

        // Forgotten after the window: the next snapshot's retention removes its segment too.
        clock.advance(by: .seconds(3601))
        await engine.runDueWork()
        #expect(engine.keys.peek("kept") == nil)
        _ = try BlackBox.must(await engine.adjust(variant: "F0", warehouse: "MAIN", by: 1, reason: .received))
        _ = try await engine.writeSnapshot()
        _ = try await engine.writeSnapshot()
        #expect(try segments().first! > lsn, "the forgotten KEY's segment should go")
    }
}
