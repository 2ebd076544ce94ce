// The snapshot file of wal/FORMAT.md §4: it decodes to exactly what was encoded, its bytes do not
// depend on the order the state was gathered in, and no truncation and no flipped bit is ever
// accepted. The store writes under the final name only whole files, passes over damaged ones for an
// older snapshot, and prunes all but the newest two.

import Foundation
import StockpileCore
import Testing
@testable import StockpileWAL

enum SnapshotSamples {
    /// A state with something of every kind: warehouses and a policy, cells (one below zero by a
    /// loss), open and closed reservations, every sample key use, counters with adjustments by
    /// reason, and recent entries ending just before the next seq.
    static var contents: SnapshotContents {
        var counters = StockCounters()
        counters.unitsReserved = 12
        counters.unitsFulfilled = 5
        counters.unitsReleased = 3
        counters.unitsExpired = 2
        counters.stockouts = 4
        counters.shrinkage = 7
        counters.cycleCounts = 9
        counters.cycleCountsWithoutVariance = 6
        counters.adjustedByReason = [.received: 40, .damaged: -3, .lost: -4, .found: 1]
        let entries = CommitSamples.commits.prefix(6).flatMap(\.entries)
        let recent = entries.enumerated().map { i, e in
            var e = e
            e.seq = 1_000 + UInt64(i)
            return e
        }
        return SnapshotContents(
            lsn: 1_234, createdAt: CommitSamples.t0, nextSeq: 1_000 + UInt64(recent.count),
            warehouses: [.main, Warehouse(code: "EAST", name: "East DC", address: "1 Harbour Rd", priority: -5, active: false)],
            policies: [VariantPolicy(variant: "PRE-ORDER", backorder: true, lowStock: 4), VariantPolicy(variant: "EBOOK-9", unlimited: true)],
            cells: [
                SnapshotCell(variant: "SKU-1", warehouse: "MAIN", state: CellState(onHand: 10, reserved: 3), belowZeroAllowed: false),
                SnapshotCell(variant: "SKU-1", warehouse: "EAST", state: CellState(onHand: 2, reserved: 5), belowZeroAllowed: true),
                SnapshotCell(variant: "Ünïcode-📦", warehouse: "MAIN", state: CellState(onHand: 0, reserved: 0), belowZeroAllowed: false),
                SnapshotCell(variant: "BIG", warehouse: "MAIN", state: CellState(onHand: Limits.quantityMax, reserved: 1), belowZeroAllowed: false),
            ],
            reservations: [CommitSamples.shipped, CommitSamples.hold, CommitSamples.splitHold, CommitSamples.version2Commits[3].reservation!],
            keys: CommitSamples.keyUses, loggedKeys: loggedKeys, counters: counters, recentEntries: recent)
    }

    /// Keys kept as LSNs (version 3): a multi-byte key, a use before 1970, the largest LSN.
    static let loggedKeys = [
        LoggedKey(key: "order:7:payment", usedAt: CommitSamples.t0, lsn: 1_200),
        LoggedKey(key: "ключ-📦", usedAt: Timestamp(milliseconds: -86_400_000), lsn: 1),
        LoggedKey(key: "k", usedAt: Timestamp(milliseconds: 1_700_000_000_001), lsn: .max),
    ]

    static var sorted: SnapshotContents { SnapshotCodec.canonical(contents) }

    /// `count` (at most 1,000) reservations of the sample kinds, with distinct ids not in id order.
    static func reservations(_ count: Int) -> [Reservation] {
        (0..<count).map { i in
            var r = [CommitSamples.shipped, CommitSamples.hold, CommitSamples.splitHold][i % 3]
            r.id = "r-\(i * 7919 % 1000)"
            return r
        }
    }

    /// What wal/golden/v1/snapshot.bin holds: the samples without what version 2 added (a hold that
    /// shipped in part and expired, and the key use of a keyed CONFIRM) or version 3 (logged keys).
    static var version1Sorted: SnapshotContents {
        var c = contents
        c.reservations.removeLast()
        c.keys = Array(c.keys.prefix(CommitSamples.version1KeyUseCount))
        c.loggedKeys = []
        return SnapshotCodec.canonical(c)
    }

