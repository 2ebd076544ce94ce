// A durable engine whose log cannot be written (SPEC §4): writes are refused READONLY with the failure
// and what to do next, reads go on, and a restart finds everything acknowledged. The log runs on the
// simulated file system, which fills the disk or fails a sync on demand.

import Foundation
import Glibc
import StockpileCore
import StockpileWAL
import Testing

@testable import Stockpile

@Suite("Writes stopped by the log")
struct WritesStoppedTests {
    /// A durable engine on a real temporary directory (its lock) whose log lives on `fileSystem`.
    static func open(_ directory: String, _ fileSystem: SimulatedFileSystem) throws -> Engine {
        try Engine.open(
            dataDirectory: directory, durability: .always, configuration: EngineConfiguration(shardCount: 2), clock: SystemClock(),
            segmentByteCount: 8192, fileSystem: fileSystem, warn: { _ in })
    }

    /// Adjusts SKU MAIN by one until a write is refused (at most `limit` times); returns how many were
    /// acknowledged and the refusal.
    static func writeUntilRefused(_ engine: Engine, limit: Int = 1000) async -> (acknowledged: Int, refusal: Refusal?) {
        for i in 0..<limit {
            if case .refused(let refusal) = await engine.adjust(variant: "SKU", warehouse: "MAIN", by: 1, reason: .received) {
                return (i, refusal)
            }
        }
        return (limit, nil)
    }

    @Test("on a full disk writes go on until the log's segment is full, then are refused READONLY naming ENOSPC and the data directory; reads go on, and a restart after freeing space finds every acknowledged write")
    func fullDisk() async throws {
        let directory = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fs = SimulatedFileSystem(directories: [directory])
        let engine = try Self.open(directory, fs)
        // The first segment is allocated; nothing more fits, not even the segment prepared ahead.
        fs.setFreeByteCount(0)

        let (acknowledged, refusal) = await Self.writeUntilRefused(engine)
        let refused = try #require(refusal, "a full disk must stop writes")
        #expect(refused.code == .readOnly)
        #expect(refused.message.contains("No space left on device"), "\(refused.message)")
        #expect(refused.message.contains("the disk holding \(directory) is full (ENOSPC): free space, then restart"), "\(refused.message)")
        #expect(!refused.message.contains("restart to recover"), "\(refused.message)")
        // Writes stopped at the rotation (making the next segment), not when the preparation ahead failed.
        #expect(engine.logStatus.failure?.contains(".log.tmp") == true, "\(engine.logStatus.failure ?? "no failure")")
        #expect(acknowledged > 30, "the segment's room was used: \(acknowledged) writes")
        #expect(await engine.adjust(variant: "SKU", warehouse: "MAIN", by: 1, reason: .received).refusal?.code == .readOnly, "writes stay stopped")
        #expect(await engine.cell(variant: "SKU", warehouse: "MAIN").value != nil, "reads go on")
        #expect(throws: WALIOError.self) { try engine.close() }

        fs.setFreeByteCount(nil)
        fs.crash()
        let reopened = try Self.open(directory, fs)
        #expect(await reopened.cell(variant: "SKU", warehouse: "MAIN").value?.onHand == Quantity(Int64(acknowledged)))
        #expect(await reopened.events(from: 1, limit: 10_000).count == acknowledged)
        #expect(await reopened.adjust(variant: "SKU", warehouse: "MAIN", by: 1, reason: .received).value?.cell.onHand == Quantity(Int64(acknowledged + 1)))
        try reopened.close()
    }

    @Test("after a failed sync, reads show the newest snapshot's cells and reservations and the log acknowledged after it")
    func durableViewFromASnapshot() async throws {
        let directory = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fs = SimulatedFileSystem(directories: [directory])
        let engine = try Self.open(directory, fs)
        let variants = (0..<40).map { $0 % 3 == 0 ? "a-variant-name-longer-than-24-bytes-\($0)" : "V\($0)" }
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 10, reason: .received) }
        // One-line reservations (kept compact) and some of two lines (kept whole), some closed.
        func reserve(_ i: Int) async {
            var lines = [ReserveLine(variant: variants[i % 40], warehouse: "MAIN", quantity: 1)]
            if i % 5 == 0 { lines.append(ReserveLine(variant: variants[(i + 7) % 40], warehouse: "MAIN", quantity: 2)) }
            _ = await engine.reserve(ReserveRequest(id: "r\(i)", lines: lines, ttl: i % 4 == 0 ? .seconds(600) : nil))
        }
        for i in 0..<30 { await reserve(i) }
        _ = await engine.release("r1")
        _ = await engine.fulfill("r2")
        _ = try await engine.writeSnapshot()
        for i in 30..<40 { await reserve(i) }
        var cells: [Outcome<CellRecord>] = []
        for v in variants { cells.append(await engine.cell(variant: v, warehouse: "MAIN")) }
        var reservations: [Outcome<ReservationRecord>] = []
        for i in 0..<40 { reservations.append(await engine.reservation("r\(i)")) }
        fs.failSync(1, errno: EIO)
        let (_, refusal) = await Self.writeUntilRefused(engine)
        #expect(refusal?.code == .readOnly)
        // Read from the durable view: the snapshot, put into its shards as a start-up puts one, and
        // the log after it, every record of which was acknowledged.
        for (k, v) in variants.enumerated() { #expect(await engine.cell(variant: v, warehouse: "MAIN") == cells[k], "cell \(v)") }
        for i in 0..<40 { #expect(await engine.reservation("r\(i)") == reservations[i], "reservation r\(i)") }
        #expect(throws: WALIOError.self) { try engine.close() }
    }

    @Test("a failed sync is refused READONLY with the error and a restart to recover, and names no full disk")
    func failedSync() async throws {
        let directory = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fs = SimulatedFileSystem(directories: [directory])
        let engine = try Self.open(directory, fs)
        for _ in 0..<3 { _ = await engine.adjust(variant: "SKU", warehouse: "MAIN", by: 1, reason: .received) }
        fs.failSync(1, errno: EIO)
        let (acknowledged, refusal) = await Self.writeUntilRefused(engine)
        #expect(acknowledged == 0)
        let refused = try #require(refusal)
        #expect(refused.code == .readOnly)
        #expect(refused.message.hasPrefix("writes are stopped: the log could not be written (fdatasync \(directory)/"), "\(refused.message)")
        #expect(refused.message.contains("Input/output error (errno 5)); restart to recover"), "\(refused.message)")
        #expect(!refused.message.contains("ENOSPC") && !refused.message.contains("free space"), "\(refused.message)")
        #expect(throws: WALIOError.self) { try engine.close() }
    }
}
