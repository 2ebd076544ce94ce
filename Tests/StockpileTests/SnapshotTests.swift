// Snapshots of a durable engine: taken while writers run, they hold exactly the state at their LSN, so
// start-up from the newest snapshot plus the log after it equals start-up from the whole log; a
// damaged snapshot is passed over for an older one; a log that does not cover what the snapshot
// needs is refused (wal/FORMAT.md §5, rows 9–11).

import Foundation
import Glibc
@testable import Stockpile
@testable import StockpileWAL
import Testing

@Suite("Snapshots")
struct SnapshotTests {
    static let variants = (0..<40).map { "V\($0)" }

    /// Runs `writers` concurrent tasks of keyed adjustments and reservations for `operations` each,
    /// while `snapshots` snapshots are taken. Returns the keyed adjustments acknowledged and the
    /// reservation ids made.
    static func concurrentWorkload(
        _ engine: Engine, seed: UInt64, writers: Int = 6, operations: Int = 150, snapshots: Int = 4
    ) async throws -> (keys: [(key: String, variant: String, delta: Quantity, receipt: CellReceipt)], ids: [String]) {
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 1000, reason: .received) }
        return try await withThrowingTaskGroup(of: ([(key: String, variant: String, delta: Quantity, receipt: CellReceipt)], [String]).self) { group in
            for w in 0..<writers {
                group.addTask {
                    var rng = SplitMix64(seed: seed &+ UInt64(w))
                    var keys: [(key: String, variant: String, delta: Quantity, receipt: CellReceipt)] = []
                    var ids: [String] = []
                    for i in 0..<operations {
                        let v = variants[Int(rng.next() % UInt64(variants.count))]
                        switch rng.next() % 4 {
                        case 0:
                            let key = "k-\(w)-\(i)"
                            let delta = Quantity(Int64(1 + rng.next() % 9))
                            if case .ok(let r) = await engine.adjust(variant: v, warehouse: "MAIN", by: delta, reason: .received, key: key) {
                                keys.append((key, v, delta, r))
                            }
                        case 1, 2:
                            let id = "r-\(w)-\(i)"
                            let ttl: Duration? = rng.next() % 2 == 0 ? .seconds(30) : nil
                            let request = ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: Quantity(Int64(1 + rng.next() % 3)))], ttl: ttl)
                            if case .ok = await engine.reserve(request) { ids.append(id) }
                        default:
                            if let id = ids.randomElement(using: &rng) {
                                if rng.next() % 2 == 0 { _ = await engine.fulfill(id) } else { _ = await engine.release(id) }
                            }
                        }
                    }
                    return (keys, ids)
                }
            }
            group.addTask {
                for _ in 0..<snapshots {
                    try await Task.sleep(for: .milliseconds(5))
                    _ = try await engine.writeSnapshot()
                }
                return ([], [])
            }
            var keys: [(key: String, variant: String, delta: Quantity, receipt: CellReceipt)] = []
            var ids: [String] = []
            for try await (k, i) in group {
                keys += k
                ids += i
            }
            return (keys, ids)
        }
    }

    static func copyDirectory(_ from: String, withoutSnapshots: Bool) throws -> String {
        let to = try DurabilityTests.temporaryDirectory()
        for name in try FileManager.default.contentsOfDirectory(atPath: from) where name != "LOCK" {
            if withoutSnapshots && name.hasPrefix("snapshot-") { continue }
            try FileManager.default.copyItem(atPath: from + "/" + name, toPath: to + "/" + name)
        }
        return to
    }

    /// `collidingTags`: the directory's tags of reservation ids keep 3 bits of each hash, so that the
    /// ids a snapshot restores and the log then makes share tags in every stripe.
    @Test("snapshots taken while writers run: start-up from the newest snapshot equals the live state and a replay of the whole log", arguments: [false, true])
    func snapshotsUnderConcurrentWrites(collidingTags: Bool) async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let seed = testSeed(fallback: 4242)
        let clock = ManualClock()
        var configuration = EngineConfiguration(shardCount: 8, retention: .seconds(600), snapshotEveryRecords: 0)
        if collidingTags { configuration.directoryLowMask = 0x1FFF_FFFF_FFFF_FFFF }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, segmentByteCount: 64 << 10)
        let (keys, ids) = try await Self.concurrentWorkload(engine, seed: seed)
        let live = await DurabilityTests.observe(engine, variants: Self.variants, ids: ids)
        let snapshotLSN = try #require(engine.lastSnapshot?.lsn)
        #expect(snapshotLSN > 0 && snapshotLSN < engine.logStatus.lastLSN, "the last snapshot should fall inside the run (seed \(seed))")
        #expect(try SnapshotStore.list(directory: dir).count == SnapshotStore.keptCount, "older snapshots are pruned (seed \(seed))")
        try engine.close()

        let fullLog = try Self.copyDirectory(dir, withoutSnapshots: true)
        defer { try? FileManager.default.removeItem(atPath: fullLog) }
        var messages: [String] = []
        let fromSnapshot = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, warn: { messages.append($0) })
        #expect(messages.contains { $0.hasPrefix("loaded snapshot-") }, "\(messages)")
        let fromLog = try Engine.open(dataDirectory: fullLog, durability: .always, configuration: configuration, clock: clock)
        let a = await DurabilityTests.observe(fromSnapshot, variants: Self.variants, ids: ids)
        let b = await DurabilityTests.observe(fromLog, variants: Self.variants, ids: ids)
        #expect(a == live, "start-up from the snapshot differs from the live state (seed \(seed))")
        #expect(b == live, "start-up from the whole log differs from the live state (seed \(seed))")
        #expect(await fromSnapshot.verify().isEmpty)
        // Every acknowledged KEY replays after a start-up from the snapshot.
        #expect(!keys.isEmpty)
        for k in keys {
            var original = k.receipt
            original.replayed = true
            let replay = await fromSnapshot.adjust(variant: k.variant, warehouse: "MAIN", by: k.delta, reason: .received, key: k.key)
            #expect(replay.value == original, "KEY \(k.key) must replay after a start-up from a snapshot (seed \(seed))")
        }
        // Holds restored from the snapshot still expire.
        clock.advance(by: .seconds(60))
        await fromSnapshot.runDueWork()
        for id in ids {
            if let r = await fromSnapshot.reservation(id).value?.reservation, r.isOpen, r.expiresAt != nil {
                Issue.record("hold \(id) should have expired after a start-up from a snapshot (seed \(seed))")
            }
        }
        try fromSnapshot.close()
        try fromLog.close()
    }

    @Test("a damaged newest snapshot is passed over with a warning; a log that does not cover the snapshot is refused")
    func recoveryRows() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configuration = EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0)
        let clock = ManualClock()
        var engine: Engine? = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, segmentByteCount: 16 << 10)
        for i in 0..<200 { _ = await engine!.adjust(variant: "A\(i % 7)", warehouse: "MAIN", by: 2, reason: .received, note: String(repeating: "n", count: 60)) }
        let older = try await engine!.writeSnapshot()
        for i in 0..<200 { _ = await engine!.adjust(variant: "A\(i % 7)", warehouse: "MAIN", by: 1, reason: .received, note: String(repeating: "n", count: 60)) }
        let newer = try await engine!.writeSnapshot()
        for _ in 0..<5 { _ = await engine!.adjust(variant: "A0", warehouse: "MAIN", by: 1, reason: .received) }
        let expected = await engine!.stock(variant: "A0").value?.cells
        try engine!.close()
        engine = nil

        // Row 9: flip one byte of the newest snapshot: it is passed over, the older one is used.
        let damaged = try Self.copyDirectory(dir, withoutSnapshots: false)
        defer { try? FileManager.default.removeItem(atPath: damaged) }
        let path = damaged + "/" + newer.fileName
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var messages: [String] = []
        let reopened = try Engine.open(dataDirectory: damaged, durability: .always, configuration: configuration, clock: clock, warn: { messages.append($0) })
        #expect(messages.contains { $0.contains(newer.fileName) && $0.contains("not valid") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("loaded \(older.fileName)") }, "\(messages)")
        #expect(await reopened.stock(variant: "A0").value?.cells == expected)
        try reopened.close()

        // Row 10: the segments right after the snapshot are gone.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("wal-") }.sorted()
        #expect(segments.count >= 4, "small segments should give several files: \(segments)")
        let gap = try Self.copyDirectory(dir, withoutSnapshots: false)
        defer { try? FileManager.default.removeItem(atPath: gap) }
        try FileManager.default.removeItem(atPath: gap + "/" + newer.fileName)
        for name in segments.dropLast() { try FileManager.default.removeItem(atPath: gap + "/" + name) }
        #expect {
            try Engine.open(dataDirectory: gap, durability: .always, configuration: configuration, clock: clock).close()
        } throws: { error in
            guard case .recovery(.damaged(let d)) = error as? EngineOpenError else { return false }
            return d.row == 10
        }

        // Row 11: the log ends before the snapshot's LSN.
        let short = try Self.copyDirectory(dir, withoutSnapshots: false)
        defer { try? FileManager.default.removeItem(atPath: short) }
        for name in segments.dropFirst() { try FileManager.default.removeItem(atPath: short + "/" + name) }
        #expect {
            try Engine.open(dataDirectory: short, durability: .always, configuration: configuration, clock: clock).close()
        } throws: { error in
            guard case .recovery(.damaged(let d)) = error as? EngineOpenError else { return false }
            return d.row == 11 && "\(d)".contains("files were lost")
        }
    }

    @Test("a newest snapshot whose reservations do not decode, its checksums right, leaves none of its cells or reservations behind")
    func invalidListsLeaveNothing() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configuration = EngineConfiguration(shardCount: 4, snapshotEveryRecords: 0)
        let clock = ManualClock()
        var engine: Engine? = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
        for i in 0..<20 { _ = await engine!.adjust(variant: "OLD\(i)", warehouse: "MAIN", by: 5, reason: .received) }
        let older = try await engine!.writeSnapshot()
        // Cells and reservations only the newer snapshot has (the log has them too: the replay after
        // the older snapshot brings them back, each once).
        for i in 0..<20 { _ = await engine!.adjust(variant: "NEW\(i)", warehouse: "MAIN", by: 5, reason: .received) }
        for i in 0..<30 { _ = await engine!.reserve(ReserveRequest(id: "r\(i)", lines: [ReserveLine(variant: "NEW\(i % 20)", warehouse: "MAIN", quantity: 1)])) }
        let newer = try await engine!.writeSnapshot()
        let expected = await engine!.stock(variant: "NEW3").value?.cells
        try engine!.close()
        engine = nil

        // The newer snapshot's reservations (section 4) end in 0xFF, which no value may end in; both
        // checksums are made right again, so only decoding finds it.
        let path = dir + "/" + newer.fileName
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        try Data(SnapshotCodec.damagingLastValue(ofSection: 4, in: bytes)).write(to: URL(fileURLWithPath: path))

        var messages: [String] = []
        let reopened = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, warn: { messages.append($0) })
        defer { try? reopened.close() }
        #expect(messages.contains { $0.contains(newer.fileName) && $0.contains("not valid") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("loaded \(older.fileName)") }, "\(messages)")
        #expect(await reopened.stock(variant: "NEW3").value?.cells == expected)
        for i in 0..<30 { #expect(await reopened.reservation("r\(i)").value?.reservation.lines[0].quantity == 1, "r\(i)") }
        #expect(await reopened.verify().isEmpty)
    }

    @Test("a snapshot taken after a restart, before any write, covers the log replayed: the next start replays nothing twice")
    func snapshotBeforeFirstWrite() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configuration = EngineConfiguration(shardCount: 2)
        let first = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration)
        for i in 0..<5 { _ = await first.adjust(variant: "S\(i % 2)", warehouse: "MAIN", by: 3, reason: .received) }
        try first.close()

        let second = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, warn: { _ in })
        #expect(second.logStatus.lastLSN == 5, "INFO's last LSN is the log's after a restart")
        let report = try await second.writeSnapshot()
        // Checked before the next start: a snapshot labelled 0 would have it replay the log over the snapshot.
        try #require(report.lsn == 5, "the snapshot covers the 5 records replayed, not LSN \(report.lsn)")
        try second.close()

        let third = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, warn: { _ in })
        #expect(third.startupReport?.snapshotFileName == report.fileName)
        #expect(third.startupReport?.recordsReplayed == 0)
        #expect(await third.cell(variant: "S0", warehouse: "MAIN").value?.onHand == 9)
        #expect(await third.cell(variant: "S1", warehouse: "MAIN").value?.onHand == 6)
        #expect(await third.events(from: 1, limit: 100).map(\.seq) == [1, 2, 3, 4, 5])
        #expect(await third.verify().isEmpty)
        try third.close()
    }

    @Test("a snapshot written from the shards' tables as it is encoded is the file of its state gathered into lists")
    func streamedEqualsGathered() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 0x5_7EA4
        var rng = SplitMix64(seed: seed)
        let engine = try Engine.open(dataDirectory: dir, durability: .none, configuration: EngineConfiguration(shardCount: 5, snapshotEveryRecords: 0))
        defer { try? engine.close() }
        // Names short and long (past the 15 bytes a string keeps inline, and past the 24 a cell keeps
        // inline), in three warehouses, and reservations of one line and of several (a multi-shard
        // one is its home shard's alone); one-line ones with and without a TTL and a customer, open,
        // confirmed, fulfilled in part or whole, released: a shard hands those to the encoder as
        // their fields (`SnapshotReservation.oneLine`), which must be the bytes of the reservation.
        _ = await engine.execute(.setWarehouse(WarehouseChange(code: "EAST", priority: 2)))
        _ = await engine.execute(.setWarehouse(WarehouseChange(code: "WEST-LONG-WAREHOUSE-CODE", priority: 3)))
        let warehouses = ["MAIN", "EAST", "WEST-LONG-WAREHOUSE-CODE"]
        var cells: [(String, String)] = []
        for i in 0..<400 {
            let variant = i % 3 == 0 ? "a-rather-long-variant-name-\(rng.next() % 1000)" : i % 3 == 1 ? "SKU-00000000\(rng.next() % 10000)" : "V\(rng.next() % 500)"
            let cell = (variant, warehouses[Int(rng.next() % 3)])
            _ = await engine.adjust(variant: cell.0, warehouse: cell.1, by: 50, reason: .received)
            cells.append(cell)
        }
        for i in 0..<300 {
            let lineCount = i % 4 == 0 ? 3 : 1
            let lines = (0..<lineCount).map { _ in let c = cells[Int(rng.next() % UInt64(cells.count))]; return ReserveLine(variant: c.0, warehouse: c.1, quantity: Quantity(Int64(1 + rng.next() % 3))) }
            let id = i % 5 == 0 ? "order-with-a-long-identifier-\(rng.next())" : "r\(rng.next() % 100_000)"
            let ttl: Duration? = i % 7 == 0 ? .seconds(Int64(rng.next() % 600 + 1)) : nil
            let customer = i % 3 == 0 ? "customer-\(rng.next() % 50)" : nil
            _ = await engine.reserve(ReserveRequest(id: id, lines: lines, ttl: ttl, customer: customer))
            switch rng.next() % 6 {
            case 0: _ = await engine.release(id)
            case 1: _ = await engine.fulfill(id)
            case 2: _ = await engine.confirm(id)
            case 3: _ = await engine.fulfill(id, line: LineSelector(variant: lines[0].variant, warehouse: lines[0].warehouse, quantity: 1))
            default: break
            }
        }
        // Ids each a prefix of the next, on cells of any shard: the merge of the shards compares ids
        // as bytes, a shorter one first where one is a prefix of the other.
        var chain = "c"
        for _ in 0..<40 {
            let c = cells[Int(rng.next() % UInt64(cells.count))]
            let made = await engine.reserve(ReserveRequest(id: chain, lines: [ReserveLine(variant: c.0, warehouse: c.1, quantity: 1)]))
            guard case .ok = made else { Issue.record("\(chain) was not reserved: \(made), seed \(seed)"); return }
            chain += String(rng.next() % 10)
        }
        let (capture, _) = await engine.captureSnapshot()
        let (contents, lists, _) = engine.snapshotParts(of: capture, createdAt: Timestamp(milliseconds: 7))
        #expect(lists.cellCount > 300 && lists.reservationCount > 240, "seed \(seed)")
        for chunk in [1, 64, 1 << 20] {
            var output = SnapshotMemoryOutput()
            _ = try SnapshotCodec.encode(contents, lists: lists, to: &output, chunkByteCount: chunk)
            // The gathered lists are sorted by the codec itself, apart from the merge of the shards.
            let gathered = engine.contents(of: capture, createdAt: Timestamp(milliseconds: 7)).contents
            #expect(output.bytes == SnapshotCodec.encode(gathered), "seed \(seed), chunks of \(chunk)")
        }
    }

    @Test("a shard's reservations are written in the order of their ids whatever the ids share: a long common start, equal bytes after it, prefixes of each other")
    func idOrderWhateverTheIDsShare() async throws {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 0x1D_50A7
        var rng = SplitMix64(seed: seed)
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(Unicode.Scalar(UInt8(0x30 + rng.next() % 10))) }) }
        func letters(_ n: Int) -> String { String((0..<n).map { _ in Character(Unicode.Scalar(UInt8(0x61 + rng.next() % 3))) }) }
        let sixteen = String(repeating: "Q", count: 16)
        let fifteen = String(repeating: "Q", count: 15)
        let seventy = String(repeating: "z", count: 70)
        let hundred = String(repeating: "k", count: 100)
        var calls = 0
        // Each case is one set of ids and how many reservations are tried: the sort reads 16 bytes
        // after what the ids all start with, and again after what the ids of equal keys start with.
        let cases: [(String, Int, () -> String)] = [
            ("a shop's order numbers", 300, { "order-2026-12-07-" + digits(7) }),
            ("16 equal bytes after a letter, then a few letters", 300, { letters(1) + "-" + sixteen + letters(Int(rng.next() % 6)) }),
            ("a start past the 64 bytes looked for, one id ending where the others go on", 300, { seventy + sixteen + letters(Int(rng.next() % 5)) }),
            ("ids of 100 to 120 bytes alike but for their ends", 300, { hundred + letters(1 + Int(rng.next() % 20)) }),
            ("16 bytes alike after a letter, one id ending there", 300, { letters(1) + fifteen + letters(Int(rng.next() % 4)) }),
            ("ids of a few letters, prefixes of each other", 300, { letters(1 + Int(rng.next() % 5)) }),
            ("mixed", 300, { rng.next() % 2 == 0 ? "order-2026-12-07-" + digits(Int(rng.next() % 8)) : letters(1 + Int(rng.next() % 30)) }),
            ("one id", 1, { "only" }),
            ("two ids, one the other's start", 2, { calls += 1; return calls % 2 == 1 ? sixteen + "x" : sixteen }),
        ]
        for (name, attempts, id) in cases {
            for shardCount in [1, 3] {
                let dir = try DurabilityTests.temporaryDirectory()
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let engine = try Engine.open(dataDirectory: dir, durability: .none, configuration: EngineConfiguration(shardCount: shardCount, snapshotEveryRecords: 0))
                defer { try? engine.close() }
                for v in 0..<6 { _ = await engine.adjust(variant: "V\(v)", warehouse: "MAIN", by: 1_000, reason: .received) }
                var made = 0
                for _ in 0..<attempts {
                    let line = ReserveLine(variant: "V\(rng.next() % 6)", warehouse: "MAIN", quantity: 1)
                    if case .ok(let r) = await engine.reserve(ReserveRequest(id: id(), lines: [line])), !r.replayed { made += 1 }
                }
                let (capture, _) = await engine.captureSnapshot()
                let (contents, lists, _) = engine.snapshotParts(of: capture, createdAt: Timestamp(milliseconds: 7))
                #expect(lists.reservationCount == made && (attempts > 2 ? made >= 10 : made == attempts), "\(name), \(shardCount) shards, seed \(seed)")
                var output = SnapshotMemoryOutput()
                _ = try SnapshotCodec.encode(contents, lists: lists, to: &output, chunkByteCount: 1 << 20)
                // The gathered lists are sorted by the codec itself, by the ids as `String`s.
                let gathered = engine.contents(of: capture, createdAt: Timestamp(milliseconds: 7)).contents
                let same = output.bytes == SnapshotCodec.encode(gathered)
                #expect(same, "\(name), \(shardCount) shards: the reservations are not in the order of their ids, seed \(seed)")
            }
        }
    }

    @Test("the merge of the shards orders their next ids as String does, ids past the usual slot too")
    func idHeadsOrderAsStrings() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 0x1D_4EAD
        var rng = SplitMix64(seed: seed)
        let shardCount = 6
        let heads = IDHeads(shardCount: shardCount)
        var ids = [String](repeating: "", count: shardCount)
        for round in 0..<2_000 {
            let s = Int(rng.next() % UInt64(shardCount))
            // Printable ASCII from a small alphabet (so that prefixes and long common runs come up), of
            // 1 to 40 bytes, and from round 1,000 on now and then past the 128 a slot starts with.
            let long = round >= 1_000 && rng.next() % 50 == 0
            let length = long ? 129 + Int(rng.next() % 200) : 1 + Int(rng.next() % 40)
            let id = String((0..<length).map { _ in Character(Unicode.Scalar(UInt8(0x61 + rng.next() % 3))) })
            ids[s] = id
            id.utf8.withContiguousStorageIfAvailable { utf8 in
                if !heads.set(s, to: UnsafeRawBufferPointer(utf8)) {
                    heads.lengthenSlots(to: utf8.count)
                    #expect(heads.set(s, to: UnsafeRawBufferPointer(utf8)), "a lengthened slot holds \(utf8.count) bytes, seed \(seed)")
                }
            }
            for a in 0..<shardCount where !ids[a].isEmpty {
                for b in 0..<shardCount where !ids[b].isEmpty {
                    #expect(heads.isLess(a, than: b) == (ids[a] < ids[b]), "\(ids[a]) and \(ids[b]), seed \(seed)")
                }
            }
        }
    }

    @Test("a snapshot is written by itself every N records")
    func everyNRecords() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The system clock drives the engine's timer, which starts due snapshots.
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: EngineConfiguration(shardCount: 2, snapshotEveryRecords: 50))
        for i in 0..<120 { _ = await engine.adjust(variant: "S\(i % 3)", warehouse: "MAIN", by: 1, reason: .received) }
        // Once the timer has looked, fewer than N records are left without a snapshot.
        let last = engine.logStatus.lastLSN
        var waited = 0
        while last - (engine.lastSnapshot?.lsn ?? 0) >= 50 && waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let lsn = try #require(engine.lastSnapshot?.lsn, "no snapshot was written by itself")
        #expect(last - lsn < 50, "\(last - lsn) records since the last snapshot")
        try engine.close()
    }

    @Test("with a log retention, segments both kept snapshots cover are removed; start-up still finds everything after them")
    func logRetention() async throws {
        let dir = try DurabilityTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let configuration = EngineConfiguration(shardCount: 2, snapshotEveryRecords: 0, logRetentionByteCount: 20 << 10)
        func segments() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("wal-") }.sorted() }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock, segmentByteCount: 16 << 10)
        for round in 0..<3 {
            for i in 0..<300 { _ = await engine.adjust(variant: "R\(i % 5)", warehouse: "MAIN", by: 1, reason: .received, note: "round \(round)") }
            _ = try await engine.writeSnapshot()
        }
        let kept = try segments()
        #expect(kept.first != "wal-0000000000000001.log", "the oldest segments should be gone: \(kept)")
        let oldestSnapshot = try #require(try SnapshotStore.list(directory: dir).last)
        let firstKept = try #require(kept.first.flatMap(SegmentHeader.firstLSN(fromFileName:)))
        #expect(firstKept <= oldestSnapshot.lsn + 1, "the log must reach back to the older snapshot")
        let live = await engine.stock(variant: "R0").value?.cells
        try engine.close()

        let reopened = try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock)
        #expect(await reopened.stock(variant: "R0").value?.cells == live)
        try reopened.close()

        // Without the snapshots the remaining log does not start at 1: refused, not silently partial.
        for s in try SnapshotStore.list(directory: dir) { try FileManager.default.removeItem(atPath: dir + "/" + s.name) }
        #expect {
            try Engine.open(dataDirectory: dir, durability: .always, configuration: configuration, clock: clock).close()
        } throws: { error in
            guard case .recovery(.damaged(let d)) = error as? EngineOpenError else { return false }
            return d.row == 10 && "\(d)".contains("no snapshot was found")
        }
    }

    @Test("an engine in memory refuses a snapshot")
    func inMemory() async {
        await #expect(throws: SnapshotError.self) { try await Engine().writeSnapshot() }
    }
}
