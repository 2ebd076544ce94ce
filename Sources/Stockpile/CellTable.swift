// A shard's cells, kept in 64 dictionaries instead of one, so that copy-on-write after a snapshot
// costs little per write. A snapshot keeps a reference to every shard's table; the next write to a
// shard then copies what it touches. With one dictionary that is the whole shard at once; split in
// 64, each write copies at most a sixty-fourth of it, and the copying spreads over the writes that
// follow — as a forked Redis copies one page at a time.

import StockpileCore

struct CellTable: Sequence, Sendable {
    static let segmentCount = 64
    private var segments: [[CellKey: CellSlot]] = Array(repeating: [:], count: CellTable.segmentCount)

    /// The segment of a key: FNV-1a of its bytes, like the router's, but different bits of it.
    @inline(__always) private static func segment(_ key: CellKey) -> Int {
        var h = ShardRouter.fnv1a(key.variant)
        h = (h ^ 0xFF) &* ShardRouter.fnvPrime
        h = ShardRouter.fnv1a(key.warehouse, from: h)
        return Int(truncatingIfNeeded: (h >> 40) & UInt64(segmentCount - 1))
    }

    subscript(key: CellKey) -> CellSlot? {
        get { segments[Self.segment(key)][key] }
        set { segments[Self.segment(key)][key] = newValue }
    }

    subscript(key: CellKey, default value: @autoclosure () -> CellSlot) -> CellSlot {
        get { segments[Self.segment(key)][key] ?? value() }
        _modify { yield &segments[Self.segment(key)][key, default: value()] }
    }

    var count: Int { segments.reduce(0) { $0 + $1.count } }

    mutating func removeAll() {
        for i in segments.indices { segments[i].removeAll() }
    }

    mutating func reserveCapacity(_ n: Int) {
        for i in segments.indices { segments[i].reserveCapacity(n / Self.segmentCount + 1) }
    }

    func makeIterator() -> FlattenSequence<[[CellKey: CellSlot]]>.Iterator {
        segments.joined().makeIterator()
    }
}
