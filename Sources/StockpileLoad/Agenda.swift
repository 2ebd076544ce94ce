// A worker's agenda: each of its buyers' next step and when it is due, earliest first (a binary
// min-heap). A buyer has at most one step pending, so the heap never holds more than the buyers.

struct Agenda {
    struct Entry {
        var due: ContinuousClock.Instant
        /// The buyer's index among the worker's buyers.
        var buyer: Int
    }

    private var heap: [Entry] = []

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var earliest: Entry? { heap.first }

    mutating func schedule(_ buyer: Int, at due: ContinuousClock.Instant) {
        heap.append(Entry(due: due, buyer: buyer))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popEarliest() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let first = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].due < heap[smallest].due { smallest = left }
            if right < heap.count && heap[right].due < heap[smallest].due { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }

    /// Every pending buyer, in no particular order.
    var pendingBuyers: [Int] { heap.map(\.buyer) }
}
