// Sorting many 64-bit hashes (a seed file's millions of cells, checked for repeats): a least-
// significant-digit radix sort, six passes of 11 bits through one scratch buffer, with every pass's
// counts taken in one read first. For uniformly spread keys it does a fixed amount of sequential work
// per key, where a comparison sort does about log2(n) compares and moves (23 at 10,000,000 keys).
// And grouping positions by a small key (`CountingSort`), for a run of requests by shard and a batch
// of names by stripe.

extension Array where Element == UInt64 {
    /// Sorts in ascending order, as `sort()` does. Small arrays go to `sort()`.
    public mutating func radixSort() {
        guard count >= 4096 else {
            sort()
            return
        }
        let digitBits = 11
        let passes = 6  // 6 × 11 ≥ 64
        let radix = 1 << digitBits
        let mask = UInt64(radix - 1)
        var counts = [Int](repeating: 0, count: radix * passes)
        var scratch = [UInt64](repeating: 0, count: count)
        withUnsafeMutableBufferPointer { keys in
            scratch.withUnsafeMutableBufferPointer { other in
                counts.withUnsafeMutableBufferPointer { counts in
                    for k in keys {
                        for p in 0..<passes { counts[p &* radix &+ Int((k >> UInt64(p &* digitBits)) & mask)] &+= 1 }
                    }
                    var source = keys
                    var target = other
                    for p in 0..<passes {
                        let base = p &* radix
                        // A pass whose digit is the same in every key moves nothing.
                        if counts[base..<(base + radix)].contains(source.count) { continue }
                        var sum = 0
                        for d in 0..<radix {
                            let c = counts[base &+ d]
                            counts[base &+ d] = sum
                            sum &+= c
                        }
                        let shift = UInt64(p &* digitBits)
                        for k in source {
                            let d = base &+ Int((k >> shift) & mask)
                            target[counts[d]] = k
                            counts[d] &+= 1
                        }
                        swap(&source, &target)
                    }
                    if source.baseAddress != keys.baseAddress {
                        _ = keys.update(fromContentsOf: source)
                    }
                }
            }
        }
    }
}

/// Positions grouped by a small key (a shard, a stripe), each group's positions in increasing order: a
/// counting sort, for a caller that then works one group at a time.
public enum CountingSort {
    /// Groups positions `0..<count` by `key(position)`, each key in `0..<starts.count - 1`: `order`
    /// (room for `count`) lists them key by key, key `k`'s at `order[starts[k]..<starts[k + 1]]`,
    /// each key's in increasing position; `place[i]`, when given (room for `count`), is where position
    /// `i` went in `order`. `starts` is overwritten.
    @inlinable @inline(__always)
    public static func group(
        count: Int, key: (Int) -> Int, order: UnsafeMutableBufferPointer<Int>, starts: UnsafeMutableBufferPointer<Int>,
        place: UnsafeMutableBufferPointer<Int>? = nil
    ) {
        precondition(order.count >= count && starts.count >= 1 && (place?.count ?? count) >= count, "room for every position")
        starts.update(repeating: 0)
        for i in 0..<count { starts[key(i) &+ 1] &+= 1 }
        for k in 0..<(starts.count &- 1) { starts[k &+ 1] &+= starts[k] }
        for i in 0..<count {
            let k = key(i)
            order[starts[k]] = i
            place?[i] = starts[k]
            starts[k] &+= 1
        }
        // Each key's cursor stopped at the next key's start: moved up one key, they are the starts again.
        for k in stride(from: starts.count &- 2, to: 0, by: -1) { starts[k] = starts[k &- 1] }
        starts[0] = 0
    }
}
