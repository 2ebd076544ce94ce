// The latency histogram: every value is reported within 1/64 of itself, quantiles land on the right
// rank, and merging histograms equals recording everything in one.

import Stockpile
import Testing

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("a single value is reported within 1/64 of itself at every magnitude",
          arguments: [0, 1, 127, 128, 129, 1_000, 65_535, 1_000_000, 123_456_789, 1 << 40, UInt64.max >> 1] as [UInt64])
    func singleValue(_ v: UInt64) {
        var h = LatencyHistogram()
        h.record(v)
        let reported = h.value(atQuantile: 0.5)
        let error = reported > v ? reported - v : v - reported
        #expect(error <= v / 64, "recorded \(v), reported \(reported)")
        #expect(h.min == v && h.max == v && h.count == 1)
    }

    @Test("quantiles of 1...10000 land on their ranks within the bucket error")
    func uniformQuantiles() {
        var h = LatencyHistogram()
        for v in 1...10_000 as ClosedRange<UInt64> { h.record(v) }
        for (q, expected) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.99, 9_900.0), (0.999, 9_990.0), (1.0, 10_000.0)] {
            let got = Double(h.value(atQuantile: q))
            #expect(abs(got - expected) <= expected / 64 + 1, "q\(q): \(got) vs \(expected)")
        }
        #expect(h.value(atQuantile: 0) == 1)
        #expect(abs(h.mean - 5_000.5) < 0.001)
    }

    @Test("merging histograms equals recording every value in one")
    func merge() {
        var rng = SplitMix64(seed: 7)
        var a = LatencyHistogram(), b = LatencyHistogram(), all = LatencyHistogram()
        for i in 0..<5_000 {
            let v = rng.next() % 1_000_000
            if i % 3 == 0 { a.record(v) } else { b.record(v) }
            all.record(v)
        }
        a.merge(b)
        #expect(a.count == all.count && a.min == all.min && a.max == all.max)
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] { #expect(a.value(atQuantile: q) == all.value(atQuantile: q)) }
    }

    @Test("recording a value n times at once equals recording it n times")
    func recordCount() {
        var rng = SplitMix64(seed: 11)
        var once = LatencyHistogram(), each = LatencyHistogram()
        for _ in 0..<500 {
            let (v, n) = (rng.next() % 5_000_000, rng.next() % 20)
            once.record(v, count: n)
            for _ in 0..<n { each.record(v) }
        }
        #expect(once.count == each.count && once.min == each.min && once.max == each.max && abs(once.mean - each.mean) < 1e-6)
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] { #expect(once.value(atQuantile: q) == each.value(atQuantile: q)) }
    }

    @Test("an empty histogram reports zero")
    func empty() {
        let h = LatencyHistogram()
        #expect(h.value(atQuantile: 0.99) == 0 && h.count == 0 && h.mean == 0)
    }
}
