// New one-line reservations handed to the committer as staged bytes (`StagedReservation`): framed, they
// are byte for byte the records `RecordCodec.appendReservation` writes from the same fields, places and
// names; handed over in lanes, out of LSN order between lanes and mixed with other records, across
// segment rotations, they recover as exactly the commits they stand for, each as a `reservation`
// record. Seeded (STOCKPILE_SEED); the seed is in every failure message.

import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct StagedReservationTests {
    /// A random new one-line reservation's fields (entry numbered `seq`), on one of `cells`, by one of
    /// `actors`, with the cell's place in shard `shardOf(cell)` at its index, under `generation`, or no
    /// place at all now and then.
    static func random(
        _ rng: inout SplitMix64, seq: UInt64, time: Int64, cells: [CellKey], actors: [String], generation: UInt64
    ) -> (fields: CompactReservation, place: CellPlace?) {
        let c = Int(rng.next() % UInt64(cells.count))
        let cell = cells[c]
        let commit = ReservationRecordTests.reservation(
            seq: seq, time: Timestamp(milliseconds: time), id: "order-\(rng.next() % 1_000_000_000)-\(seq)-" + String(repeating: "x", count: Int(rng.next() % 90)),
            cell: cell, quantity: Quantity(Int64(1 + rng.next() % (rng.next() % 4 == 0 ? 1_000_000_000_000 : 9))),
            onHand: Quantity(Int64(rng.next() % 1_000_000_000_000) - 500_000_000_000), reserved: Quantity(Int64(rng.next() % 100_000)),
            backordered: rng.next() % 5 == 0 ? Quantity(Int64(1 + rng.next() % 5)) : .zero, tracked: rng.next() % 8 != 0,
            ttl: rng.next() % 2 == 0 ? .milliseconds(Int64(1_000 + rng.next() % 86_400_000)) : nil,
            customer: rng.next() % 3 == 0 ? "customer \(rng.next() % 50)" + String(repeating: "é", count: Int(rng.next() % 20)) : nil,
            strategy: [.priority, .most, .split][Int(rng.next() % 3)], actor: actors[Int(rng.next() % UInt64(actors.count))])
        let fields = CompactReservation(commit)!
        let place = rng.next() % 10 == 0
            ? nil : CellPlace(shard: c % 3, position: c, generation: generation, tableHash: CellKey.tableHash(stable: cell.stableHash))
        return (fields, place)
    }

    /// Stages the record of `fields`, its entry numbered `seq`, as the committer stages one.
    static func stage(_ fields: CompactReservation, seq: UInt64, lsn: UInt64, place: CellPlace?, into staged: inout [UInt8]) {
        StagedReservation.stage(
            id: fields.id, time: fields.time, seq: seq, cell: fields.cell, actor: fields.actor, hold: fields.hold, onHandAfter: fields.onHandAfter,
            reservedAfter: fields.reservedAfter, customer: fields.customer, lsn: lsn, place: place, into: &staged)
    }

    static let cells = (0..<40).map { CellKey(variant: "SKU-\($0)" + String(repeating: "v", count: $0 % 7 * 9), warehouse: $0 % 3 == 0 ? "MAIN" : "W-\($0 % 5)") }
    static let actors = ["", "client-1", "client-22", "checkout service of the north region", "engine"]

    @Test("a staged reservation frames to exactly the record its fields make, names given the same way")
    func framedAsEncoded() throws {
        let seed = ReservationRecordTests.seed(4004)
        var rng = SplitMix64(seed: seed)
        var stagedNames = SegmentNames(createdAt: TestSegments.createdAt)
        var encodedNames = SegmentNames(createdAt: TestSegments.createdAt)
        var framed = ByteWriter()
        var encoded = ByteWriter()
        var time = TestSegments.createdAt.milliseconds - 5_000
        var generation: UInt64 = 1
        for i in 0..<2_000 {
            time += Int64(rng.next() % 3_000)
            // Now and then a shard's table is emptied: its places take a new generation.
            if rng.next() % 300 == 0 { generation += 1 }
            let (fields, place) = Self.random(&rng, seq: UInt64(10 + i), time: time, cells: Self.cells, actors: Self.actors, generation: generation)
            let lsn = UInt64(1 + i)
            var staged: [UInt8] = []
            Self.stage(fields, seq: fields.seq, lsn: lsn, place: place, into: &staged)
            #expect(staged.count % 8 == 0, "seed \(seed)")
            staged.withUnsafeBytes { StagedReservation.frame($0.baseAddress!, salt: TestSegments.salt, names: &stagedNames, into: &framed) }
            RecordCodec.appendReservation(fields, lsn: lsn, salt: TestSegments.salt, names: &encodedNames, place: place, into: &encoded)
            if framed.bytes != encoded.bytes {
                Issue.record("seed \(seed): record \(lsn) framed from staged bytes differs from its encoding")
                return
            }
        }
        #expect(stagedNames == encodedNames, "seed \(seed)")
        #expect(stagedNames.cellCount == Self.cells.count, "seed \(seed)")
    }

    @Test("staged reservations and other records, handed over in lanes out of LSN order, recover in LSN order as the commits they stand for")
    func lanesOfStagedAndBodies() async throws {
        let seed = ReservationRecordTests.seed(5005)
        var rng = SplitMix64(seed: seed)
        let (fs, dir, committer) = try GroupCommitterTests.simulatedCommitter(policy: .always, laneCount: 3)
        let bodies = LogTestSupport.bodies(count: 200, seed: seed)
        // Every record's LSN, what it stands for and its lane; each lane hands its records over in LSN
        // order. In rounds of 150 records, each acknowledged before the next: a write is at most a
        // fresh segment (64 KiB here), and the log rotates between rounds.
        enum Item { case staged(CompactReservation, CellPlace?), body(WALRecord.Body) }
        var expected: [WALRecord.Body] = []
        var isStaged: [Bool] = []
        var time = TestSegments.createdAt.milliseconds
        var nextBody = 0
        for round in 0..<10 {
            var queues: [[(lsn: UInt64, item: Item)]] = [[], [], []]
            for i in (150 * round)..<(150 * round + 150) {
                let lsn = UInt64(1 + i)
                time += Int64(rng.next() % 50)
                let item: Item
                if rng.next() % 4 == 0 && nextBody < bodies.count {
                    item = .body(bodies[nextBody])
                    expected.append(bodies[nextBody])
                    isStaged.append(false)
                    nextBody += 1
                } else {
                    var (fields, place) = Self.random(&rng, seq: UInt64(100 + i), time: time, cells: Self.cells, actors: Self.actors, generation: 1)
                    fields.seq = 0  // numbered when handed over
                    item = .staged(fields, place)
                    var numbered = fields
                    numbered.seq = UInt64(100 + i)
                    expected.append(.commit(numbered.commit))
                    isStaged.append(true)
                }
                queues[Int(rng.next() % 3)].append((lsn, item))
            }
            var heads = [0, 0, 0]
            while heads.indices.contains(where: { heads[$0] < queues[$0].count }) {
                let lane = Int(rng.next() % 3)
                for _ in 0..<Int(1 + rng.next() % 8) where heads[lane] < queues[lane].count {
                    let (lsn, item) = queues[lane][heads[lane]]
                    heads[lane] += 1
                    switch item {
                    case .staged(let f, let place):
                        committer.submit(
                            reservation: f.id, time: f.time, seq: 100 + lsn - 1, cell: f.cell, actor: f.actor, hold: f.hold, onHandAfter: f.onHandAfter,
                            reservedAfter: f.reservedAfter, customer: f.customer, place: place, lsn: lsn, lane: lane)
                    case .body(let body): committer.submit(body, lsn: lsn, lane: lane)
                    }
                }
                if rng.next() % 16 == 0 { await Task.yield() }
            }
            try await committer.waitUntilAcknowledged(UInt64(expected.count))
        }
        let recovered = try LogTestSupport.recoveredAfterCrash(fs, dir)
        #expect(recovered.records.map(\.lsn) == Array(1...UInt64(expected.count)), "seed \(seed)")
        #expect(fs.creationCount(ofPathsContaining: ".log") > 1, "seed \(seed): the log rotated")
        // The first record that differs, if one does.
        if let i = recovered.records.indices.first(where: { i in
            i >= expected.count || recovered.records[i].body != expected[i] || (isStaged[i] && recovered.records[i].type != .reservation)
        }) {
            Issue.record("seed \(seed): record \(recovered.records[i].lsn) is not the one handed over, or not a reservation record")
        }
    }
}
