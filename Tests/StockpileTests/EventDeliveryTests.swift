// What a durable engine reveals, and when: a subscriber hears of an entry only once the log
// acknowledged its record, a read after a failed sync shows only what the log holds, and a subscriber
// that stops reading gets a bounded backlog and an end that says where to catch up.

import Foundation
import Glibc
import Stockpile
import StockpileWAL
import Synchronization
import Testing

@Suite("What is revealed before the log acknowledges it")
struct EventDeliveryTests {
    /// A durable engine whose log lives on a simulated file system (its directory lock is a real file).
    static func openSimulated(_ directory: String, _ fs: SimulatedFileSystem) throws -> Engine {
        try Engine.open(
            dataDirectory: directory, durability: .always, configuration: EngineConfiguration(shardCount: 2), clock: ManualClock(),
            segmentByteCount: 64 << 10, fileSystem: fs, warn: { _ in })
    }

    @Test("a subscriber hears of an entry only once the log acknowledged its record")
    func eventsWaitForTheSync() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fs = SimulatedFileSystem(directories: [dir])
        let engine = try Self.openSimulated(dir, fs)
        defer { try? engine.close() }
        let rounds = 5
        // Each event with the LSN the log had acknowledged when the event arrived. Every commit here is
        // one record with one entry, from LSN 1 and seq 1, so an entry's seq is its record's LSN.
        let received = Mutex<[(seq: UInt64, acknowledged: UInt64)]>([])
        let stream = engine.subscribe()
        let consumer = Task {
            for await event in stream {
                guard case .entry(let e) = event else { continue }
                let acknowledged = engine.logStatus.acknowledgedLSN
                let count = received.withLock { $0.append((e.seq, acknowledged)); return $0.count }
                if count == rounds { return }
            }
        }
        for round in 1...rounds {
            fs.holdSyncs()
            let writer = Task { await engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received) }
            while engine.logStatus.lastLSN < UInt64(round) { try await Task.sleep(for: .milliseconds(1)) }
            // The record is handed over and its sync held: whatever the consumer gets now is early.
            try await Task.sleep(for: .milliseconds(20))
            #expect(received.withLock { $0.count } == round - 1, "round \(round): an event arrived before its record was synced")
            fs.releaseSyncs()
            #expect(await writer.value.value?.cell.onHand.units == Int64(round))
        }
        await consumer.value
        let all = received.withLock { $0 }
        #expect(all.map(\.seq) == Array(1...UInt64(rounds)))
        for r in all { #expect(r.acknowledged >= r.seq, "seq \(r.seq) delivered when only LSN \(r.acknowledged) was acknowledged") }
    }

    @Test("after a failed sync, reads show only what the log holds, and no subscriber hears of the lost change")
    func readsAfterAFailedSync() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fs = SimulatedFileSystem(directories: [dir])
        let engine = try Self.openSimulated(dir, fs)
        defer { try? engine.close() }
        _ = await engine.setWarehouse(WarehouseChange(code: "EAST", priority: 5))
        #expect(await engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received).value?.cell.onHand.units == 5)
        #expect(await engine.reserve(ReserveRequest(id: "r1", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)])).value != nil)
        let durableSeq = engine.nextSeq - 1
        let stream = engine.subscribe()

        // Every sync from here on fails, as a dying disk's would.
        for k in 1...64 { fs.failSync(k, errno: EIO) }
        let lost = await engine.adjust(variant: "A", warehouse: "MAIN", by: 7, reason: .received)
        #expect(lost.refusal?.code == .readOnly)

        // Memory applied the change before the sync failed; no read may show it.
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.onHand.units == 5)
        #expect(await engine.stock(variant: "A").value?.totals.onHand.units == 5)
        #expect(await engine.stats().onHand.units == 5)
        #expect(await engine.events(from: 1, limit: 100).map(\.seq) == Array(1...durableSeq))
        #expect(await engine.history(variant: "A", warehouse: "MAIN").value?.count == 2)
        #expect(await engine.reservation("r1").value?.reservation.status == .active)
        #expect(engine.warehouses().map(\.code) == ["EAST", "MAIN"])
        // Writes stay stopped; reads go on.
        #expect(await engine.release("r1").refusal?.code == .readOnly)
        #expect(await engine.setWarehouse(WarehouseChange(code: "WEST")).refusal?.code == .readOnly)
        #expect(engine.warehouses().map(\.code) == ["EAST", "MAIN"])
        #expect(await engine.reservation("r1").value?.reservation.status == .active)
        #expect(await engine.cell(variant: "A", warehouse: "MAIN").value?.reserved.units == 2)

        // The subscriber never hears of the change that was lost.
        let heard = Mutex<[EngineEvent]>([])
        let consumer = Task { for await e in stream { heard.withLock { $0.append(e) } } }
        try await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        #expect(heard.withLock { $0 }.isEmpty)
    }

    @Test("a subscriber that stops reading gets at most its backlog, then an end naming where to catch up")
    func boundedBacklog() async throws {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 2), clock: ManualClock())
        let limit = 10
        let stream = engine.subscribe(backlogLimit: limit)
        for _ in 0..<25 { _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 1, reason: .received) }
        var iterator = stream.makeAsyncIterator()
        var seqs: [UInt64] = []
        var end: SubscriptionEnd?
        while let event = await iterator.next() {
            switch event {
            case .entry(let e): seqs.append(e.seq)
            case .lowStock: Issue.record("no policy sets a threshold here")
            case .ended(let why): end = why
            }
            if end != nil || seqs.count > 25 { break }
        }
        // The stream kept `limit` unread events and one more, then its end; nothing after that.
        #expect(seqs == Array(1...UInt64(limit + 1)))
        #expect(end == .fellBehind(backlogLimit: limit, resumeSeq: UInt64(limit + 2)))
        #expect(await iterator.next() == nil)
        // Catching up from where the end says gives the rest, gapless.
        #expect(await engine.events(from: UInt64(limit + 2), limit: 100).map(\.seq) == Array(UInt64(limit + 2)...25))
    }
}