    /// What wal/golden/v2/snapshot.bin holds: the samples without logged keys.
    static var version2Sorted: SnapshotContents {
        var c = contents
        c.loggedKeys = []
        return SnapshotCodec.canonical(c)
    }
}

@Suite("Snapshot file")
struct SnapshotCodecTests {
    @Test("a snapshot decodes to exactly what was encoded, with every list sorted")
    func roundTrip() throws {
        let bytes = SnapshotCodec.encode(SnapshotSamples.contents)
        let decoded = try SnapshotCodec.decode(bytes, fileName: "x", expectedLSN: 1_234)
        #expect(decoded == SnapshotSamples.sorted)
        #expect(decoded.cells.map { [$0.variant, $0.warehouse] } == decoded.cells.map { [$0.variant, $0.warehouse] }.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(decoded.reservations.map(\.id) == decoded.reservations.map(\.id).sorted())
        #expect(decoded.keys.map(\.key) == decoded.keys.map(\.key).sorted())
        #expect(decoded.loggedKeys.map(\.key) == decoded.loggedKeys.map(\.key).sorted())
        #expect(decoded.loggedKeys.count == SnapshotSamples.loggedKeys.count)
        #expect(Array(bytes.prefix(8)) == SnapshotCodec.magic)
        #expect(Array(bytes.suffix(24).prefix(8)) == SnapshotCodec.trailerMagic)
    }

    @Test("the bytes do not depend on the order the state was gathered in")
    func canonical() {
        var shuffled = SnapshotSamples.contents
        let seed = RandomCommits.seed(default: 0x5A_0001)
        var rng = SplitMix64(seed: seed)
        shuffled.cells.shuffle(using: &rng)
        shuffled.reservations.reverse()
        shuffled.keys.reverse()
        shuffled.loggedKeys.reverse()
        shuffled.warehouses.reverse()
        #expect(SnapshotCodec.encode(shuffled) == SnapshotCodec.encode(SnapshotSamples.sorted), "seed \(seed)")
    }

    @Test("a long list is written in sorted order whatever order it was gathered in")
    func canonicalLongList() throws {
        // Long enough that the encoder reads reservations ahead of the one it writes.
        let seed = RandomCommits.seed(default: 0x5A_0002)
        var rng = SplitMix64(seed: seed)
        var many = SnapshotSamples.contents
        many.reservations = SnapshotSamples.reservations(300)
        many.reservations.shuffle(using: &rng)
        let bytes = SnapshotCodec.encode(many)
        #expect(bytes == SnapshotCodec.encode(SnapshotCodec.canonical(many)), "seed \(seed)")
        let decoded = try SnapshotCodec.decode(bytes, fileName: "x", expectedLSN: nil)
        #expect(decoded.reservations == SnapshotCodec.canonical(many).reservations, "seed \(seed)")
        // Sorted by id, checked apart from the codec's own order.
        #expect(decoded.reservations.map(\.id) == many.reservations.map(\.id).sorted(), "seed \(seed)")
    }

    @Test("encoded a chunk at a time, a header written back after its payload, the bytes are the whole file's", arguments: [1, 7, 100, 4096, 1 << 20])
    func chunkedEncoding(_ chunkByteCount: Int) throws {
        let seed = RandomCommits.seed(default: 0x5A_0003)
        var rng = SplitMix64(seed: seed)
        var many = SnapshotSamples.contents
        many.reservations = SnapshotSamples.reservations(200)
        many.cells += (0..<300).map { i in
            SnapshotCell(variant: "V-\(i * 31 % 300)", warehouse: i % 2 == 0 ? "MAIN" : "EAST", state: CellState(onHand: Quantity(i), reserved: 0), belowZeroAllowed: false)
        }
        many.reservations.shuffle(using: &rng)
        many.cells.shuffle(using: &rng)
        for contents in [SnapshotSamples.contents, many] {
            var output = SnapshotMemoryOutput()
            let count = try SnapshotCodec.encode(contents, lists: SnapshotCodec.OrderedLists(contents), to: &output, chunkByteCount: chunkByteCount)
            let whole = SnapshotCodec.encode(contents)
            #expect(count == whole.count, "seed \(seed)")
            #expect(output.bytes == whole, "seed \(seed), chunks of \(chunkByteCount) bytes")
        }
        // The file store writes the same bytes, a slice at a time.
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        let written = try SnapshotStore.write(many, directory: dir, fileSystem: fs)
        #expect(fs.contents(of: dir + "/" + written.fileName) == SnapshotCodec.encode(many), "seed \(seed)")
    }

