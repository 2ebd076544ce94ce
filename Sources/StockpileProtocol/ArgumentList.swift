// The arguments of one request as the parser leaves them: their bytes once, in one array, and where
// each ends. A request of five words is one allocation, not six, and the command table reads each
// word as a slice of that array, so it compares option words and command names without creating a
// String or an array per word (STYLE.md, "Hot paths": argument slices, no String per word).
//
// Layout of `storage`: `count` end offsets (UInt32, native byte order, each an index into `storage`
// itself), then the arguments' bytes back to back. Argument 0 starts right after the offsets;
// argument i starts where argument i - 1 ends. The layout is canonical, so two lists are equal
// exactly when their words are.

public struct ArgumentList: Hashable, Sendable {
    /// The end offsets, then the bytes (see the file header).
    private let storage: [UInt8]
    /// How many arguments there are.
    public let count: Int

    static let offsetByteCount = MemoryLayout<UInt32>.size

    /// A list of the given words; for tests, tools and the inline form. O(total bytes), one allocation.
    public init(_ words: [[UInt8]]) {
        var byteCount = 0
        for word in words { byteCount += word.count }
        self.init(count: words.count, byteCount: byteCount) { next in
            for word in words { word.withUnsafeBufferPointer { next($0) } }
        }
    }

    /// A list of the UTF-8 of the given words.
    public init(_ words: [String]) {
        self.init(words.map { Array($0.utf8) })
    }

    /// Builds a list of `count` arguments totalling `byteCount` bytes in one allocation: `fill` is
    /// handed a function to call once per argument, in order, with its bytes.
    init(
        count: Int, byteCount: Int,
        fill: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void
    ) {
        let headerByteCount = count * Self.offsetByteCount
        let total = headerByteCount + byteCount
        precondition(total <= Int(UInt32.max), "a request's arguments are limited to 4 GiB")
        self.count = count
        self.storage = [UInt8](unsafeUninitializedCapacity: total) { buffer, initializedCount in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var index = 0
            var end = headerByteCount
            fill { word in
                precondition(index < count && end + word.count <= total, "more argument bytes than announced")
                if let base = word.baseAddress, word.count > 0 {
                    (raw.baseAddress! + end).copyMemory(from: base, byteCount: word.count)
                }
                end += word.count
                raw.storeBytes(of: UInt32(truncatingIfNeeded: end), toByteOffset: index * Self.offsetByteCount, as: UInt32.self)
                index += 1
            }
            precondition(index == count && end == total, "fewer arguments or bytes than announced")
            initializedCount = total
        }
    }

    public var isEmpty: Bool { count == 0 }

    /// Where argument `index` ends in `storage`.
    @inline(__always)
    private func end(_ index: Int) -> Int {
        Int(storage.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index * Self.offsetByteCount, as: UInt32.self) })
    }

    /// The bytes of argument `index`, as a slice of the list's one array: no copy, no allocation.
    public subscript(index: Int) -> ArraySlice<UInt8> {
        precondition(index >= 0 && index < count, "argument index out of range")
        let start = index == 0 ? count * Self.offsetByteCount : end(index - 1)
        return storage[start..<end(index)]
    }

    /// Every argument as its own array: for tests and messages, not for the hot path.
    public var words: [[UInt8]] {
        (0..<count).map { Array(self[$0]) }
    }
}

extension ArgumentList: CustomStringConvertible {
    public var description: String {
        "[" + words.map { "\"" + String(decoding: $0, as: UTF8.self) + "\"" }.joined(separator: ", ") + "]"
    }
}
