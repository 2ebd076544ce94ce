// A log-linear latency histogram in the manner of HdrHistogram: values below 128 ns are counted
// exactly; above, each power of two is split into 64 linear buckets, so any recorded value is
// reported within 1/64 (1.6 %) of itself. Recording is an index computation and an increment; no
// allocation after creation. Histograms of several tasks merge by adding their counts.

public struct LatencyHistogram: Sendable {
    static let exactCount = 128
    static let subBucketBits = 6
    static let subBucketCount = 1 << subBucketBits
    static let bucketCount = exactCount + (64 - subBucketBits - 1) * subBucketCount

    private var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    private var sum: Double = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    static func index(of value: UInt64) -> Int {
        if value < UInt64(exactCount) { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount
        let shift = msb - subBucketBits
        let sub = Int(value >> UInt64(shift))
        return exactCount + (shift - 1) * subBucketCount + (sub - subBucketCount)
    }

    /// The smallest value counted in bucket `i`, and the bucket's width.
    static func range(of i: Int) -> (lower: UInt64, width: UInt64) {
        if i < exactCount { return (UInt64(i), 1) }
        let shift = (i - exactCount) / subBucketCount + 1
        let sub = UInt64((i - exactCount) % subBucketCount + subBucketCount)
        return (sub << UInt64(shift), 1 << UInt64(shift))
    }

    /// Counts one value (nanoseconds, or any unit the caller keeps to).
    public mutating func record(_ value: UInt64) {
        record(value, count: 1)
    }

    /// Counts `value` `n` times.
    public mutating func record(_ value: UInt64, count n: UInt64) {
        guard n > 0 else { return }
        counts[Self.index(of: value)] += n
        count += n
        sum += Double(value) * Double(n)
        if value < min { min = value }
        if value > max { max = value }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
        count += other.count
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    public var mean: Double { count == 0 ? 0 : sum / Double(count) }

    /// The value at quantile `q` (0...1): the middle of the bucket holding the ⌈q·count⌉-th smallest
    /// value, clamped to the recorded min and max. Zero when empty.
    public func value(atQuantile q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let q = q.isNaN ? 0 : Swift.min(1, Swift.max(0, q))
        let rank = Swift.max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for i in counts.indices where counts[i] > 0 {
            seen += counts[i]
            if seen >= rank {
                let (lower, width) = Self.range(of: i)
                return Swift.min(Swift.max(lower + (width - 1) / 2, min), max)
            }
        }
        return max
    }
}