    @Test("a one-line reservation handed over by its fields is written as the reservation they make")
    func oneLineFieldsWriteTheReservation() {
        let seed = RandomCommits.seed(default: 0x5A_0004)
        var rng = SplitMix64(seed: seed)
        for i in 0..<2_000 {
            let status = ReservationStatus.allCases[Int(rng.next() % UInt64(ReservationStatus.allCases.count))]
            let quantity = Quantity(Int64(1 + rng.next() % 70_000))
            let fulfilled = status == .fulfilled || status == .partiallyFulfilled ? Quantity(Int64(rng.next() % UInt64(quantity.units))) : .zero
            let createdAt = Timestamp(milliseconds: Int64(rng.next() % 1_000_000_000_000))
            let later = Timestamp(milliseconds: createdAt.milliseconds + Int64(rng.next() % 100_000_000))
            let id = i % 3 == 0 ? "order-with-a-long-identifier-\(rng.next())" : "r\(rng.next() % 100_000)"
            let variant = i % 2 == 0 ? "SKU-\(rng.next() % 1_000_000_000_000)" : "V\(rng.next() % 50)"
            let warehouse = i % 4 == 0 ? "A-LONG-WAREHOUSE-CODE" : "MAIN"
            let ttl: Duration? = rng.next() % 2 == 0 ? .milliseconds(Int64(1 + rng.next() % 600_000)) : nil
            let customer: String? = rng.next() % 3 == 0 ? "customer-\(rng.next() % 50)" : nil
            let strategy = PlacementStrategy.allCases[Int(rng.next() % UInt64(PlacementStrategy.allCases.count))]
            let endedByExpiry = status == .expired || (status == .fulfilled && rng.next() % 2 == 0)
            let tracked = rng.next() % 5 != 0
            var idBytes = Array(id.utf8)
            var variantBytes = Array(variant.utf8)
            idBytes.withUnsafeMutableBytes { idRaw in
                variantBytes.withUnsafeMutableBytes { variantRaw in
                    let fields = SnapshotOneLineReservation(
                        id: UnsafeRawBufferPointer(idRaw), variant: UnsafeRawBufferPointer(variantRaw), warehouse: warehouse, quantity: quantity,
                        fulfilled: fulfilled, released: status == .released || status == .expired ? quantity - fulfilled : .zero, tracked: tracked,
                        status: status, endedByExpiry: endedByExpiry, expiresAt: status.isOpen && ttl != nil ? later : nil, customer: customer,
                        createdAt: createdAt, closedAt: status.isOpen ? nil : later, requestTTL: ttl, strategy: strategy)
                    var oneLine = ByteWriter()
                    oneLine.write(fields)
                    var whole = ByteWriter()
                    whole.write(fields.reservation)
                    #expect(oneLine.bytes == whole.bytes, "seed \(seed), reservation \(i): \(fields.reservation)")
                    #expect(fields.reservation.id == id && fields.reservation.lines.map(\.variant) == [variant], "seed \(seed)")
                }
            }
        }
    }

