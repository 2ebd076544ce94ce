// The records of SPEC §5, §7.1, §7.9 and §7.12: field names in order, values, replay marking, the two
// sequence numbers of a transfer, and the complete list of STATS fields.

import StockpileCore
import StockpileProtocol
import Testing

/// The fields of a record frame, or none when the frame is not a record.
private func fields(_ frame: ReplyFrame) -> [RecordField] {
    guard case .record(let fields) = frame else { return [] }
    return fields
}

private func names(_ frame: ReplyFrame) -> [String] { fields(frame).map(\.name) }

private func value(_ frame: ReplyFrame, _ name: String) -> ReplyFrame? {
    fields(frame).first { $0.name == name }?.value
}

private func elements(_ frame: ReplyFrame) -> [ReplyFrame] {
    guard case .array(let elements) = frame else { return [] }
    return elements
}

private let cellNames = ["variant", "warehouse", "on_hand", "reserved", "available"]

private func reservation(status: ReservationStatus = .active, expiresAt: Timestamp? = Timestamp(milliseconds: 1_700_000_900_000), customer: String? = "c-9") -> Reservation {
    let request = ReserveRequest(id: "order-1", lines: [ReserveLine(variant: "SKU", warehouse: "MAIN", quantity: 5)])
    return Reservation(
        id: "order-1",
        lines: [
            ReservationLine(variant: "SKU", warehouse: "MAIN", quantity: 5, fulfilled: 2, released: 1, backordered: 0),
            ReservationLine(variant: "PEN", warehouse: "EAST", quantity: 4, backordered: 3),
        ],
        status: status, expiresAt: expiresAt, customer: customer, createdAt: Timestamp(milliseconds: 1_700_000_000_000),
        fingerprint: ReserveFingerprint(request, strategy: .priority))
}

