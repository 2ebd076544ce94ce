// ReplyWriter against the frame path it replaces on the hot commands: for every shape of reservation
// record, cell receipt, transfer, cell, variant stock and refusal, in RESP2 and RESP3, the bytes it
// appends are exactly the bytes `ReplyEncoder.encode(ReplyFrame(value), …)` writes. The samples vary
// what changes a record's shape (optional fields, replay marking, status, line count) and what
// changes the width of its framing (digit counts, string lengths, signs, extreme integers).

import StockpileCore
import StockpileProtocol
import Testing

private let versions: [RESPVersion] = [.resp2, .resp3]

/// Integers of every digit count and both signs, and the extremes: the writer formats numbers by
/// itself, so each width must be seen.
private let integers: [Int64] = {
    var values: [Int64] = [0, 1, 9, 10, 99, 100, -1, -9, -10, Int64.max, Int64.min, Int64.min + 1]
    var power: Int64 = 1
    for _ in 0..<18 {
        power *= 10
        values += [power, power - 1, -power, -(power - 1)]
    }
    return values
}()

private func fingerprint(_ id: String) -> ReserveFingerprint {
    ReserveFingerprint(ReserveRequest(id: id, lines: [ReserveLine(variant: "SKU", warehouse: "MAIN", quantity: 1)]), strategy: .priority)
}

private func line(_ variant: String, _ warehouse: String, quantity: Int64, fulfilled: Int64 = 0, released: Int64 = 0, backordered: Int64 = 0) -> ReservationLine {
    ReservationLine(
        variant: variant, warehouse: warehouse, quantity: Quantity(quantity), fulfilled: Quantity(fulfilled),
        released: Quantity(released), backordered: Quantity(backordered))
}

/// The line sets a reservation may have: none (not made by the engine, but the writer must not
/// care), one, several with every figure non-zero, long codes, and the most lines allowed.
private let lineSets: [[ReservationLine]] = {
    var sets: [[ReservationLine]] = [[], [line("SKU", "MAIN", quantity: 1)]]
    sets.append([
        line("SKU", "MAIN", quantity: 5, fulfilled: 2, released: 1),
        line("PEN", "EAST", quantity: 4, backordered: 3),
        line("MUG-BLUE-XL", "WEST-2", quantity: 1_000_000_000_000, fulfilled: 999_999_999_999, released: 1, backordered: 1_000_000_000_000),
    ])
    sets.append([line(String(repeating: "V", count: 120), String(repeating: "W", count: 64), quantity: 12, fulfilled: 12)])
    var most: [ReservationLine] = []
    for i in 0..<256 {
        let n = Int64(i)
        most.append(line("SKU-\(i)", i % 2 == 0 ? "MAIN" : "EAST", quantity: n + 1, fulfilled: n / 2, released: i % 3 == 0 ? 1 : 0))
    }
    sets.append(most)
    return sets
}()

private let reservations: [ReservationRecord] = {
    var records: [ReservationRecord] = []
    let ids = ["o", "order-1", String(repeating: "x", count: 10), String(repeating: "id-", count: 40)]
    let customers: [String?] = [nil, "", "c-9", "Zoë Ørsted 🚀", String(repeating: "c", count: 200)]
    let expiries: [Timestamp?] = [nil, Timestamp(milliseconds: 0), Timestamp(milliseconds: 1_700_000_900_000), Timestamp(milliseconds: Int64.max)]
    let created: [Timestamp] = [Timestamp(milliseconds: 0), Timestamp(milliseconds: 1_700_000_000_000), Timestamp(milliseconds: -1)]
    var n = 0
    for status in ReservationStatus.allCases {
        for lines in lineSets {
            for replayed in [false, true] {
                // Every combination of status, lines and replay; the rest rotate through their values.
                let id = ids[n % ids.count]
                let reservation = Reservation(
                    id: id, lines: lines, status: status, expiresAt: expiries[n % expiries.count],
                    customer: customers[n % customers.count], createdAt: created[n % created.count], fingerprint: fingerprint(id))
                records.append(ReservationRecord(reservation, replayed: replayed))
                n += 1
            }
        }
    }
    for customer in customers {
        for expiresAt in expiries {
            let reservation = Reservation(
                id: "order-2", lines: lineSets[2], status: .active, expiresAt: expiresAt, customer: customer,
                createdAt: Timestamp(milliseconds: 1_700_000_000_000), fingerprint: fingerprint("order-2"))
            records.append(ReservationRecord(reservation))
        }
    }
    return records
}()

