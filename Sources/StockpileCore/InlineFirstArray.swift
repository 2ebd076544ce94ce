// An array that keeps its first element inline and the rest in an ordinary array, so that one
// element costs no allocation: a one-line reservation — most of them — decides with its demand and
// its cell's figures in collections of one, which a Swift `Array` would put on the heap each time.

@usableFromInline
struct InlineFirstArray<Element>: RandomAccessCollection, MutableCollection {
    @usableFromInline var first_: Element?
    @usableFromInline var rest: [Element] = []

    @inlinable init() {}

    @inlinable var startIndex: Int { 0 }
    @inlinable var endIndex: Int { first_ == nil ? 0 : 1 &+ rest.count }

    @inlinable subscript(i: Int) -> Element {
        get {
            precondition(i >= 0 && i < endIndex, "index out of range")
            return i == 0 ? first_! : rest[i &- 1]
        }
        set {
            precondition(i >= 0 && i < endIndex, "index out of range")
            if i == 0 { first_ = newValue } else { rest[i &- 1] = newValue }
        }
    }

    @inlinable mutating func append(_ e: Element) {
        if first_ == nil { first_ = e } else { rest.append(e) }
    }

    /// Room for `n` elements in all: the heap is touched only past the first.
    @inlinable mutating func reserveCapacity(_ n: Int) {
        if n > 1 { rest.reserveCapacity(n &- 1) }
    }
}
