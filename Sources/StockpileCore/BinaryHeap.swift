// A binary min-heap: the smallest element first, push and pop in O(log n). The engine keeps its due
// work (expiries, forgetting) in one; the load harness keeps each worker's agenda in another. Its
// storage gives memory back as it empties: once it holds under a quarter of its room (and the room is
// more than `shrinkableCapacity`), it moves into room for twice what it holds. (A flash sale's
// millions of expiries otherwise kept their 16 bytes each of room for the life of the process.) Each
// move copies what is left after at least three quarters of the room were popped: O(1) a pop.

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
        if items.capacity > Self.shrinkableCapacity && items.count < items.capacity / 4 { shrink() }
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

    /// The room below which the storage is kept however empty it gets.
    @inlinable public static var shrinkableCapacity: Int { 4096 }

    /// Moves the elements into storage with room for twice their count.
    @usableFromInline mutating func shrink() {
        var smaller: [Element] = []
        smaller.reserveCapacity(items.count * 2)
        smaller.append(contentsOf: items)
        items = smaller
    }

    /// The elements' room (tests).
    public var capacity: Int { items.capacity }
}

extension BinaryHeap: Sendable where Element: Sendable {}
