// A binary min-heap: the smallest element first, push and pop in O(log n). The engine keeps its due
// work (expiries, forgetting) in one; the load harness keeps each worker's agenda in another.

public struct BinaryHeap<Element: Comparable> {
    @usableFromInline var items: [Element] = []

    @inlinable public init(capacity: Int = 0) { items.reserveCapacity(capacity) }

    @inlinable public var min: Element? { items.first }
    @inlinable public var count: Int { items.count }
    @inlinable public var isEmpty: Bool { items.isEmpty }
    /// Every element, in no particular order.
    @inlinable public var unordered: [Element] { items }

    @inlinable public mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @inlinable public mutating func popMin() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < items.count && items[l] < items[smallest] { smallest = l }
            if r < items.count && items[r] < items[smallest] { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}

extension BinaryHeap: Sendable where Element: Sendable {}
