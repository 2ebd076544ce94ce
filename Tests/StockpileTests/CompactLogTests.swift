// The log's compact reservation records across restarts: a segment names a cell or an actor once
// (wal/FORMAT.md §3.8), and a writer that goes on in the same segment after a restart must go on
// numbering from the names recovery read there, not from zero, or later records would name the
// wrong cells.

import Foundation
import Glibc
import Stockpile
import StockpileWAL
import Testing

@Suite struct CompactLogTests {
    @Test("reservations logged before and after restarts in one segment come back on their own cells")
    func namesSurviveRestarts() async throws {
        var template = Array("/tmp/stockpile-compact-test-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cells = ["A", "B", "C", "D"]
        var made: [(id: String, variant: String)] = []
        for round in 0..<3 {
            let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: ManualClock())
            if round == 0 {
                for v in cells { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 100, reason: .received) }
            }
            // Each round names some cells the segment named before and, in the first rounds, new ones.
            for (i, v) in cells.dropFirst(round).enumerated() {
                let id = "r\(round)-\(i)"
                let reply = await engine.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: "MAIN", quantity: 1)]), actor: "round-\(round % 2)")
                #expect(reply.value != nil, "\(id): \(reply)")
                made.append((id, v))
            }
            try engine.close()
        }
        let engine = try Engine.open(dataDirectory: dir, durability: .always, clock: ManualClock())
        defer { try? engine.close() }
        for (id, variant) in made {
            let r = await engine.reservation(id).value?.reservation
            #expect(r?.lines.map(\.variant) == [variant], "\(id)")
        }
        for v in cells {
            let expected = made.filter { $0.variant == v }.count
            #expect(await engine.cell(variant: v, warehouse: "MAIN").value?.reserved.units == Int64(expected), "\(v)")
        }
        #expect(await engine.verify().isEmpty)
        // One segment throughout: the restarts went on in it, with its names.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("wal-") }
        #expect(segments.count == 1, "\(segments)")
        // Every reservation went to the log as a reservation record, every adjustment as a commit.
        let records = try LogRecovery.recover(directory: dir).records
        #expect(records.filter { $0.type == .reservation }.count == made.count)
        #expect(records.filter { $0.type == .commit }.count == cells.count)
    }
}
