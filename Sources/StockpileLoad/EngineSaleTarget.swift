// The in-process target: a sale's operations are calls on an `Engine` in this process. Channels are
// free (the engine is shared and Sendable) and never block, so workers run as ordinary tasks —
// unless `threadPerWorker` asks for a thread each, so that a sale inside a busy process (a test
// suite running beside it) is not starved by other work on the cooperative pool.

import Stockpile

public struct EngineSaleTarget: SaleTarget {
    public let engine: Engine
    public let threadPerWorker: Bool

    public init(engine: Engine, threadPerWorker: Bool = false) {
        self.engine = engine
        self.threadPerWorker = threadPerWorker
    }

    public var description: String { "in-process engine, \(engine.configuration.shardCount) shards" }
    public var channelsBlock: Bool { threadPerWorker }

    public func openChannel() -> any SaleChannel { EngineSaleChannel(engine: engine) }
}

struct EngineSaleChannel: SaleChannel {
    let engine: Engine

    func reserve(id: String, lines: [SaleLine], ttl: Duration) async -> Outcome<HoldFigures> {
        let request = ReserveRequest(
            id: id, lines: lines.map { ReserveLine(variant: $0.item, warehouse: saleWarehouse, quantity: $0.quantity) }, ttl: ttl)
        return await engine.reserve(request).map(HoldFigures.init)
    }

    func confirm(id: String) async -> Outcome<HoldFigures> {
        await engine.confirm(id).map(HoldFigures.init)
    }

    func fulfill(id: String, line: SaleLine?) async -> Outcome<HoldFigures> {
        let selector = line.map { LineSelector(variant: $0.item, warehouse: saleWarehouse, quantity: $0.quantity) }
        return await engine.fulfill(id, line: selector).map(HoldFigures.init)
    }

    func release(id: String) async -> Outcome<HoldFigures> {
        await engine.release(id).map(HoldFigures.init)
    }

    func restock(item: String, units: Quantity) async -> Outcome<ItemFigures> {
        await engine.adjust(variant: item, warehouse: saleWarehouse, by: units, reason: .received).map {
            ItemFigures(onHand: $0.cell.onHand, reserved: $0.cell.reserved)
        }
    }

    func holds(_ ids: [String]) async -> [Outcome<HoldFigures>] {
        var found: [Outcome<HoldFigures>] = []
        found.reserveCapacity(ids.count)
        for id in ids { found.append(await engine.reservation(id).map(HoldFigures.init)) }
        return found
    }

    func items(_ names: [String]) async throws(SaleTargetError) -> [ItemFigures] {
        var found: [ItemFigures] = []
        found.reserveCapacity(names.count)
        for name in names {
            switch await engine.cell(variant: name, warehouse: saleWarehouse) {
            case .ok(let cell): found.append(ItemFigures(onHand: cell.onHand, reserved: cell.reserved))
            case .refused(let r): throw SaleTargetError("reading \(name) \(saleWarehouse): \(r)")
            }
        }
        return found
    }

    func counters() async -> UnitCounters {
        let c = await engine.stats().counters
        var u = UnitCounters()
        u.reserved = c.unitsReserved
        u.fulfilled = c.unitsFulfilled
        u.released = c.unitsReleased
        u.expired = c.unitsExpired
        return u
    }
}

extension HoldFigures {
    init(_ record: ReservationRecord) {
        let r = record.reservation
        self.init(
            status: r.status,
            lines: r.lines.map { Line(item: $0.variant, quantity: $0.quantity, fulfilled: $0.fulfilled, released: $0.released) })
    }
}