@Suite("Record frames")
struct RecordFramesTests {
    @Test("a cell record has the five fields of SPEC §5, available computed")
    func cellRecord() {
        let frame = ReplyFrame(cell: CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 10, reserved: 4))
        #expect(
            frame
                == .record([
                    RecordField("variant", .text("SKU")), RecordField("warehouse", .text("MAIN")),
                    RecordField("on_hand", .integer(10)), RecordField("reserved", .integer(4)),
                    RecordField("available", .integer(6)),
                ]))
    }

    @Test("a refusal is CODE and message, INSUFFICIENT worded as SPEC §7.8")
    func refusalFrames() {
        #expect(
            ReplyFrame(Refusal.insufficient(variant: "SKU", warehouse: "*", available: 2, requested: 5))
                == .error("INSUFFICIENT SKU * available 2 requested 5"))
        #expect(ReplyFrame(Refusal.reservationNotFound("o-1")) == .error("NOTFOUND reservation o-1 does not exist"))
        #expect(ReplyFrame(Refusal(.readOnly, "writes are stopped")) == .error("READONLY writes are stopped"))
    }

    @Test("a line break in a refusal's message cannot split the error line")
    func refusalOnOneLine() {
        #expect(ReplyFrame(Refusal.invalid("bad\r\nthing")) == .error("INVALID bad  thing"))
    }

    @Test("a cell receipt carries seq and shortfall always, variance for COUNT, replayed only on a replay")
    func cellReceipt() {
        let cell = CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 3, reserved: 5)
        let plain = ReplyFrame(Reply.cell(CellReceipt(cell: cell, seq: 41, shortfall: 2)))
        #expect(names(plain) == cellNames + ["seq", "shortfall"])
        #expect(value(plain, "seq") == .integer(41))
        #expect(value(plain, "shortfall") == .integer(2))
        #expect(value(plain, "available") == .integer(-2))

        let none = ReplyFrame(Reply.cell(CellReceipt(cell: CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 5, reserved: 0), seq: 1, shortfall: .zero)))
        #expect(value(none, "shortfall") == .integer(0))

        let counted = ReplyFrame(Reply.cell(CellReceipt(cell: cell, seq: 42, shortfall: 2, variance: -4, replayed: true)))
        #expect(names(counted) == cellNames + ["seq", "shortfall", "variance", "replayed"])
        #expect(value(counted, "variance") == .integer(-4))
        #expect(value(counted, "replayed") == .integer(1))
    }

    @Test("a transfer is two cell records, source first, with consecutive seqs and replay marks on both")
    func transfer() {
        let from = CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 7, reserved: 2)
        let to = CellRecord(variant: "SKU", warehouse: "EAST", onHand: 3, reserved: 0)
        let fresh = elements(ReplyFrame(Reply.transfer(TransferReceipt(from: from, to: to, seq: 100))))
        #expect(fresh.count == 2)
        #expect(fresh.map(names) == [cellNames + ["seq", "shortfall"], cellNames + ["seq", "shortfall"]])
        #expect(fresh.map { value($0, "warehouse") } == [.text("MAIN"), .text("EAST")])
        #expect(fresh.map { value($0, "seq") } == [.integer(100), .integer(101)])
        #expect(fresh.map { value($0, "shortfall") } == [.integer(0), .integer(0)])

        let replay = elements(ReplyFrame(Reply.transfer(TransferReceipt(from: from, to: to, seq: 100, replayed: true))))
        #expect(replay.map { value($0, "replayed") } == [.integer(1), .integer(1)])
        #expect(replay.map { value($0, "seq") } == [.integer(100), .integer(101)])
    }

    @Test("a reservation record has its fields in order, each line with remaining, and no replay mark")
    func reservationRecord() {
        let frame = ReplyFrame(reservation: ReservationRecord(reservation(status: .partiallyFulfilled)))
        #expect(names(frame) == ["id", "status", "expires_at_ms", "customer", "created_at_ms", "fully_shipped", "lines"])
        #expect(value(frame, "id") == .text("order-1"))
        #expect(value(frame, "status") == .text("partially_fulfilled"))
        #expect(value(frame, "expires_at_ms") == .integer(1_700_000_900_000))
        #expect(value(frame, "customer") == .text("c-9"))
        #expect(value(frame, "created_at_ms") == .integer(1_700_000_000_000))
        #expect(value(frame, "fully_shipped") == .integer(0))
        let lines = elements(value(frame, "lines") ?? .null)
        #expect(lines.count == 2)
        #expect(
            lines.first
                == .record([
                    RecordField("variant", .text("SKU")), RecordField("warehouse", .text("MAIN")),
                    RecordField("quantity", .integer(5)), RecordField("fulfilled", .integer(2)),
                    RecordField("released", .integer(1)), RecordField("backordered", .integer(0)),
                    RecordField("remaining", .integer(2)),
                ]))
        #expect(value(lines[1], "backordered") == .integer(3))
        #expect(value(lines[1], "remaining") == .integer(4))
    }

    @Test("a reservation without expiry or customer reads 0 and empty text, and a replay says so")
    func reservationDefaultsAndReplay() {
        let frame = ReplyFrame(Reply.reservation(ReservationRecord(reservation(status: .fulfilled, expiresAt: nil, customer: nil), replayed: true)))
        #expect(value(frame, "expires_at_ms") == .integer(0))
        #expect(value(frame, "customer") == .text(""))
        #expect(value(frame, "fully_shipped") == .integer(1))
        #expect(names(frame).last == "replayed")
        #expect(value(frame, "replayed") == .integer(1))
    }

    @Test("statuses are spelled as SPEC §1", arguments: [
        (ReservationStatus.active, "active"), (.partiallyFulfilled, "partially_fulfilled"), (.fulfilled, "fulfilled"),
        (.released, "released"), (.expired, "expired"),
    ])
    func statusSpelling(_ status: ReservationStatus, _ spelled: String) {
        #expect(value(ReplyFrame(reservation: ReservationRecord(reservation(status: status))), "status") == .text(spelled))
    }

    @Test("STOCK of a variant lists its cells, then the totals under warehouse *")
    func variantStock() {
        let stock = VariantStock(
            cells: [
                CellRecord(variant: "SKU", warehouse: "EAST", onHand: 2, reserved: 1),
                CellRecord(variant: "SKU", warehouse: "MAIN", onHand: 8, reserved: 3),
            ],
            totals: CellRecord(variant: "SKU", warehouse: "*", onHand: 10, reserved: 4))
        let list = elements(ReplyFrame(stock))
        #expect(list.map { value($0, "warehouse") } == [.text("EAST"), .text("MAIN"), .text("*")])
        #expect(list.allSatisfy { names($0) == cellNames })
        #expect(value(list[2], "available") == .integer(6))
    }

    @Test("LOWSTOCK is a list of cell records and BACKORDERS a list of backorder records")
    func lists() {
        let low = elements(ReplyFrame(lowStock: [CellRecord(variant: "A", warehouse: "MAIN", onHand: 1, reserved: 0)]))
        #expect(low.map(names) == [cellNames])
        let back = elements(
            ReplyFrame([BackorderLine(reservation: "o-1", variant: "A", warehouse: "MAIN", quantity: 9, remaining: 7, backordered: 4)]))
        #expect(
            back == [
                .record([
                    RecordField("reservation", .text("o-1")), RecordField("variant", .text("A")),
                    RecordField("warehouse", .text("MAIN")), RecordField("quantity", .integer(9)),
                    RecordField("remaining", .integer(7)), RecordField("backordered", .integer(4)),
                ])
            ])
        #expect(ReplyFrame(lowStock: []) == .array([]))
    }

    @Test("ledger entries use the event field names, reason empty when none, shortfall only below reserved")
    func entries() {
        let adjust = LedgerEntry(
            seq: 7, time: Timestamp(milliseconds: 1_700_000_000_123), type: .adjust, variant: "SKU", warehouse: "MAIN",
            deltaOnHand: -3, onHand: 2, reserved: 4, reason: .damaged, note: "forklift", reference: "r-1", actor: "ops")
        let confirm = LedgerEntry(seq: 8, time: Timestamp(milliseconds: 5), type: .confirm, reservation: "o-1", actor: "checkout")
        let list = elements(ReplyFrame(entries: [adjust, confirm]))
        let eventNames = [
            "seq", "time_ms", "type", "variant", "warehouse", "delta_on_hand", "delta_reserved", "on_hand", "reserved",
            "available", "reason", "note", "ref", "reservation", "actor",
        ]
        #expect(names(list[0]) == eventNames + ["shortfall"])
        #expect(names(list[1]) == eventNames)
        #expect(
            fields(list[0]).map(\.value) == [
                .integer(7), .integer(1_700_000_000_123), .text("adjust"), .text("SKU"), .text("MAIN"), .integer(-3), .integer(0),
                .integer(2), .integer(4), .integer(-2), .text("damaged"), .text("forklift"), .text("r-1"), .text(""),
                .text("ops"), .integer(2),
            ])
        #expect(value(list[1], "reason") == .text(""))
        #expect(value(list[1], "variant") == .text(""))
        #expect(value(list[1], "reservation") == .text("o-1"))
    }

    @Test("warehouse and policy records have the fields of SPEC §7.12, booleans as 1/0")
    func catalogRecords() {
        let east = Warehouse(code: "EAST", name: "East", address: "Dock 4", priority: 5, active: false)
        #expect(
            ReplyFrame(Reply.warehouse(east))
                == .record([
                    RecordField("code", .text("EAST")), RecordField("name", .text("East")),
                    RecordField("address", .text("Dock 4")), RecordField("priority", .integer(5)),
                    RecordField("active", .integer(0)),
                ]))
        #expect(ReplyFrame(warehouses: [.main, east]) == .array([ReplyFrame(Warehouse.main), ReplyFrame(east)]))
        #expect(value(ReplyFrame(Warehouse.main), "active") == .integer(1))
        #expect(
            ReplyFrame(Reply.policy(VariantPolicy(variant: "PEN", backorder: true, unlimited: false, lowStock: 3)))
                == .record([
                    RecordField("variant", .text("PEN")), RecordField("backorder", .integer(1)),
                    RecordField("unlimited", .integer(0)), RecordField("low_stock", .integer(3)),
                ]))
    }

    @Test("STATS lists every figure, the trend of every reason and the refusals of every code")
    func stats() {
        var stats = Stats()
        stats.cells = 3
        stats.warehouses = 2
        stats.variants = 2
        stats.onHand = 50
        stats.reserved = 20
        stats.lowStock = 1
        stats.activeReservations = 4
        stats.counters.unitsReserved = 30
        stats.counters.unitsFulfilled = 6
        stats.counters.unitsReleased = 3
        stats.counters.unitsExpired = 1
        stats.counters.stockouts = 2
        stats.counters.shrinkage = 5
        stats.counters.cycleCounts = 4
        stats.counters.cycleCountsWithoutVariance = 3
        stats.counters.adjustedByReason = [.received: 40, .damaged: -5]
        stats.refused = [.insufficient: 9, .readOnly: 1]
        let frame = ReplyFrame(stats)

        let figures = [
            "cells", "warehouses", "variants", "on_hand", "reserved", "available", "low_stock", "active_reservations",
            "units_reserved", "units_fulfilled", "units_released", "units_expired", "stockouts", "accuracy", "shrinkage",
        ]
        let adjusted = [
            "received", "returned", "damaged", "lost", "found", "correction", "count", "transfer", "import", "expired",
            "cancelled", "other",
        ].map { "adjusted_\($0)" }
        let refused = [
            "invalid", "limit", "conflict", "notfound", "inactive", "closed", "expired", "negative", "insufficient", "readonly",
        ].map { "refused_\($0)" }
        #expect(names(frame) == figures + adjusted + refused)
        #expect(
            fields(frame).prefix(figures.count).map(\.value)
                == [3 as Int64, 2, 2, 50, 20, 30, 1, 4, 30, 6, 3, 1, 2, 7500, 5].map { .integer($0) })
        #expect(value(frame, "adjusted_received") == .integer(40))
        #expect(value(frame, "adjusted_damaged") == .integer(-5))
        #expect(value(frame, "adjusted_lost") == .integer(0))
        #expect(value(frame, "refused_insufficient") == .integer(9))
        #expect(value(frame, "refused_readonly") == .integer(1))
        #expect(value(frame, "refused_invalid") == .integer(0))
    }

    @Test("accuracy is 10000 basis points before any cycle count")
    func accuracyWithoutCounts() {
        #expect(value(ReplyFrame(Stats()), "accuracy") == .integer(10_000))
    }
}
