// A count of units. Every stock figure and every delta in Stockpile is a `Quantity`, never a bare integer,
// so that units cannot be mixed up with sequence numbers, times or indexes.

/// A signed number of units. Stored figures (on hand, reserved) are never negative; deltas and
/// `available` may be.
public struct Quantity: Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var units: Int64

    @inlinable public init(_ units: Int64) { self.units = units }
    @inlinable public init(integerLiteral value: Int64) { self.units = value }

    public static let zero = Quantity(0)

    @inlinable public static func < (a: Quantity, b: Quantity) -> Bool { a.units < b.units }
    @inlinable public static func + (a: Quantity, b: Quantity) -> Quantity { Quantity(a.units + b.units) }
    @inlinable public static func - (a: Quantity, b: Quantity) -> Quantity { Quantity(a.units - b.units) }
    @inlinable public static prefix func - (a: Quantity) -> Quantity { Quantity(-a.units) }
    @inlinable public static func += (a: inout Quantity, b: Quantity) { a.units += b.units }
    @inlinable public static func -= (a: inout Quantity, b: Quantity) { a.units -= b.units }

    /// The quantity, or zero when it is negative.
    @inlinable public var clampedAtZero: Quantity { units < 0 ? .zero : self }

    /// `self + other`, held at Int64's bounds instead of trapping: for counters and totals that sum
    /// without bound over the life of the engine (units reserved, on hand over every cell).
    @inlinable public func addingSaturating(_ other: Quantity) -> Quantity {
        let (sum, overflow) = units.addingReportingOverflow(other.units)
        guard overflow else { return Quantity(sum) }
        return Quantity(other.units > 0 ? .max : .min)
    }
    @inlinable public var isPositive: Bool { units > 0 }

    public var description: String { String(units) }
}
