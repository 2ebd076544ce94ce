// The mutations of SPEC §2 as one value type. The wire parses into a `Command`, the embedded API builds
// one, the reference model in the tests interprets the same values; a KEY retry is recognised by
// comparing the command (less its key).

/// One line of a RESERVE request. `warehouse` is a code as given, or `*` for placement.
public struct ReserveLine: Hashable, Sendable {
    public var variant: String
    public var warehouse: String
    public var quantity: Quantity

    public init(variant: String, warehouse: String, quantity: Quantity) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
    }
}

public struct ReserveRequest: Hashable, Sendable {
    public var id: String
    public var lines: [ReserveLine]
    /// A hold that expires after this long; nil for an order reservation that does not expire.
    public var ttl: Duration?
    public var customer: String?
    /// Nil uses the engine's default strategy.
    public var strategy: PlacementStrategy?

    public init(id: String, lines: [ReserveLine], ttl: Duration? = nil, customer: String? = nil, strategy: PlacementStrategy? = nil) {
        self.id = id
        self.lines = lines
        self.ttl = ttl
        self.customer = customer
        self.strategy = strategy
    }
}

/// Part of one line of a reservation, for partial RELEASE and FULFILL.
public struct LineSelector: Hashable, Sendable {
    public var variant: String
    public var warehouse: String
    public var quantity: Quantity

    public init(variant: String, warehouse: String, quantity: Quantity) {
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
    }
}

public enum Command: Hashable, Sendable {
    case reserve(ReserveRequest)
    case extend(id: String, ttl: Duration, key: String? = nil)
    case confirm(id: String, key: String? = nil)
    case release(id: String, line: LineSelector? = nil, reason: ReasonCode? = nil, key: String? = nil)
    case fulfill(id: String, line: LineSelector? = nil, key: String? = nil)
    case adjust(variant: String, warehouse: String, delta: Quantity, reason: ReasonCode, note: String? = nil, reference: String? = nil, key: String? = nil)
    case setQuantity(variant: String, warehouse: String, quantity: Quantity, reason: ReasonCode, ifOnHand: Quantity? = nil, key: String? = nil)
    case count(variant: String, warehouse: String, counted: Quantity, note: String? = nil, key: String? = nil)
    case transfer(variant: String, from: String, to: String, quantity: Quantity, note: String? = nil, key: String? = nil)
    case returnStock(variant: String, warehouse: String, quantity: Quantity, disposition: ReturnDisposition, reference: String? = nil, key: String? = nil)
    case setWarehouse(WarehouseChange, key: String? = nil)
    case setPolicy(PolicyChange, key: String? = nil)
    /// Stock loaded from outside (a seed file, an import): on_hand := the given figure, logged as type
    /// and reason `import` (SPEC §6, §7.11). Reservations are untouched.
    case importStock(variant: String, warehouse: String, onHand: Quantity)

    /// The idempotency key, for the commands that take one.
    public var key: String? {
        switch self {
        case .extend(_, _, let key), .confirm(_, let key), .release(_, _, _, let key), .fulfill(_, _, let key),
            .adjust(_, _, _, _, _, _, let key), .setQuantity(_, _, _, _, _, let key), .count(_, _, _, _, let key),
            .transfer(_, _, _, _, _, let key), .returnStock(_, _, _, _, _, let key), .setWarehouse(_, let key), .setPolicy(_, let key):
            return key
        case .reserve, .importStock:
            return nil
        }
    }

    /// The command without its key: what a KEY retry must repeat exactly.
    public var withoutKey: Command {
        switch self {
        case .extend(let id, let ttl, _): .extend(id: id, ttl: ttl)
        case .confirm(let id, _): .confirm(id: id)
        case .setWarehouse(let change, _): .setWarehouse(change)
        case .setPolicy(let change, _): .setPolicy(change)
        case .release(let id, let line, let reason, _): .release(id: id, line: line, reason: reason)
        case .fulfill(let id, let line, _): .fulfill(id: id, line: line)
        case .adjust(let v, let w, let d, let r, let n, let ref, _): .adjust(variant: v, warehouse: w, delta: d, reason: r, note: n, reference: ref)
        case .setQuantity(let v, let w, let q, let r, let expected, _): .setQuantity(variant: v, warehouse: w, quantity: q, reason: r, ifOnHand: expected)
        case .count(let v, let w, let c, let n, _): .count(variant: v, warehouse: w, counted: c, note: n)
        case .transfer(let v, let f, let t, let q, let n, _): .transfer(variant: v, from: f, to: t, quantity: q, note: n)
        case .returnStock(let v, let w, let q, let d, let ref, _): .returnStock(variant: v, warehouse: w, quantity: q, disposition: d, reference: ref)
        default: self
        }
    }

    /// The reservation the command acts on, if any.
    public var reservationID: String? {
        switch self {
        case .reserve(let r): r.id
        case .extend(let id, _, _), .confirm(let id, _), .release(let id, _, _, _), .fulfill(let id, _, _): id
        default: nil
        }
    }
}