    @Test("a cells or reservations section that does not decode, its checksums right, hands over no cell and no reservation", arguments: [3, 4] as [UInt8])
    func listsHandedOnlyWhenValid(_ kind: UInt8) throws {
        let bytes = SnapshotCodec.damagingLastValue(ofSection: kind, in: SnapshotCodec.encode(SnapshotSamples.contents))
        var handed = 0
        #expect(throws: SnapshotDamage.self) {
            _ = try SnapshotCodec.decode(bytes, fileName: "x", expectedLSN: nil, cells: { _ in { _ in handed += 1 } }, reservations: { _ in { _ in handed += 1 } })
        }
        #expect(handed == 0, "cells or reservations were handed over from a snapshot that is not valid")
        #expect(throws: SnapshotDamage.self) { _ = try SnapshotCodec.decode(bytes, fileName: "x", expectedLSN: nil) }
    }

    @Test("a KEY both kept and logged is refused")
    func keyInBothLists() {
        var c = SnapshotSamples.contents
        c.loggedKeys.append(LoggedKey(key: c.keys[0].key, usedAt: CommitSamples.t0, lsn: 9))
        #expect(throws: SnapshotDamage.self) { _ = try SnapshotCodec.decode(SnapshotCodec.encode(c), fileName: "x", expectedLSN: nil) }
    }

    @Test("every truncation and a flipped bit in every byte is refused, never accepted")
    func damageIsDetected() {
        let bytes = SnapshotCodec.encode(SnapshotSamples.contents)
        for n in 0..<bytes.count {
            #expect(throws: SnapshotDamage.self, "a file cut to \(n) bytes") {
                _ = try SnapshotCodec.decode(Array(bytes[0..<n]), fileName: "x", expectedLSN: nil)
            }
        }
        for i in bytes.indices {
            var damaged = bytes
            damaged[i] ^= UInt8(1) << UInt8(i % 8)
            #expect(throws: SnapshotDamage.self, "bit \(i % 8) of byte \(i) flipped") {
                _ = try SnapshotCodec.decode(damaged, fileName: "x", expectedLSN: nil)
            }
        }
    }

    @Test("the header's LSN must be the file name's")
    func lsnMustMatchFileName() {
        let bytes = SnapshotCodec.encode(SnapshotSamples.contents)
        #expect(throws: SnapshotDamage.self) { _ = try SnapshotCodec.decode(bytes, fileName: "x", expectedLSN: 1_235) }
        #expect(SnapshotCodec.fileName(lsn: 1_234) == "snapshot-00000000000004d2.snap")
        #expect(SnapshotCodec.lsn(fromFileName: "snapshot-00000000000004d2.snap") == 1_234)
        #expect(SnapshotCodec.lsn(fromFileName: "snapshot-00000000000004D2.snap") == nil)
        #expect(SnapshotCodec.lsn(fromFileName: "snapshot-00000000000004d2.snap.tmp") == nil)
    }

    @Test("the store keeps the newest two, and passes over a damaged newest snapshot for the one before")
    func store() throws {
        let directory = NSTemporaryDirectory() + "stockpile-snapshot-store-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var names: [String] = []
        for lsn in [10, 20, 30] as [UInt64] {
            var c = SnapshotSamples.sorted
            c.lsn = lsn
            names.append(try SnapshotStore.write(c, directory: directory).fileName)
            try SnapshotStore.pruneOlder(directory: directory)
        }
        #expect(try SnapshotStore.list(directory: directory).map(\.lsn) == [30, 20])
        #expect(!FileManager.default.fileExists(atPath: directory + "/" + names[0]))
        var passed: [SnapshotDamage] = []
        #expect(try SnapshotStore.loadNewestValid(directory: directory) { passed.append($0) }?.contents.lsn == 30)
        // Damage the newest: the older one is used, and the damage is reported.
        let path = directory + "/" + names[2]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[60] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let loaded = try SnapshotStore.loadNewestValid(directory: directory) { passed.append($0) }
        #expect(loaded?.contents.lsn == 20)
        #expect(passed.map(\.fileName) == [names[2]])
        #expect(passed.first?.description.contains("checksum") == true)
    }

    @Test("a snapshot whose write or sync fails is reported and leaves no file under a snapshot's name", arguments: [true, false])
    func failedWrite(_ failWrite: Bool) throws {
        let fs = LogTestSupport.simulatedFileSystem()
        let dir = LogTestSupport.simulatedDirectory
        var contents = SnapshotSamples.sorted
        contents.lsn = 50
        _ = try SnapshotStore.write(contents, directory: dir, fileSystem: fs)
        contents.lsn = 60
        if failWrite { fs.failWrite(1, errno: ENOSPC) } else { fs.failSync(1, errno: EIO) }
        #expect(throws: WALIOError.self) { _ = try SnapshotStore.write(contents, directory: dir, fileSystem: fs) }
        // The earlier snapshot is still the newest valid one; nothing half-written is named.
        #expect(try SnapshotStore.list(directory: dir, fileSystem: fs).map(\.lsn) == [50])
        #expect(try fs.listDirectory(dir).allSatisfy { !$0.hasSuffix(".tmp") })
        #expect(try SnapshotStore.loadNewestValid(directory: dir, fileSystem: fs) { _ in }?.contents.lsn == 50)
    }
}
