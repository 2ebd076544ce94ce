// Business results are values, not thrown errors. A refused request changes nothing; its code is
// stable (the numbers are never reused or renumbered) and ordered by precedence: when a request
// is wrong in several ways, the lowest-numbered reason is the one reported.

public enum RefusalCode: Int, Sendable, Hashable, CaseIterable, Comparable {
    case invalid = 1
    case limit = 2
    case conflict = 3
    case notFound = 4
    case inactive = 5
    case closed = 6
    case expired = 7
    case negative = 8
    case insufficient = 9
    /// Writes are stopped (the log could not be written); reads go on.
    case readOnly = 10

    public static func < (a: RefusalCode, b: RefusalCode) -> Bool { a.rawValue < b.rawValue }

    /// The spelling on the wire and in STATS (`refused_<lowercased>`).
    public var name: String {
        switch self {
        case .invalid: "INVALID"
        case .limit: "LIMIT"
        case .conflict: "CONFLICT"
        case .notFound: "NOTFOUND"
        case .inactive: "INACTIVE"
        case .closed: "CLOSED"
        case .expired: "EXPIRED"
        case .negative: "NEGATIVE"
        case .insufficient: "INSUFFICIENT"
        case .readOnly: "READONLY"
        }
    }
}

/// Why a request was refused, with the figures the caller needs to act on it.
public struct Refusal: Hashable, Sendable, CustomStringConvertible {
    public var code: RefusalCode
    /// The text after the code on the wire.
    public var message: String
    /// INSUFFICIENT: the line that could not be met (warehouse `*` for a placed line).
    public var variant: String?
    public var warehouse: String?
    /// INSUFFICIENT: what was available (on_hand, for a shipment); NEGATIVE and CONFLICT: the current on_hand.
    public var available: Quantity?
    public var requested: Quantity?
    public var current: Quantity?

    public init(
        _ code: RefusalCode, _ message: String, variant: String? = nil, warehouse: String? = nil,
        available: Quantity? = nil, requested: Quantity? = nil, current: Quantity? = nil
    ) {
        self.code = code
        self.message = message
        self.variant = variant
        self.warehouse = warehouse
        self.available = available
        self.requested = requested
        self.current = current
    }

    public static func insufficient(variant: String, warehouse: String, available: Quantity, requested: Quantity) -> Refusal {
        Refusal(
            .insufficient, "\(variant) \(warehouse) available \(available) requested \(requested)", variant: variant,
            warehouse: warehouse, available: available, requested: requested)
    }

    public static func invalid(_ message: String) -> Refusal { Refusal(.invalid, message) }
    public static func limit(_ message: String) -> Refusal { Refusal(.limit, message) }
    public static func warehouseNotFound(_ code: String) -> Refusal { Refusal(.notFound, "warehouse \(code) does not exist") }
    public static func reservationNotFound(_ id: String) -> Refusal { Refusal(.notFound, "reservation \(id) does not exist") }

    /// The wire form, `CODE message`.
    public var description: String { "\(code.name) \(message)" }
}

/// The result of an operation: what it produced, or why nothing happened.
public enum Outcome<Value: Sendable>: Sendable {
    case ok(Value)
    case refused(Refusal)

    public var value: Value? {
        if case .ok(let v) = self { return v }
        return nil
    }

    public var refusal: Refusal? {
        if case .refused(let r) = self { return r }
        return nil
    }

    public func map<T: Sendable>(_ transform: (Value) -> T) -> Outcome<T> {
        switch self {
        case .ok(let v): .ok(transform(v))
        case .refused(let r): .refused(r)
        }
    }
}

extension Outcome: Equatable where Value: Equatable {}
extension Outcome: Hashable where Value: Hashable {}
