// The compact `reservation` record (wal/FORMAT.md §3.8): random runs of new one-line reservations over
// a few cells and actors decode to exactly the commits written, names given once per segment; a commit
// that differs from that shape in any way keeps the generic record; a number the segment never gave
// is a payload that does not decode. Seeded (STOCKPILE_SEED); the seed is in every failure message.

import Foundation
@_spi(Tables) import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct ReservationRecordTests {
    static func seed(_ fallback: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? fallback
    }

    /// A new one-line reservation as the engine commits one.
    static func reservation(
        seq: UInt64, time: Timestamp, id: String, cell: CellKey, quantity: Quantity, onHand: Quantity, reserved: Quantity,
        backordered: Quantity = .zero, tracked: Bool = true, ttl: Duration? = nil, customer: String? = nil,
        strategy: PlacementStrategy = .priority, actor: String
    ) -> Commit {
        let request = ReserveRequest(id: id, lines: [ReserveLine(variant: cell.variant, warehouse: cell.warehouse, quantity: quantity)], ttl: ttl, customer: customer)
        let r = Reservation(
            id: id,
            lines: [ReservationLine(variant: cell.variant, warehouse: cell.warehouse, quantity: quantity, backordered: backordered, tracked: tracked)],
            expiresAt: ttl.map { time.advanced(by: $0) }, customer: customer, createdAt: time, fingerprint: ReserveFingerprint(request, strategy: strategy))
        let e = LedgerEntry(
            seq: seq, time: time, type: .reserve, variant: cell.variant, warehouse: cell.warehouse, deltaReserved: tracked ? quantity : .zero,
            onHand: onHand, reserved: reserved, reservation: id, actor: actor)
        return Commit(time: time, entries: [e], reservation: r, replyShape: .reservation)
    }

    @Test("random new one-line reservations decode to exactly what was written, each as a reservation record")
    func randomRoundTrip() throws {
        let seed = Self.seed(3003)
        var rng = SplitMix64(seed: seed)
        let cells = (0..<6).map { CellKey(variant: "SKU-\($0)", warehouse: $0 % 2 == 0 ? "MAIN" : "W-\($0)") }
        let actors = ["", "client-1", "checkout", "engine"]
        var commits: [Commit] = []
        var time = TestSegments.createdAt.milliseconds - 5_000
        for i in 0..<500 {
            time += Int64(rng.next() % 3_000)
            let quantity = Quantity(Int64(1 + rng.next() % (rng.next() % 4 == 0 ? 1_000_000_000_000 : 9)))
            let tracked = rng.next() % 8 != 0
            commits.append(Self.reservation(
                seq: UInt64(100 + i), time: Timestamp(milliseconds: time), id: "o:\(rng.next() % 1_000_000):\(i)",
                cell: cells[Int(rng.next() % UInt64(cells.count))], quantity: quantity,
                onHand: Quantity(Int64(rng.next() % 1_000_000_000_000)), reserved: Quantity(Int64(rng.next() % 100_000)),
                backordered: rng.next() % 5 == 0 ? Quantity(Int64(1 + rng.next() % 5)) : .zero, tracked: tracked,
                ttl: rng.next() % 2 == 0 ? .milliseconds(Int64(1_000 + rng.next() % 86_400_000)) : nil,
                customer: rng.next() % 3 == 0 ? "customer \(rng.next() % 50)" : nil,
                strategy: [.priority, .most, .split][Int(rng.next() % 3)], actor: actors[Int(rng.next() % UInt64(actors.count))]))
        }
        let bytes = TestSegments.segment(firstLSN: 7, items: commits.map { .commit($0) })
        let scan = try TestSegments.scan(bytes)
        #expect(scan.payloadError == nil, "seed \(seed)")
        #expect(scan.bodies == commits.map { .commit($0) }, "seed \(seed)")
        #expect(scan.records.allSatisfy { $0.type == .reservation }, "seed \(seed)")
        // Each cell and actor is named once: after the first few records, a record is its id and a
        // handful of small numbers.
        let last = try #require(scan.records.last)
        let id = try #require(commits.last?.reservation?.id)
        #expect(last.payloadByteCount <= 40 + id.utf8.count, "seed \(seed): \(last.payloadByteCount) bytes of payload")
    }

    @Test("a commit that is not exactly a new one-line reservation keeps the generic record")
    func nearMissesStayGeneric() throws {
        let t = TestSegments.createdAt
        let cell = CellKey(variant: "SKU-1", warehouse: "MAIN")
        let base = Self.reservation(seq: 5, time: t, id: "r1", cell: cell, quantity: 2, onHand: 10, reserved: 2, actor: "a")
        var customerOnlyOnTheReservation = base
        customerOnlyOnTheReservation.reservation!.customer = "c"
        var noted = base
        noted.entries[0].note = "n"
        var later = base
        later.entries[0].time = t.advanced(by: .milliseconds(1))
        var shipped = base
        shipped.reservation!.lines[0].fulfilled = 1
        var sortedFingerprint = base
        sortedFingerprint.reservation!.fingerprint.lines.append(ReserveLine(variant: "SKU-2", warehouse: "MAIN", quantity: 1))
        var deltaOnHand = base
        deltaOnHand.entries[0].deltaOnHand = 1
        var placed = base
        placed.reservation!.fingerprint.lines[0].warehouse = "*"
        let nearMisses = [customerOnlyOnTheReservation, noted, later, shipped, sortedFingerprint, deltaOnHand, placed]
        let bytes = TestSegments.segment(items: ([base] + nearMisses).map { .commit($0) })
        let scan = try TestSegments.scan(bytes)
        #expect(scan.bodies == ([base] + nearMisses).map { .commit($0) })
        #expect(scan.records.map(\.type) == [.reservation] + Array(repeating: .commit, count: nearMisses.count))
    }

    @Test("a reservation record that uses a cell number its segment never gave does not decode")
    func unknownNumber() throws {
        let t = TestSegments.createdAt
        let cell = CellKey(variant: "SKU-1", warehouse: "MAIN")
        let first = Self.reservation(seq: 1, time: t, id: "r1", cell: cell, quantity: 1, onHand: 5, reserved: 1, actor: "a")
        let second = Self.reservation(seq: 2, time: t, id: "r2", cell: cell, quantity: 1, onHand: 5, reserved: 2, actor: "a")
        // The second record alone in a segment of its own: it refers to cell 0, which that segment never named.
        let both = TestSegments.segment(items: [.commit(first), .commit(second)])
        let firstOnly = TestSegments.segment(items: [.commit(first)])
        var orphan = TestSegments.segment(items: [])
        orphan += both[firstOnly.count...]
        // Its LSN is 2, so the orphan segment starts at 2; the header's CRC covers that field.
        let header = SegmentHeader(salt: TestSegments.salt, firstLSN: 2, createdAt: TestSegments.createdAt)
        var headerBytes = ByteWriter(capacity: 40)
        header.encode(into: &headerBytes)
        orphan.replaceSubrange(0..<40, with: headerBytes.bytes)
        let scan = try TestSegments.scan(orphan)
        #expect(scan.bodies.isEmpty)
        let error = try #require(scan.payloadError)
        #expect("\(error)".contains("cell number 0 is not one the segment has given"))
    }

    @Test("a reservation record in a version 2 segment is damage, and recovery refuses it")
    func reservationRecordInAnOlderSegment() throws {
        let cell = CellKey(variant: "SKU-1", warehouse: "MAIN")
        let commit = Self.reservation(seq: 1, time: TestSegments.createdAt, id: "r1", cell: cell, quantity: 1, onHand: 5, reserved: 1, actor: "a")
        var bytes = TestSegments.segment(items: [.commit(commit)])
        // The same bytes under a version 2 header (its CRC made again).
        var header = ByteWriter(capacity: 40)
        SegmentHeader(salt: TestSegments.salt, firstLSN: 1, createdAt: TestSegments.createdAt, version: 2).encode(into: &header)
        bytes.replaceSubrange(0..<40, with: header.bytes)
        try LogTestSupport.withTemporaryDirectory { dir in
            try Data(bytes + [UInt8](repeating: 0, count: 64)).write(to: URL(fileURLWithPath: dir + "/" + SegmentHeader.fileName(firstLSN: 1)))
            let damage = try #require(LogTestSupport.damage(directory: dir, fileSystem: SystemFileSystem()))
            #expect("\(damage)".contains("a reservation record in a version 2 segment"), "\(damage)")
        }
    }

    @Test("a reservation record whose TTL the engine would never take does not decode, and does not trap")
    func ttlOutOfRange() throws {
        let cell = CellKey(variant: "SKU-1", warehouse: "MAIN")
        for ttl in [Duration.seconds(Int64.max / 2), .seconds(-5), .milliseconds(999), .seconds(30 * 24 * 3600 + 1)] {
            // Written by hand: a writer never writes these (such a commit keeps the generic record).
            var names = SegmentNames(createdAt: TestSegments.createdAt)
            var w = ByteWriter(capacity: 64)
            RecordCodec.appendRecord(lsn: 1, type: .reservation, salt: TestSegments.salt, into: &w) { p in
                CompactReservation(
                    time: TestSegments.createdAt, seq: 1, cell: cell, actor: "a", quantity: 1, tracked: true, backordered: .zero,
                    onHandAfter: 5, reservedAfter: 1, ttl: ttl, customer: nil, strategy: .priority, id: "r1"
                ).encode(into: &p, names: &names)
            }
            var segment = TestSegments.segment(items: [])
            segment += w.bytes
            let scan = try TestSegments.scan(segment)
            #expect(scan.bodies.isEmpty, "\(ttl)")
            #expect(scan.payloadError.map { "\($0)".contains("is outside what a reservation takes") } == true, "\(ttl): \(String(describing: scan.payloadError))")
        }
    }

    @Test("a segment that names one cell twice does not decode past the second naming, and does not trap")
    func cellNamedTwice() throws {
        let cell = CellKey(variant: "SKU-000000012345", warehouse: "MAIN")
        var segment = TestSegments.segment(items: [])
        for lsn in UInt64(1)...2 {
            // Each record written with names of its own, so that each names the cell: what a writer
            // that lost track of its numbers would write.
            var names = SegmentNames(createdAt: TestSegments.createdAt)
            var w = ByteWriter(capacity: 96)
            RecordCodec.appendRecord(lsn: lsn, type: .reservation, salt: TestSegments.salt, into: &w) { p in
                CompactReservation(
                    time: TestSegments.createdAt, seq: lsn, cell: cell, actor: "a", quantity: 1, tracked: true, backordered: .zero,
                    onHandAfter: 5, reservedAfter: Quantity(Int64(lsn)), ttl: nil, customer: nil, strategy: .priority, id: "r\(lsn)"
                ).encode(into: &p, names: &names)
            }
            segment += w.bytes
        }
        let scan = try TestSegments.scan(segment)
        #expect(scan.bodies.count == 1, "the first record reads: \(scan.bodies.count) bodies")
        #expect(scan.payloadError.map { "\($0)".contains("is named twice in the segment") } == true, "\(String(describing: scan.payloadError))")
    }

    @Test("a writer told where the engine keeps each cell writes the bytes of one that is not, across tables emptied and refilled, and reordered")
    func placesChangeNoByte() {
        let seed = Self.seed(0x91AC_E5)
        var rng = SplitMix64(seed: seed)
        // Three shards of up to 40 cells each; a shard's table is emptied now and then and refilled
        // in another order, so positions come back naming other cells under a new generation.
        var generation: UInt64 = 1
        var tables: [(generation: UInt64, cells: [CellKey])] = (0..<3).map { s in
            generation += 1
            return (generation, (0..<40).map { CellKey(variant: "SKU-\(s)-\($0)", warehouse: "MAIN") })
        }
        // The writer told places also starts with room for cells, as a writer's next segment does.
        var told = SegmentNames(createdAt: TestSegments.createdAt, cellCapacity: 100)
        var untold = SegmentNames(createdAt: TestSegments.createdAt)
        for i in 0..<20_000 {
            let s = Int(rng.next() % 3)
            if rng.next() % 500 == 0 {
                generation += 1
                var cells = tables[s].cells
                for k in cells.indices.reversed() { cells.swapAt(k, Int(rng.next() % UInt64(k + 1))) }
                if rng.next() % 2 == 0 { cells[0] = CellKey(variant: "NEW-\(i)", warehouse: "MAIN") }
                tables[s] = (generation, cells)
            }
            let p = Int(rng.next() % UInt64(tables[s].cells.count))
            // Some records come without a place, as those of a cell new to its shard do; now and then
            // a table is reordered under its old generation (a rule broken), which the place's hash
            // must catch.
            if rng.next() % 700 == 0 { tables[s].cells.swapAt(p, Int(rng.next() % UInt64(tables[s].cells.count))) }
            let cell = tables[s].cells[p]
            let fields = CompactReservation(
                reservation: "r\(i)", time: TestSegments.createdAt, seq: UInt64(i + 1), cell: cell, actor: "client-\(rng.next() % 3)",
                quantity: 1, tracked: true, backordered: .zero, onHandAfter: 9, reservedAfter: 1, ttl: nil, customer: nil, strategy: .priority)!
            let place = rng.next() % 8 == 0 ? nil : CellPlace(shard: s, position: p, generation: tables[s].generation, tableHash: CellKey.tableHash(stable: cell.stableHash))
            var a = ByteWriter(capacity: 64)
            var b = ByteWriter(capacity: 64)
            RecordCodec.appendReservation(fields, lsn: UInt64(i + 1), salt: TestSegments.salt, names: &told, place: place, into: &a)
            RecordCodec.appendReservation(fields, lsn: UInt64(i + 1), salt: TestSegments.salt, names: &untold, into: &b)
            guard a.bytes == b.bytes else {
                Issue.record("seed \(seed): record \(i) differs with its cell's place")
                return
            }
        }
        #expect(told == untold, "seed \(seed)")
    }

    @Test("a segment's index of cell numbers finds every number filed and none other, through growth and hashes shared by many cells")
    func cellNumbersAgainstDictionary() {
        let seed = Self.seed(0xCE11_7AB1E)
        var rng = SplitMix64(seed: seed)
        for round in 0..<4 {
            // Hashes drawn from a small set in the first rounds (all with one home and one tag), so
            // that many cells share one and the index must tell them apart by what `matches` says; from
            // a wide one in the last.
            let hashSpread: UInt64 = [7, 300, 1 << 20, .max][round]
            // Grown as `SegmentNames` grows it: at most half full.
            var index = TaggedIndex()
            index.resize(to: 16 << Int(rng.next() % 3))
            var model: [Int: UInt64] = [:]  // a cell (its index) -> its hash
            var numbers: [Int] = []  // number -> cell
            var numberOf: [Int: Int] = [:]
            func find(_ cell: Int, _ hash: UInt64) -> Int? {
                let (slot, found) = index.probe(hash: hash) { numbers[$0] == cell }
                return found ? TaggedIndex.position(index[slot]) : nil
            }
            for _ in 0..<3_000 {
                let cell = Int(rng.next() % 2_000)
                let hash = model[cell] ?? rng.next() % hashSpread
                model[cell] = hash
                let found = find(cell, hash)
                guard found == numberOf[cell] else {
                    Issue.record("seed \(seed), round \(round): cell \(cell) found as \(String(describing: found)), filed as \(String(describing: numberOf[cell]))")
                    return
                }
                if found == nil {
                    if 2 * (numbers.count + 1) > index.count { index.resize(to: index.count * 2) }
                    index.place(position: numbers.count, hash: hash)
                    numberOf[cell] = numbers.count
                    numbers.append(cell)
                }
            }
            for (cell, hash) in model {
                #expect(find(cell, hash) == numberOf[cell], "seed \(seed), round \(round): cell \(cell)")
            }
        }
    }
}
