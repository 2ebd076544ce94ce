// What the rules may read. A shard passes its own state; an operation spanning shards passes the
// figures it gathered while holding every shard it touches. The rules never see anything else, so
// the same decision is made however the state is split.

public protocol StockView {
    /// The cell's figures (zeros for a cell never used).
    func cellState(_ key: CellKey) -> CellState
    func warehouse(_ code: String) -> Warehouse?
    /// The variant's policy (the defaults for a variant never configured).
    func policy(of variant: String) -> VariantPolicy
    /// Every warehouse, in placement order (priority, then code).
    var warehousesInPlacementOrder: [Warehouse] { get }
    func reservation(_ id: String) -> Reservation?
}

/// Settings the rules take from the engine's configuration.
public struct RuleSettings: Sendable {
    public var defaultStrategy: PlacementStrategy

    public init(defaultStrategy: PlacementStrategy = .priority) {
        self.defaultStrategy = defaultStrategy
    }
}
