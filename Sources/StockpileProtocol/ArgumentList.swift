// The arguments of one request as the parser leaves them: their bytes once, and where each ends. The
// requests of one batch share one array, so a pipeline of sixteen requests is two allocations (the
// bytes and the list of requests), not one per argument, and the command table reads each word as a
// slice of that array: it compares option words and command names without creating a String or an
// array per word (STYLE.md, "Hot paths": argument slices, no String per word).
//
// Layout of a request's region of `storage`, from `base`: `count` end offsets (UInt32, native byte
// order, each an index into `storage` itself), then the arguments' bytes back to back. Argument 0
// starts right after the offsets; argument i starts where argument i - 1 ends.

public struct ArgumentList: Sendable {
    /// The regions of one or more requests (see the file header).
    private let storage: [UInt8]
    /// Where this request's region starts in `storage`.
    private let base: Int
    /// How many arguments there are.
    public let count: Int

    static let offsetByteCount = MemoryLayout<UInt32>.size

    /// A list of the given words in an array of its own; for tests, tools and single requests.
    /// O(total bytes), one allocation.
    public init(_ words: [[UInt8]]) {
        var byteCount = 0
        for word in words { byteCount += word.count }
        var storage: [UInt8] = []
        storage.reserveCapacity(words.count * Self.offsetByteCount + byteCount)
        Self.pack(count: words.count, into: &storage) { next in
            for word in words { word.withUnsafeBufferPointer { next($0) } }
        }
        self.init(storage: storage, base: 0, count: words.count)
    }

    /// The bytes this request shares with the others of its batch (`RequestParser.recycle`).
    var sharedStorage: [UInt8] { storage }

    /// The request whose region starts at `base` in `storage`, as `pack` wrote it.
    init(storage: [UInt8], base: Int, count: Int) {
        self.storage = storage
        self.base = base
        self.count = count
    }

    /// Appends the region of a request of `count` arguments to `storage`: `fill` is handed a
    /// function to call once per argument, in order, with its bytes. Returns the region's base.
    @discardableResult
    static func pack(
        count: Int, into storage: inout [UInt8],
        _ fill: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void
    ) -> Int {
        let base = storage.count
        // The offsets, gathered on the stack and written once the arguments are in: an append per
        // offset byte and a write per argument checked the array's uniqueness each time.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: count) { ends in
            ends.initialize(repeating: 0)
            storage.append(contentsOf: UnsafeRawBufferPointer(start: ends.baseAddress, count: count * offsetByteCount))
            var index = 0
            fill { word in
                precondition(index < count, "more arguments than announced")
                storage.append(contentsOf: word)
                precondition(storage.count <= Int(UInt32.max), "a batch's arguments are limited to 4 GiB")
                ends[index] = UInt32(truncatingIfNeeded: storage.count)
                index += 1
            }
            precondition(index == count, "fewer arguments than announced")
            if count > 0 {
                storage.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: base).copyMemory(from: ends.baseAddress!, byteCount: count * offsetByteCount) }
            }
        }
        return base
    }

    public var isEmpty: Bool { count == 0 }

    /// Where argument `index` ends in `storage`.
    @inline(__always)
    private func end(_ index: Int) -> Int {
        Int(storage.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: base + index * Self.offsetByteCount, as: UInt32.self) })
    }

    /// The bytes of argument `index`, as a slice of the shared array: no copy, no allocation.
    public subscript(index: Int) -> ArraySlice<UInt8> {
        precondition(index >= 0 && index < count, "argument index out of range")
        let start = index == 0 ? base + count * Self.offsetByteCount : end(index - 1)
        return storage[start..<end(index)]
    }

    /// True when the command's name (the first argument) spells `upper`, an upper-case ASCII name,
    /// in any ASCII case: a look at the name without parsing the request.
    public func names(_ upper: String) -> Bool {
        !isEmpty && Words.equalsIgnoringCase(self[0], upper)
    }

    /// Every argument as its own array: for tests and messages, not for the hot path.
    public var words: [[UInt8]] {
        (0..<count).map { Array(self[$0]) }
    }
}