private let cells: [CellRecord] = {
    var cells = [
        CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 10, reserved: 4),
        CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 0, reserved: 0),
        CellRecord(variant: "SKU", warehouse: "*", onHand: 3, reserved: 5),
        CellRecord(variant: "HOT", warehouse: "MAIN", onHand: 1_000_000_000_000, reserved: 399_911),
        CellRecord(variant: String(repeating: "v", count: 99), warehouse: String(repeating: "w", count: 100), onHand: 7, reserved: 7),
        CellRecord(variant: "ÉTÉ-☀️", warehouse: "MAIN", onHand: 2, reserved: 1),
    ]
    // Every integer width in on_hand, reserved and available (reserved 0 keeps available = on_hand).
    for value in integers { cells.append(CellRecord(variant: "N", warehouse: "MAIN", onHand: Quantity(value), reserved: .zero)) }
    for value in integers where value >= 0 {
        cells.append(CellRecord(variant: "N", warehouse: "MAIN", onHand: .zero, reserved: Quantity(value)))
    }
    return cells
}()

private let receipts: [CellReceipt] = {
    var receipts: [CellReceipt] = []
    let seqs: [UInt64] = [0, 1, 41, 1_000_000, UInt64(Int64.max), UInt64.max]
    let variances: [Quantity?] = [nil, .zero, 4, -4, 1_000_000_000_000, -1_000_000_000_000]
    var n = 0
    for cell in cells {
        for replayed in [false, true] {
            // The extreme on_hand figures are there for their digits; a shortfall is worked out only
            // where reserved − on_hand fits in 64 bits.
            let shortfall = cell.onHand.units < 0 ? Quantity(1) : (cell.reserved - cell.onHand).clampedAtZero
            receipts.append(CellReceipt(cell: cell, seq: seqs[n % seqs.count], shortfall: shortfall, variance: variances[n % variances.count], replayed: replayed))
            n += 1
        }
    }
    for variance in variances {
        for replayed in [false, true] {
            receipts.append(CellReceipt(cell: cells[2], seq: 42, shortfall: 2, variance: variance, replayed: replayed))
        }
    }
    return receipts
}()

private let transfers: [TransferReceipt] = [
    TransferReceipt(from: cells[0], to: cells[1], seq: 7),
    TransferReceipt(from: cells[2], to: cells[3], seq: 9, replayed: true),
    TransferReceipt(from: cells[4], to: cells[5], seq: UInt64(Int64.max) - 1),
    TransferReceipt(from: cells[5], to: cells[2], seq: UInt64.max - 1, replayed: true),
]

private let refusals: [Refusal] = [
    Refusal.insufficient(variant: "SKU", warehouse: "*", available: 2, requested: 5),
    Refusal.insufficient(variant: "SKU", warehouse: "MAIN", available: -3, requested: 1_000_000_000_000),
    Refusal.reservationNotFound("o-1"),
    Refusal(.readOnly, "writes are stopped"),
    Refusal.invalid("bad\r\nthing"),
    Refusal.invalid("\n"),
    Refusal.limit(""),
    Refusal(.conflict, "KEY k was used for another request: naïve ✓"),
]

/// Appends with `write` after a few bytes already in the buffer, and checks that it appended
/// `expected` and left what was there alone.
private func expectAppends(_ expected: [UInt8], _ description: @autoclosure () -> String, _ write: (inout [UInt8]) -> Void) {
    let prefix: [UInt8] = Array("+PONG\r\n".utf8)
    var out = prefix
    write(&out)
    #expect(out == prefix + expected, "\(description())\nwriter: \(String(decoding: out.dropFirst(prefix.count), as: UTF8.self).debugDescription)\nframes: \(String(decoding: expected, as: UTF8.self).debugDescription)")
}

@Suite("Reply writer")
struct ReplyWriterTests {
    @Test("reservation records are written as the frame path writes them", arguments: versions)
    func reservationRecords(_ version: RESPVersion) {
        #expect(Set(reservations.map(\.reservation.status)) == Set(ReservationStatus.allCases))
        for record in reservations {
            let expected = ReplyEncoder.encoded(ReplyFrame(reservation: record), version: version)
            expectAppends(expected, "\(record)") { ReplyWriter.append(reservation: record, version: version, into: &$0) }
            expectAppends(expected, "\(record)") { ReplyWriter.append(Reply.reservation(record), version: version, into: &$0) }
            expectAppends(expected, "\(record)") { ReplyWriter.append(Outcome<Reply>.ok(.reservation(record)), version: version, into: &$0) }
        }
    }

    @Test("cell receipts, with and without shortfall, variance and replay, are written as the frame path writes them", arguments: versions)
    func cellReceipts(_ version: RESPVersion) {
        for receipt in receipts {
            let expected = ReplyEncoder.encoded(ReplyFrame(Reply.cell(receipt)), version: version)
            expectAppends(expected, "\(receipt)") { ReplyWriter.append(Reply.cell(receipt), version: version, into: &$0) }
        }
    }

    @Test("both sides of a transfer are written as the frame path writes them", arguments: versions)
    func transferReceipts(_ version: RESPVersion) {
        for receipt in transfers {
            let expected = ReplyEncoder.encoded(ReplyFrame(Reply.transfer(receipt)), version: version)
            expectAppends(expected, "\(receipt)") { ReplyWriter.append(Reply.transfer(receipt), version: version, into: &$0) }
        }
    }

