// Wall-clock time as Unix epoch milliseconds: what the wire, the ledger and expiry deadlines use.
// Time always comes from an injected clock, so tests can move it by hand.

/// A point in time, in milliseconds since the Unix epoch.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var milliseconds: Int64

    @inlinable public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    @inlinable public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    /// This time moved forward by `duration`, rounded down to whole milliseconds.
    @inlinable public func advanced(by duration: Duration) -> Timestamp {
        Timestamp(milliseconds: milliseconds + duration.wholeMilliseconds)
    }

    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    @inlinable public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in whole nanoseconds, rounded down.
    @inlinable public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
