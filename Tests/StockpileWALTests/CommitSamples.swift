// Hand-built commits, key uses and commands that together use every case of every enum the log encodes,
// shaped like what the engine writes (figures after each change, reservations as they are afterwards).
// The codec tests round-trip them and the golden files are made of them, so changing one changes the
// golden bytes: regenerate those on purpose (wal/FORMAT.md §6), never to make a test pass.

import StockpileCore
@testable import StockpileWAL

enum CommitSamples {
    static let t0 = Timestamp(milliseconds: 1_700_000_000_000)
    static func at(_ seconds: Int64) -> Timestamp { Timestamp(milliseconds: t0.milliseconds + seconds * 1000) }

    static let holdRequest = ReserveRequest(
        id: "order-1001",
        lines: [
            ReserveLine(variant: "SKU-1", warehouse: "main", quantity: 2),
            ReserveLine(variant: "EBOOK-9", warehouse: "*", quantity: 1),
            ReserveLine(variant: "PRE-ORDER", warehouse: "*", quantity: 5),
        ],
        ttl: .seconds(600), customer: "Zoë Müller – 東京 🚚", strategy: .priority)

    /// The hold as reserved: a tracked line, an unlimited variant's untracked line, a backordered line.
    static let hold = Reservation(
        id: "order-1001",
        lines: [
            ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 2),
            ReservationLine(variant: "EBOOK-9", warehouse: "MAIN", quantity: 1, tracked: false),
            ReservationLine(variant: "PRE-ORDER", warehouse: "MAIN", quantity: 5, backordered: 3),
        ],
        expiresAt: at(600), customer: "Zoë Müller – 東京 🚚", createdAt: at(0),
        fingerprint: ReserveFingerprint(holdRequest, strategy: .priority))

    static let splitRequest = ReserveRequest(
        id: "cart-77", lines: [ReserveLine(variant: "SKU-1", warehouse: "*", quantity: 7)], ttl: .milliseconds(1500),
        strategy: .split)

    static let splitHold = Reservation(
        id: "cart-77",
        lines: [
            ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 3),
            ReservationLine(variant: "SKU-1", warehouse: "EAST", quantity: 4),
        ],
        expiresAt: Timestamp(milliseconds: at(10).milliseconds + 1500), customer: nil, createdAt: at(10),
        fingerprint: ReserveFingerprint(splitRequest, strategy: .split))

    /// An order shipped whole: status fulfilled.
    static let shipped = Reservation(
        id: "order-1002", lines: [ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 1, fulfilled: 1)], status: .fulfilled,
        expiresAt: nil, customer: nil, createdAt: at(61), closedAt: at(62),
        fingerprint: ReserveFingerprint(
            ReserveRequest(id: "order-1002", lines: [ReserveLine(variant: "SKU-1", warehouse: "MAIN", quantity: 1)]), strategy: .priority))

    static func entry(
        _ seq: UInt64, _ time: Timestamp, _ type: EntryType, _ variant: String = "", _ warehouse: String = "",
        dOnHand: Quantity = .zero, dReserved: Quantity = .zero, onHand: Quantity = .zero, reserved: Quantity = .zero,
        reason: ReasonCode? = nil, note: String = "", reference: String = "", reservation: String = "", actor: String = "api"
    ) -> LedgerEntry {
        LedgerEntry(
            seq: seq, time: time, type: type, variant: variant, warehouse: warehouse, deltaOnHand: dOnHand,
            deltaReserved: dReserved, onHand: onHand, reserved: reserved, reason: reason, note: note, reference: reference,
            reservation: reservation, actor: actor)
    }

    static var commits: [Commit] {
        var c: [Commit] = []
        // Seed stock at start-up: `import`.
        c.append(Commit(
            time: at(-60), entries: [entry(1, at(-60), .import, "SKU-1", "MAIN", dOnHand: 10, onHand: 10, reason: .import, actor: "seed")],
            replyShape: .cell(variance: nil)))
        // A warehouse and a policy change (these touch no cell).
        let east = Warehouse(code: "EAST", name: "East DC", address: "1 Harbour Rd\tUnit 4", priority: -5, active: false)
        c.append(Commit(time: at(-50), entries: [entry(2, at(-50), .warehouse, "", "EAST")], warehouse: east, replyShape: .warehouse))
        let policy = VariantPolicy(variant: "PRE-ORDER", backorder: true, unlimited: false, lowStock: 4)
        c.append(Commit(time: at(-40), entries: [entry(3, at(-40), .policy, "PRE-ORDER")], policy: policy, replyShape: .policy))
        c.append(Commit(
            time: at(-39), entries: [entry(4, at(-39), .policy, "EBOOK-9")],
            policy: VariantPolicy(variant: "EBOOK-9", unlimited: true), replyShape: .policy))
        // RESERVE (priority), with its three kinds of line.
        c.append(Commit(
            time: at(0),
            entries: [
                entry(5, at(0), .reserve, "SKU-1", "MAIN", dReserved: 2, onHand: 10, reserved: 2, reservation: "order-1001"),
                entry(6, at(0), .reserve, "EBOOK-9", "MAIN", reservation: "order-1001"),
                entry(7, at(0), .reserve, "PRE-ORDER", "MAIN", dReserved: 5, onHand: 2, reserved: 5, reservation: "order-1001"),
            ],
            reservation: hold, replyShape: .reservation))
        // EXTEND and CONFIRM.
        var extended = hold
        extended.expiresAt = at(1200)
        c.append(Commit(time: at(5), entries: [entry(8, at(5), .extend, reservation: "order-1001")], reservation: extended, replyShape: .reservation))
        var confirmed = hold
        confirmed.expiresAt = nil
        c.append(Commit(time: at(6), entries: [entry(9, at(6), .confirm, reservation: "order-1001")], reservation: confirmed, replyShape: .reservation))
        // A split reservation, then a partial FULFILL with a KEY: partially fulfilled.
        c.append(Commit(
            time: at(10),
            entries: [
                entry(10, at(10), .reserve, "SKU-1", "MAIN", dReserved: 3, onHand: 10, reserved: 5, reservation: "cart-77"),
                entry(11, at(10), .reserve, "SKU-1", "EAST", dReserved: 4, onHand: 4, reserved: 4, reservation: "cart-77"),
            ],
            reservation: splitHold, replyShape: .reservation))
        var partly = splitHold
        partly.lines[0].fulfilled = 1
        partly.status = .partiallyFulfilled
        c.append(Commit(
            time: at(11),
            entries: [entry(12, at(11), .fulfill, "SKU-1", "MAIN", dOnHand: -1, dReserved: -1, onHand: 9, reserved: 4, reservation: "cart-77")],
            reservation: partly, replyShape: .reservation,
            keyedCommand: .fulfill(id: "cart-77", line: LineSelector(variant: "SKU-1", warehouse: "MAIN", quantity: 1), key: "ship-1")))
        // A partial RELEASE with a reason and a KEY, then expiry of the rest by the engine.
        var partReleased = partly
        partReleased.lines[1].released = 4
        c.append(Commit(
            time: at(12),
            entries: [entry(13, at(12), .release, "SKU-1", "EAST", dReserved: -4, onHand: 4, reserved: 0, reason: .other, reservation: "cart-77")],
            reservation: partReleased, replyShape: .reservation,
            keyedCommand: .release(
                id: "cart-77", line: LineSelector(variant: "SKU-1", warehouse: "EAST", quantity: 4), reason: .other, key: "rel-1")))
        var expired = partReleased
        expired.lines[0].released = 2
        expired.status = .fulfilled
        expired.closedAt = Timestamp(milliseconds: at(10).milliseconds + 1500)
        expired.expiresAt = nil
        c.append(Commit(
            time: expired.closedAt ?? at(0),
            entries: [entry(14, expired.closedAt ?? at(0), .expire, "SKU-1", "MAIN", dReserved: -2, onHand: 9, reserved: 2, reason: .expired, reservation: "cart-77", actor: "engine")],
            reservation: expired, replyShape: .reservation))
        // A hold that expires whole: status expired.
        var lapsed = Reservation(
            id: "cart-78", lines: [ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 1, released: 1)], status: .expired,
            expiresAt: nil, customer: "", createdAt: at(20), closedAt: at(50),
            fingerprint: ReserveFingerprint(ReserveRequest(id: "cart-78", lines: [ReserveLine(variant: "SKU-1", warehouse: "MAIN", quantity: 1)], ttl: .seconds(30)), strategy: .most))
        lapsed.fingerprint.customer = ""
        c.append(Commit(
            time: at(50), entries: [entry(15, at(50), .expire, "SKU-1", "MAIN", dReserved: -1, onHand: 9, reserved: 2, reason: .expired, reservation: "cart-78", actor: "engine")],
            reservation: lapsed, replyShape: .reservation))
        // RELEASE of the whole hold, unkeyed (reason cancelled): released.
        var released = confirmed
        released.lines[0].released = 2
        released.lines[1].released = 1
        released.lines[2].released = 5
        released.status = .released
        released.closedAt = at(60)
        c.append(Commit(
            time: at(60),
            entries: [
                entry(16, at(60), .release, "SKU-1", "MAIN", dReserved: -2, onHand: 9, reserved: 0, reason: .cancelled, reservation: "order-1001"),
                entry(17, at(60), .release, "EBOOK-9", "MAIN", reason: .cancelled, reservation: "order-1001"),
                entry(18, at(60), .release, "PRE-ORDER", "MAIN", dReserved: -5, onHand: 2, reserved: 0, reason: .cancelled, reservation: "order-1001"),
            ],
            reservation: released, replyShape: .reservation))
        // A FULFILL of everything: fulfilled.
        c.append(Commit(
            time: at(62), entries: [entry(19, at(62), .fulfill, "SKU-1", "MAIN", dOnHand: -1, dReserved: -1, onHand: 8, reserved: 0, reservation: "order-1002")],
            reservation: shipped, replyShape: .reservation, keyedCommand: .fulfill(id: "order-1002", key: "ship-2")))
        // ADJUST with every reason ADJUST accepts, one of them below reserved (a shortfall), with note, ref, key.
        let adjustments: [(ReasonCode, Quantity)] = [(.received, 5), (.returned, 1), (.found, 2), (.damaged, -3), (.lost, -5), (.correction, -1), (.other, 4)]
        var onHand: Quantity = 8
        for (i, (reason, delta)) in adjustments.enumerated() {
            let seq = UInt64(20 + i)
            onHand += delta
            let note = i == 3 ? "dropped by a forklift" : ""
            let reference = i == 0 ? "PO-4411" : ""
            // The `damaged` adjustment takes on_hand below what is reserved: a shortfall.
            let reserved: Quantity = i == 3 ? 15 : .zero
            c.append(Commit(
                time: at(70 + Int64(i)),
                entries: [entry(seq, at(70 + Int64(i)), .adjust, "SKU-1", "MAIN", dOnHand: delta, onHand: onHand, reserved: reserved, reason: reason, note: note, reference: reference)],
                replyShape: .cell(variance: nil),
                keyedCommand: i % 2 == 0
                    ? .adjust(variant: "SKU-1", warehouse: "main", delta: delta, reason: reason, note: note.isEmpty ? nil : note, reference: reference.isEmpty ? nil : reference, key: "adj-\(i)")
                    : nil))
        }
        // SETQTY (compare-and-set, keyed) and COUNT with a variance.
        c.append(Commit(
            time: at(80), entries: [entry(27, at(80), .set, "SKU-1", "EAST", dOnHand: 6, onHand: 10, reserved: 0, reason: .correction)],
            replyShape: .cell(variance: nil),
            keyedCommand: .setQuantity(variant: "SKU-1", warehouse: "EAST", quantity: 10, reason: .correction, ifOnHand: 4, key: "set-1")))
        c.append(Commit(
            time: at(81), entries: [entry(28, at(81), .count, "SKU-1", "EAST", dOnHand: -3, onHand: 7, reserved: 0, reason: .count, note: "aisle 4")],
            replyShape: .cell(variance: -3),
            keyedCommand: .count(variant: "SKU-1", warehouse: "EAST", counted: 7, note: "aisle 4", key: "count-1")))
        c.append(Commit(
            time: at(82), entries: [entry(29, at(82), .count, "SKU-1", "MAIN", onHand: 0, reserved: 0, reason: .count)],
            replyShape: .cell(variance: .zero)))
        // TRANSFER, keyed.
        c.append(Commit(
            time: at(90),
            entries: [
                entry(30, at(90), .transfer, "SKU-1", "EAST", dOnHand: -2, onHand: 5, reserved: 0, reason: .transfer, note: "rebalance"),
                entry(31, at(90), .transfer, "SKU-1", "MAIN", dOnHand: 2, onHand: 2, reserved: 0, reason: .transfer, note: "rebalance"),
            ],
            replyShape: .transfer,
            keyedCommand: .transfer(variant: "SKU-1", from: "EAST", to: "MAIN", quantity: 2, note: "rebalance", key: "xfer-1")))
        // RETURN, restocked (keyed) and damaged (unkeyed).
        c.append(Commit(
            time: at(100), entries: [entry(32, at(100), .return, "SKU-1", "MAIN", dOnHand: 1, onHand: 3, reserved: 0, reason: .returned, reference: "RMA-9")],
            replyShape: .cell(variance: nil),
            keyedCommand: .returnStock(variant: "SKU-1", warehouse: "MAIN", quantity: 1, disposition: .restock, reference: "RMA-9", key: "ret-1")))
        c.append(Commit(
            time: at(101), entries: [entry(33, at(101), .return, "SKU-1", "MAIN", onHand: 3, reserved: 0, reason: .damaged, note: "2 units returned damaged")],
            replyShape: .cell(variance: nil),
            keyedCommand: .returnStock(variant: "SKU-1", warehouse: "MAIN", quantity: 2, disposition: .damaged, key: "ret-2")))
        // Extremes: the largest figures, negative times, empty and long text.
        c.append(Commit(
            time: Timestamp(milliseconds: -1),
            entries: [entry(UInt64.max, Timestamp(milliseconds: .min), .adjust, String(repeating: "V", count: 64), String(repeating: "W", count: 32),
                            dOnHand: Quantity(.min), dReserved: Quantity(.max), onHand: Quantity(.max), reserved: Quantity(.min),
                            reason: .correction, note: String(repeating: "n", count: 1024), reference: "", reservation: "", actor: "")],
            replyShape: .cell(variance: Quantity(.min))))
        // RESET: one entry that touches no cell; the commit names MAIN, the catalog a reset leaves.
        c.append(Commit(time: at(120), entries: [entry(34, at(120), .reset, actor: "harness")], warehouse: .main, replyShape: .warehouse))
        return c + version2Commits + version3Commits
    }

    /// How many of `commits` and `keyUses` version 1 had: wal/golden/v1 holds exactly those.
    static let version1CommitCount = 29
    static let version1KeyUseCount = 7

    /// What version 2 added: keyed EXTEND, WAREHOUSE SET and POLICY SET, and a hold that shipped in part
    /// and then expired (status code 6).
    static var version2Commits: [Commit] {
        var extended = hold
        extended.expiresAt = at(1800)
        let east = Warehouse(code: "EAST", name: "East DC", priority: 4)
        var partShipped = Reservation(
            id: "cart-79",
            lines: [ReservationLine(variant: "SKU-1", warehouse: "MAIN", quantity: 3, fulfilled: 1, released: 2)],
            expiresAt: at(200), customer: nil, createdAt: at(130),
            fingerprint: ReserveFingerprint(
                ReserveRequest(id: "cart-79", lines: [ReserveLine(variant: "SKU-1", warehouse: "MAIN", quantity: 3)], ttl: .seconds(70)),
                strategy: .priority))
        partShipped.settleStatus(at: at(200), byExpiry: true)
        return [
            Commit(
                time: at(130), entries: [entry(35, at(130), .extend, reservation: "order-1001")], reservation: extended, replyShape: .reservation,
                keyedCommand: .extend(id: "order-1001", ttl: .seconds(1800), key: "ext-1")),
            Commit(
                time: at(131), entries: [entry(36, at(131), .warehouse, "", "EAST")], warehouse: east, replyShape: .warehouse,
                keyedCommand: .setWarehouse(WarehouseChange(code: "EAST", name: "East DC", priority: 4), key: "wh-1")),
            Commit(
                time: at(132), entries: [entry(37, at(132), .policy, "SKU-1")], policy: VariantPolicy(variant: "SKU-1", lowStock: 3),
                replyShape: .policy, keyedCommand: .setPolicy(PolicyChange(variant: "SKU-1", lowStock: 3), key: "pol-1")),
            Commit(
                time: at(200),
                entries: [entry(38, at(200), .expire, "SKU-1", "MAIN", dReserved: -2, onHand: 8, reserved: 0, reason: .expired, reservation: "cart-79", actor: "engine")],
                reservation: partShipped, replyShape: .reservation),
        ]
    }

    /// What version 3 writes as `reservation` records (FORMAT.md §3.8): new one-line reservations, the
    /// first naming its cell and actor, the next reusing both by number, then every optional field
    /// (TTL, customer, backordered, an untracked line), every strategy, and a time before the segment
    /// was created (a negative offset).
    static var version3Commits: [Commit] {
        func reservation(
            _ seq: UInt64, _ time: Timestamp, id: String, _ variant: String, _ warehouse: String, quantity: Quantity,
            onHand: Quantity, reserved: Quantity, backordered: Quantity = .zero, tracked: Bool = true, ttl: Duration? = nil,
            customer: String? = nil, strategy: PlacementStrategy = .priority, actor: String
        ) -> Commit {
            let request = ReserveRequest(id: id, lines: [ReserveLine(variant: variant, warehouse: warehouse, quantity: quantity)], ttl: ttl, customer: customer)
            let r = Reservation(
                id: id, lines: [ReservationLine(variant: variant, warehouse: warehouse, quantity: quantity, backordered: backordered, tracked: tracked)],
                expiresAt: ttl.map { time.advanced(by: $0) }, customer: customer, createdAt: time,
                fingerprint: ReserveFingerprint(request, strategy: strategy))
            let e = entry(
                seq, time, .reserve, variant, warehouse, dReserved: tracked ? quantity : .zero, onHand: onHand, reserved: reserved,
                reservation: id, actor: actor)
            return Commit(time: time, entries: [e], reservation: r, replyShape: .reservation)
        }
        return [
            reservation(39, at(300), id: "r-3001", "SKU-1", "MAIN", quantity: 1, onHand: 8, reserved: 1, actor: "client-7"),
            reservation(40, at(301), id: "r-3002", "SKU-1", "MAIN", quantity: 2, onHand: 8, reserved: 3, ttl: .seconds(900), customer: "c-9", strategy: .most, actor: "client-7"),
            reservation(41, at(302), id: "r-3003", "PRE-ORDER", "MAIN", quantity: 4, onHand: 0, reserved: 9, backordered: 4, strategy: .split, actor: "engine"),
            reservation(42, at(303), id: "r-3004", "EBOOK-9", "EAST", quantity: 1, onHand: 0, reserved: 0, tracked: false, ttl: .milliseconds(1500), actor: "client-7"),
            reservation(43, at(-70), id: "r-3005", "SKU-1", "MAIN", quantity: Limits.quantityMax, onHand: Limits.quantityMax, reserved: Limits.quantityMax, actor: ""),
        ]
    }

    /// Successes that changed nothing but used their KEY — the `keyUse` records. Only the first kind (a
    /// reservation reply) arises from the rules today; the others keep every `Reply` case encodable.
    static var keyUses: [KeyUse] {
        let closed = shipped
        return [
            KeyUse(time: at(200), command: .release(id: "order-1001", key: "rel-again"), reply: .reservation(ReservationRecord(closed))),
            KeyUse(time: at(201), command: .fulfill(id: "order-1002", key: "ship-again"), reply: .reservation(ReservationRecord(closed, replayed: true))),
            KeyUse(
                time: at(202), command: .count(variant: "SKU-1", warehouse: "MAIN", counted: 3, key: "count-2"),
                reply: .cell(CellReceipt(cell: CellRecord(variant: "SKU-1", warehouse: "MAIN", onHand: 3, reserved: 0), seq: 33, shortfall: .zero, variance: .zero))),
            KeyUse(
                time: at(203), command: .adjust(variant: "SKU-1", warehouse: "MAIN", delta: -5, reason: .lost, key: "adj-9"),
                reply: .cell(CellReceipt(cell: CellRecord(variant: "SKU-1", warehouse: "MAIN", onHand: 0, reserved: 2), seq: 34, shortfall: 2))),
            KeyUse(
                time: at(204), command: .transfer(variant: "SKU-1", from: "MAIN", to: "EAST", quantity: 1, key: "xfer-2"),
                reply: .transfer(TransferReceipt(
                    from: CellRecord(variant: "SKU-1", warehouse: "MAIN", onHand: 2, reserved: 0),
                    to: CellRecord(variant: "SKU-1", warehouse: "EAST", onHand: 6, reserved: 0), seq: 35, replayed: false))),
            KeyUse(
                time: at(205), command: .setQuantity(variant: "SKU-1", warehouse: "MAIN", quantity: 2, reason: .found, key: "set-2"),
                reply: .warehouse(Warehouse.main)),
            KeyUse(
                time: at(206), command: .returnStock(variant: "SKU-1", warehouse: "MAIN", quantity: 1, disposition: .restock, key: "ret-3"),
                reply: .policy(VariantPolicy(variant: "SKU-1"))),
            // Version 2: CONFIRM of a reservation that does not expire changes nothing but uses its key.
            KeyUse(time: at(207), command: .confirm(id: "order-1002", key: "conf-1"), reply: .reservation(ReservationRecord(closed))),
        ]
    }

    /// Every `Command` case, keyed and without; the unkeyed cases never reach a record (only keyed
    /// commands are logged) but have codes, so they round-trip too.
    static let commands: [Command] = [
        .reserve(holdRequest),
        .reserve(splitRequest),
        .reserve(ReserveRequest(id: "r", lines: [])),
        .extend(id: "order-1001", ttl: .seconds(3600)),
        .extend(id: "x", ttl: Duration(secondsComponent: 0, attosecondsComponent: 1)),
        .confirm(id: "order-1001"),
        .release(id: "order-1001"),
        .release(id: "order-1001", line: LineSelector(variant: "SKU-1", warehouse: "MAIN", quantity: 1), reason: .damaged, key: "k1"),
        .fulfill(id: "order-1001"),
        .fulfill(id: "order-1001", line: LineSelector(variant: "SKU-1", warehouse: "MAIN", quantity: 1), key: "k2"),
        .adjust(variant: "SKU-1", warehouse: "MAIN", delta: -3, reason: .lost),
        .adjust(variant: "SKU-1", warehouse: "MAIN", delta: 3, reason: .received, note: "n", reference: "r", key: "k3"),
        .setQuantity(variant: "SKU-1", warehouse: "MAIN", quantity: 0, reason: .count),
        .setQuantity(variant: "SKU-1", warehouse: "MAIN", quantity: 9, reason: .import, ifOnHand: 0, key: "k4"),
        .count(variant: "SKU-1", warehouse: "MAIN", counted: 4),
        .count(variant: "SKU-1", warehouse: "MAIN", counted: 4, note: "cycle", key: "k5"),
        .transfer(variant: "SKU-1", from: "MAIN", to: "EAST", quantity: 1),
        .transfer(variant: "SKU-1", from: "MAIN", to: "EAST", quantity: 1, note: "", key: "k6"),
        .returnStock(variant: "SKU-1", warehouse: "MAIN", quantity: 1, disposition: .restock),
        .returnStock(variant: "SKU-1", warehouse: "MAIN", quantity: 1, disposition: .damaged, reference: "RMA", key: "k7"),
        .setWarehouse(WarehouseChange(code: "EAST")),
        .setWarehouse(WarehouseChange(code: "EAST", name: "East", address: "", priority: .min, active: false)),
        .setPolicy(PolicyChange(variant: "SKU-1")),
        .setPolicy(PolicyChange(variant: "SKU-1", backorder: false, unlimited: true, lowStock: 7)),
        .importStock(variant: "SKU-1", warehouse: "MAIN", onHand: 12),
        // Keys on these four arrived with version 2.
        .extend(id: "order-1001", ttl: .seconds(60), key: "k8"),
        .confirm(id: "order-1001", key: "k9"),
        .setWarehouse(WarehouseChange(code: "EAST", priority: 1), key: "k10"),
        .setPolicy(PolicyChange(variant: "SKU-1", backorder: true), key: "k11"),
    ]
}
