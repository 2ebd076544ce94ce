import Stockpile
let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
print(await engine.adjust(variant: "SKU-1", warehouse: "main", by: 10, reason: .received))
print(await engine.reserve(ReserveRequest(id: "o1", lines: [ReserveLine(variant: "SKU-1", warehouse: "MAIN", quantity: 3), ReserveLine(variant: "SKU-2", warehouse: "*", quantity: 1)])))
print(await engine.reserve(ReserveRequest(id: "o2", lines: [ReserveLine(variant: "SKU-1", warehouse: "MAIN", quantity: 3)], ttl: .seconds(5))))
print(await engine.fulfill("o2"))
print(await engine.cell(variant: "SKU-1", warehouse: "MAIN"))
print(await engine.verify())
print(await engine.stats())
