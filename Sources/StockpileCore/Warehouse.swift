// Warehouses and variant policies: the catalog every stock decision consults. `MAIN` exists from
// the first start; warehouses are never deleted (ledger entries keep naming them).

/// A place that holds stock. `code` is stored upper-case.
public struct Warehouse: Hashable, Sendable {
    public var code: String
    public var name: String
    public var address: String
    /// Lower first in placement; new warehouses get 100, MAIN 0 (SPEC §7.7).
    public var priority: Int64
    /// Inactive warehouses take no new reservations; adjustments, fulfilment and release still work.
    public var active: Bool

    public init(code: String, name: String = "", address: String = "", priority: Int64 = 100, active: Bool = true) {
        self.code = code
        self.name = name
        self.address = address
        self.priority = priority
        self.active = active
    }

    public static let mainCode = "MAIN"
    public static let main = Warehouse(code: mainCode, name: "Main", priority: 0)

    /// Placement order: priority, then code.
    public static func placementOrder(_ a: Warehouse, _ b: Warehouse) -> Bool {
        a.priority != b.priority ? a.priority < b.priority : a.code < b.code
    }
}

/// How a variant is sold. A variant needs no registration: an unknown one has the defaults.
public struct VariantPolicy: Hashable, Sendable {
    public var variant: String
    /// Reservations may take available below zero; the uncovered part is recorded as backordered.
    public var backorder: Bool
    /// Digital or service goods: reservations always succeed and counts are not checked or changed.
    public var unlimited: Bool
    /// A cell of this variant is low on stock when available ≤ this; zero means no threshold.
    public var lowStock: Quantity

    public init(variant: String, backorder: Bool = false, unlimited: Bool = false, lowStock: Quantity = .zero) {
        self.variant = variant
        self.backorder = backorder
        self.unlimited = unlimited
        self.lowStock = lowStock
    }

    public var isDefault: Bool { !backorder && !unlimited && lowStock == .zero }
}

/// A change to a warehouse: nil fields keep their value (or the default, for a new warehouse).
public struct WarehouseChange: Hashable, Sendable {
    public var code: String
    public var name: String?
    public var address: String?
    public var priority: Int64?
    public var active: Bool?

    public init(code: String, name: String? = nil, address: String? = nil, priority: Int64? = nil, active: Bool? = nil) {
        self.code = code
        self.name = name
        self.address = address
        self.priority = priority
        self.active = active
    }
}

/// A change to a variant's policy: nil fields keep their value.
public struct PolicyChange: Hashable, Sendable {
    public var variant: String
    public var backorder: Bool?
    public var unlimited: Bool?
    public var lowStock: Quantity?

    public init(variant: String, backorder: Bool? = nil, unlimited: Bool? = nil, lowStock: Quantity? = nil) {
        self.variant = variant
        self.backorder = backorder
        self.unlimited = unlimited
        self.lowStock = lowStock
    }
}
