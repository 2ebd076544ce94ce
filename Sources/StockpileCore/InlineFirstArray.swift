// An array that keeps its first element inline and the rest in an ordinary array, so that one
// element costs no allocation: a one-line reservation — most of them — decides with its demand and
// its cell's figures in collections of one, which a Swift `Array` would put on the heap each time,
// and a server's batch of one request (pipeline 1) keeps its start time and reply range in one.

public struct InlineFirstArray<Element>: RandomAccessCollection, MutableCollection {
    @usableFromInline var first_: Element?
    @usableFromInline var rest: [Element] = []

    @inlinable public init() {}

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { first_ == nil ? 0 : 1 &+ rest.count }

    @inlinable public subscript(i: Int) -> Element {
        get {
            precondition(i >= 0 && i < endIndex, "index out of range")
            return i == 0 ? first_! : rest[i &- 1]
        }
        set {
            precondition(i >= 0 && i < endIndex, "index out of range")
            if i == 0 { first_ = newValue } else { rest[i &- 1] = newValue }
        }
    }

    @inlinable public mutating func append(_ e: Element) {
        if first_ == nil { first_ = e } else { rest.append(e) }
    }

    /// Room for `n` elements in all: the heap is touched only past the first.
    @inlinable public mutating func reserveCapacity(_ n: Int) {
        if n > 1 { rest.reserveCapacity(n &- 1) }
    }

    /// How many elements it holds room for without growing.
    @inlinable public var capacity: Int { 1 &+ rest.capacity }

    /// Empties it, keeping the room past the first for reuse when `keepingCapacity`.
    @inlinable public mutating func removeAll(keepingCapacity: Bool) {
        first_ = nil
        rest.removeAll(keepingCapacity: keepingCapacity)
    }
}

extension InlineFirstArray: Sendable where Element: Sendable {}
