// A task executor with one thread of its own, for work that blocks (a channel on a socket): a task
// that prefers it runs every job there, sleeps included, so a blocking call stalls only that thread
// and never the two threads of the cooperative pool.

import Foundation
import Synchronization

final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in
            while true {
                available.wait()
                // A wake-up with nothing queued is `stop`'s.
                guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { return }
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
        thread.name = name
        thread.stackSize = 4 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Ends the thread once the jobs queued so far have run.
    func stop() {
        available.signal()
    }
}

/// Runs `body` on a thread of its own when `blocking`, otherwise where the caller runs.
func runAllowingBlocking<T: Sendable>(_ blocking: Bool, name: String, _ body: () async -> T) async -> T {
    guard blocking else { return await body() }
    let executor = ThreadExecutor(name: name)
    defer { executor.stop() }
    return await withTaskExecutorPreference(executor) { await body() }
}
