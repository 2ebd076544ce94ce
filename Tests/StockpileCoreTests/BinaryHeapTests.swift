// The binary min-heap: pops come out in order against a sorted model, over random pushes and pops,
// and its storage gives memory back once it has emptied. Seeded (STOCKPILE_SEED); the seed is in
// every failure message.

import Foundation
import StockpileCore
import Testing

@Suite("Binary heap")
struct BinaryHeapTests {
    private static let seed: UInt64 = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap { UInt64($0) } ?? 2026

    @Test("random pushes and pops give the least element each time, as a sorted model does")
    func againstModel() {
        var rng = SplitMix64(seed: Self.seed)
        var heap = BinaryHeap<Int>()
        var model: [Int] = []
        for step in 0..<50_000 {
            // Grow, then drain, then mixed: the storage grows and shrinks on the way.
            let pushing = step < 20_000 ? rng.next() % 4 != 0 : step < 40_000 ? rng.next() % 4 == 0 : rng.next() % 2 == 0
            if pushing {
                let v = Int(rng.next() % 1_000)
                heap.push(v)
                model.append(v)
            } else {
                model.sort()
                let expected = model.isEmpty ? nil : model.removeFirst()
                let popped = heap.popMin()
                if popped != expected {
                    Issue.record("seed \(Self.seed) step \(step): popped \(String(describing: popped)), expected \(String(describing: expected))")
                    return
                }
            }
            if heap.count != model.count {
                Issue.record("seed \(Self.seed) step \(step): \(heap.count) elements, expected \(model.count)")
                return
            }
        }
    }

    @Test("a heap that empties gives its room back: under a quarter full, it keeps room for twice what it holds")
    func shrinks() {
        var heap = BinaryHeap<Int>()
        for v in (0..<100_000).reversed() { heap.push(v) }
        let full = heap.capacity
        #expect(full >= 100_000)
        for expected in 0..<99_900 {
            guard heap.popMin() == expected else {
                Issue.record("pop \(expected) out of order")
                return
            }
        }
        #expect(heap.count == 100)
        #expect(heap.capacity <= BinaryHeap<Int>.shrinkableCapacity, "room for \(heap.capacity) after emptying from \(full)")
        #expect(heap.popMin() == 99_900)
    }
}
