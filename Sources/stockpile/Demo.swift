// `stockpile demo`: a flash sale in-process, on a manual clock so holds expire in simulated time.
// It exercises the whole lifecycle (hold, confirm, partial and full shipment, cancel, expiry,
// restock) and ends with the figures and an invariant check, so a reader sees the engine at work.

import Stockpile

struct DemoOptions {
    var buyers = 500
    var stock = 300
    var seed: UInt64 = 42
}

/// SplitMix64, for a repeatable demo.
struct DemoRandom {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(max(1, bound)))
    }
}

func runDemo(_ options: DemoOptions) async -> Bool {
    let clock = ManualClock()
    let engine = Engine(configuration: EngineConfiguration(shardCount: 8), clock: clock)
    var rng = DemoRandom(state: options.seed)
    let items = ["SNEAKER-RED-42", "SNEAKER-BLUE-42"]
    let stock = Quantity(Int64(options.stock))

    _ = await engine.setWarehouse(WarehouseChange(code: "east", name: "East DC", priority: 10))
    for item in items {
        _ = await engine.adjust(variant: item, warehouse: "MAIN", by: stock, reason: .received, note: "launch stock")
        _ = await engine.setPolicy(PolicyChange(variant: item, lowStock: Quantity(Int64(max(1, options.stock / 10)))))
    }
    let events = engine.subscribe()
    let firstSeq = engine.nextSeq
    print("flash sale: \(options.buyers) buyers, \(stock) units each of \(items.joined(separator: " and ")) in MAIN")

    var held: [String] = []
    var refused = 0
    var firstRefusal: String?
    for b in 0..<options.buyers {
        clock.advance(by: .milliseconds(Int64(10 + rng.next(200))))
        if b == options.buyers / 2 {
            _ = await engine.adjust(variant: items[0], warehouse: "EAST", by: Quantity(Int64(options.stock / 3)), reason: .received, note: "restock midway")
            print("  restock: \(options.stock / 3) units of \(items[0]) arrived in EAST")
        }
        var lines = [ReserveLine(variant: items[rng.next(2)], warehouse: "*", quantity: Quantity(Int64(1 + rng.next(3))))]
        if rng.next(4) == 0 { lines.append(ReserveLine(variant: items[1], warehouse: "*", quantity: 1)) }
        let id = "cart-\(b)"
        switch await engine.reserve(ReserveRequest(id: id, lines: lines, ttl: .seconds(600), customer: "buyer-\(b)")) {
        case .ok: held.append(id)
        case .refused(let r):
            refused += 1
            if firstRefusal == nil { firstRefusal = "  first refusal at buyer \(b): \(r)" }
        }
    }
    if let firstRefusal { print(firstRefusal) }

    var paid = 0, shippedInTwo = 0, cancelled = 0, abandoned = 0
    for id in held {
        switch rng.next(10) {
        case 0..<6:
            _ = await engine.confirm(id)
            paid += 1
            if rng.next(3) == 0, case .ok(let r) = await engine.reservation(id), let line = r.reservation.lines.first, line.quantity > 1 {
                _ = await engine.fulfill(id, line: LineSelector(variant: line.variant, warehouse: line.warehouse, quantity: 1))
                shippedInTwo += 1
            }
            _ = await engine.fulfill(id)
        case 6..<8:
            _ = await engine.release(id, reason: .cancelled)
            cancelled += 1
        default:
            abandoned += 1
        }
    }
    clock.advance(by: .seconds(601))
    await engine.runDueWork()

    print("  \(held.count) carts held stock, \(refused) refused (sold out)")
    print("  \(paid) paid and shipped (\(shippedInTwo) in two partial shipments), \(cancelled) cancelled, \(abandoned) abandoned and expired")
    for item in items {
        if case .ok(let s) = await engine.stock(variant: item) {
            let rows = s.cells.map { "\($0.warehouse) on_hand \($0.onHand) reserved \($0.reserved)" }.joined(separator: ", ")
            print("  \(item): \(rows); available \(s.totals.available)")
        }
    }
    let stats = await engine.stats()
    print("  units reserved \(stats.counters.unitsReserved), fulfilled \(stats.counters.unitsFulfilled), released \(stats.counters.unitsReleased), expired \(stats.counters.unitsExpired), stockouts \(stats.counters.stockouts)")

    var entryCount = 0, alerts = 0
    let last = engine.nextSeq - 1
    if last >= firstSeq {
        reading: for await event in events {
            switch event {
            case .entry(let e):
                entryCount += 1
                if e.seq >= last { break reading }
            case .lowStock:
                alerts += 1
            case .ended:
                break reading
            }
        }
    }
    print("  ledger: \(entryCount) entries since the sale opened, \(alerts) low-stock alerts")
    let problems = await engine.verify()
    print(problems.isEmpty ? "  invariants: all hold" : "  invariants BROKEN:\n    " + problems.joined(separator: "\n    "))
    return problems.isEmpty
}
