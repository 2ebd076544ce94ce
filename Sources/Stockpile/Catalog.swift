// Warehouses and variant policies. Every shard keeps its own copy so that a reservation checks them
// without leaving its actor; a change is applied to all copies while every shard is held, so the copies
// never disagree while anyone can look. `version` lets a router notice that the catalog it planned
// with has changed.

import StockpileCore

public struct Catalog: Sendable, Equatable {
    public private(set) var warehouses: [String: Warehouse] = [Warehouse.mainCode: .main]
    /// All warehouses in placement order (priority, then code).
    public private(set) var warehousesInPlacementOrder: [Warehouse] = [.main]
    /// Only variants whose policy differs from the defaults.
    public private(set) var policies: [String: VariantPolicy] = [:]
    public private(set) var version: UInt64 = 0

    public init() {}

    /// The warehouse `code`. A catalog has few warehouses, and up to `scannedCountMax` of them are
    /// compared in placement order, the way their codes (short strings, kept inside the `String`)
    /// compare fastest, rather than hashed with SipHash for the table: every reservation line asks.
    public func warehouse(_ code: String) -> Warehouse? {
        guard warehousesInPlacementOrder.count <= Self.scannedCountMax else { return warehouses[code] }
        // An index loop: a `for … where` allocated at every step in a debug build.
        var i = 0
        while i < warehousesInPlacementOrder.count {
            if warehousesInPlacementOrder[i].code == code { return warehousesInPlacementOrder[i] }
            i += 1
        }
        return nil
    }

    static let scannedCountMax = 8

    public func policy(of variant: String) -> VariantPolicy {
        if policies.isEmpty { return VariantPolicy(variant: variant) }
        return policies[variant] ?? VariantPolicy(variant: variant)
    }

    /// Whether `variant` may be reserved below zero: `policy(of:).backorder` without building the policy.
    public func backorder(of variant: String) -> Bool {
        policies.isEmpty ? false : policies[variant]?.backorder ?? false
    }

    public mutating func apply(_ warehouse: Warehouse) {
        warehouses[warehouse.code] = warehouse
        warehousesInPlacementOrder = warehouses.values.sorted(by: Warehouse.placementOrder)
        version &+= 1
    }

    public mutating func apply(_ policy: VariantPolicy) {
        policies[policy.variant] = policy.isDefault ? nil : policy
        version &+= 1
    }

    /// The active warehouses' cells of `variant`: the cells a `*` line may be placed in.
    func placementCells(of variant: String) -> [CellKey] {
        warehousesInPlacementOrder.filter(\.active).map { CellKey(variant: variant, warehouse: $0.code) }
    }
}