    @Test("cell records and a variant's stock are written as the frame path writes them", arguments: versions)
    func cellRecords(_ version: RESPVersion) {
        for cell in cells {
            let expected = ReplyEncoder.encoded(ReplyFrame(cell: cell), version: version)
            expectAppends(expected, "\(cell)") { ReplyWriter.append(cell: cell, version: version, into: &$0) }
        }
        for count in [0, 1, 3, cells.count] {
            let stock = VariantStock(cells: Array(cells.prefix(count)), totals: cells[3])
            let expected = ReplyEncoder.encoded(ReplyFrame(stock), version: version)
            expectAppends(expected, "\(stock)") { ReplyWriter.append(stock, version: version, into: &$0) }
        }
    }

    @Test("refusals are written as the frame path writes them, on one line", arguments: versions)
    func refusalLines(_ version: RESPVersion) {
        for refusal in refusals {
            let expected = ReplyEncoder.encoded(ReplyFrame(refusal), version: version)
            #expect(expected.filter { $0 == UInt8(ascii: "\n") }.count == 1, "\(refusal)")
            expectAppends(expected, "\(refusal)") { ReplyWriter.append(refusal, into: &$0) }
            expectAppends(expected, "\(refusal)") { ReplyWriter.append(Outcome<Reply>.refused(refusal), version: version, into: &$0) }
        }
    }

    @Test("warehouse and policy replies, left to frames, come out the same through the writer", arguments: versions)
    func rareReplies(_ version: RESPVersion) {
        let replies: [Reply] = [
            .warehouse(Warehouse(code: "EAST", name: "East DC", address: "1 Dock Rd", priority: 5, active: false)),
            .policy(VariantPolicy(variant: "SKU", backorder: true, unlimited: false, lowStock: 3)),
        ]
        for reply in replies {
            let expected = ReplyEncoder.encoded(ReplyFrame(reply), version: version)
            expectAppends(expected, "\(reply)") { ReplyWriter.append(reply, version: version, into: &$0) }
        }
    }

    @Test("seeded random records: the writer and the frame path agree, replies appended one after another")
    func randomRecords() {
        let seed = seed(fallback: 4_242)
        print("ReplyWriterTests.randomRecords seed \(seed) (set STOCKPILE_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        func text() -> String { String(decoding: (0..<random.int(0...40)).map { _ in UInt8(random.int(0x21...0x7E)) }, as: UTF8.self) }
        func integer() -> Int64 { random.chance(0.2) ? integers[random.int(0...(integers.count - 1))] : Int64(random.int(-1_000...1_000_000)) }
        func quantity() -> Int64 { Int64(random.int(0...1_000_000_000)) }
        for version in versions {
            var written: [UInt8] = []
            var encoded: [UInt8] = []
            for _ in 0..<2_000 {
                let reply: Reply
                switch random.int(0...2) {
                case 0:
                    let lines = (0..<random.int(0...6)).map { _ in
                        let q = quantity()
                        let f = Int64(random.int(0...Int(q)))
                        let r = Int64(random.int(0...Int(q - f)))
                        return line(text(), text(), quantity: q, fulfilled: f, released: r, backordered: Int64(random.int(0...Int(q))))
                    }
                    let id = text()
                    let reservation = Reservation(
                        id: id, lines: lines, status: ReservationStatus.allCases[random.int(0...4)],
                        expiresAt: random.chance(0.5) ? nil : Timestamp(milliseconds: integer()),
                        customer: random.chance(0.5) ? nil : text(), createdAt: Timestamp(milliseconds: integer()), fingerprint: fingerprint(id))
                    reply = .reservation(ReservationRecord(reservation, replayed: random.chance(0.3)))
                case 1:
                    let cell = CellRecord(variant: text(), warehouse: text(), onHand: Quantity(quantity()), reserved: Quantity(quantity()))
                    reply = .cell(
                        CellReceipt(
                            cell: cell, seq: random.next(), shortfall: (cell.reserved - cell.onHand).clampedAtZero,
                            variance: random.chance(0.5) ? nil : Quantity(integer() / 2), replayed: random.chance(0.3)))
                default:
                    let from = CellRecord(variant: text(), warehouse: text(), onHand: Quantity(quantity()), reserved: Quantity(quantity()))
                    let to = CellRecord(variant: from.variant, warehouse: text(), onHand: Quantity(quantity()), reserved: Quantity(quantity()))
                    reply = .transfer(TransferReceipt(from: from, to: to, seq: random.next() >> 1, replayed: random.chance(0.3)))
                }
                ReplyWriter.append(reply, version: version, into: &written)
                ReplyEncoder.encode(ReplyFrame(reply), version: version, into: &encoded)
            }
            #expect(written == encoded, "seed \(seed), \(version)")
        }
    }
}
