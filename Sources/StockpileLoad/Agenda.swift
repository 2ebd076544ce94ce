// A worker's agenda: each of its buyers' next step and when it is due, earliest first. A buyer has
// at most one step pending, so the heap never holds more than the buyers.

import StockpileCore

struct Agenda {
    struct Entry: Comparable {
        var due: ContinuousClock.Instant
        /// The buyer's index among the worker's buyers.
        var buyer: Int

        static func < (a: Entry, b: Entry) -> Bool { a.due < b.due }
    }

    private var heap: BinaryHeap<Entry>

    init(capacity: Int) { heap = BinaryHeap(capacity: capacity) }

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var earliest: Entry? { heap.min }

    mutating func schedule(_ buyer: Int, at due: ContinuousClock.Instant) {
        heap.push(Entry(due: due, buyer: buyer))
    }

    mutating func popEarliest() -> Entry? { heap.popMin() }

    /// Every pending buyer, in no particular order.
    var pendingBuyers: [Int] { heap.unordered.map(\.buyer) }
}
