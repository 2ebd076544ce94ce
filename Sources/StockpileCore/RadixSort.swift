// Sorting many 64-bit hashes (a seed file's millions of cells, checked for repeats): a least-
// significant-digit radix sort, six passes of 11 bits through one scratch buffer, with every pass's
// counts taken in one read first. For uniformly spread keys it does a fixed amount of sequential work
// per key, where a comparison sort does about log2(n) compares and moves (23 at 10,000,000 keys).

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
