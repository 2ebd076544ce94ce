// The serial executor of a shard actor. Being isolated to a shard means holding its lock: jobs
// enqueued on the actor run under the lock, and the engine enters a shard synchronously by taking
// the lock (`Shard.withState`). A request to one shard then costs a lock
// instead of two trips through the task scheduler, which on a two-core machine is the difference
// between thread wake-ups on every request and none.

import Dispatch
import Glibc
import Synchronization

final class ShardExecutor: SerialExecutor, Sendable {
    private let mutex = Mutex<Void>(())
    /// The thread holding the lock (0 when none), for `checkIsolated`.
    private let owner = Atomic<UInt>(0)

    private static var currentThread: UInt { UInt(bitPattern: Int(bitPattern: pthread_self())) }

    /// Runs `body` holding the lock. Never nest two calls on one executor (the lock is not
    /// reentrant); nest calls on several executors only in ascending shard order.
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        try mutex.withLock { _ in
            owner.store(Self.currentThread, ordering: .relaxed)
            defer { owner.store(0, ordering: .relaxed) }
            return try body()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        DispatchQueue.global().async {
            self.withLock { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
        }
    }

    func checkIsolated() {
        precondition(owner.load(ordering: .relaxed) == Self.currentThread, "shard state touched without holding the shard")
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}
