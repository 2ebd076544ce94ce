// The engine's side of `TaggedIndex` (StockpileCore): when a table gives room back, the prefetch of a
// home slot, and where a chunked table's element lies, for a hint.

import CStockpileLinux
@_spi(Tables) import StockpileCore

/// When a table of open-addressing slots (`IDTable`'s index, the directory's `ShardSlots`) gives
/// room back as it empties: once at most an eighth of its slots are used (and it has more than
/// 1,024), it moves into slots a quarter full. It doubles again only after its count has doubled and
/// halves again only after its count has halved, so each move is paid for by as many changes.
/// Without it a table kept the room of its peak for good (the reservations of a flash sale,
/// forgotten a day later, left 16 to 32 bytes each behind).
enum SlotRoom {
    /// The slot count to move into after a removal left `count` in `slotCount`; nil to stay.
    @inline(__always) static func shrunk(count: Int, slotCount: Int) -> Int? {
        guard slotCount > 1024, count &* 8 <= slotCount else { return nil }
        var capacity = 16
        while capacity < count &* 4 { capacity &*= 2 }
        return capacity
    }
}

extension TaggedIndex {
    /// Asks the processor to bring in the home slot of `hash`.
    @inline(__always) func prefetch(hash: UInt64) {
        guard !slots.isEmpty else { return }
        let i = home(hash)
        slots.withUnsafeBufferPointer { stockpile_prefetch($0.baseAddress! + i) }
    }
}

/// Where element `i` of chunk `c` of `chunks` lies (the chunked entries of `CellTable` and `IDTable`),
/// for a hint: the chunk's storage is read as the address its array holds, not as the array, which
/// reading would retain, writing its header, a line the other core's requests write too (a twentieth
/// of `spread`'s time with the release). The elements follow the array storage's 32-byte header
/// (`arrayHeaderByteCount`). `i` may be past the chunk's count (the next element's place); the
/// caller checks that `c` is a chunk.
@inline(__always) func chunkElementAddress<Element>(_ chunks: [[Element]], chunk c: Int, element i: Int) -> UnsafeRawPointer {
    chunks.withUnsafeBufferPointer { outer in
        UnsafeRawPointer(outer.baseAddress! + c).load(as: UnsafeRawPointer.self) + arrayHeaderByteCount + i * MemoryLayout<Element>.stride
    }
}

/// Where an array's elements start in its storage object (64-bit: the object header, the count and
/// the capacity); the callers of `chunkElementAddress` check it against the array's own pointer in
/// debug builds.
private let arrayHeaderByteCount = 32
