// Parallel work over a few large parts (the halves of a seed file, of an import's rows): each part on
// a thread of its own, their results in order. The caller's `body` must be safe to run on several
// threads at once (it reads shared input and builds its own result).

import Dispatch

/// `[body(0), …, body(count - 1)]`, computed on up to `count` threads at once.
public func concurrentMap<T>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    precondition(count >= 0)
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        guard let base = buffer.baseAddress else { return }
        nonisolated(unsafe) let results = base
        DispatchQueue.concurrentPerform(iterations: count) { k in
            // Each iteration initializes only its own element.
            (results + k).initialize(to: body(k))
        }
        initialized = count
    }
}
