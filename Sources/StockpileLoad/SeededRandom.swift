// What the sale draws from its seeded generator (StockpileCore's `SplitMix64`): the same seed gives
// the same plan for every buyer on every machine, repeatable from the seed printed at the start.

import StockpileCore

extension SplitMix64 {
    /// A duration drawn evenly from `range`, to the nanosecond.
    mutating func duration(in range: ClosedRange<Duration>) -> Duration {
        let low = range.lowerBound.wholeNanoseconds
        let span = range.upperBound.wholeNanoseconds - low
        return .nanoseconds(low + Int64(unit() * Double(span)))
    }
}

extension Duration {
    /// The duration in seconds, for reports.
    var seconds: Double { Double(wholeNanoseconds) / 1e9 }
}
