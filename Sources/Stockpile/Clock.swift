// Time comes from an injected clock. The system clock drives the background expiry timer; a manual
// clock only moves when a test moves it, so expiry in tests happens exactly when the test says.

import Foundation
import StockpileCore
import Synchronization

public protocol EngineClock: Sendable {
    func now() -> Timestamp
    /// True when time moves by itself, so the engine should run a timer for expiries.
    var movesByItself: Bool { get }
}

/// Wall-clock time (CLOCK_REALTIME), in epoch milliseconds.
public struct SystemClock: EngineClock {
    public init() {}

    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    public var movesByItself: Bool { true }
}

/// A clock that stands still until `advance` or `set` moves it. For tests and simulations.
public final class ManualClock: EngineClock {
    private let current: Mutex<Timestamp>

    public init(start: Timestamp = Timestamp(milliseconds: 1_700_000_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(by duration: Duration) {
        current.withLock { $0 = $0.advanced(by: duration) }
    }

    public func set(_ time: Timestamp) {
        current.withLock { $0 = time }
    }

    public var movesByItself: Bool { false }
}
