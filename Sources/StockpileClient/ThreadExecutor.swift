// A task executor with one thread of its own, for work that blocks (a `RESPClient` waiting in
// `recv`, a child process): a task that prefers it runs every job there, sleeps included, so a
// blocking call stalls only that thread and never the threads of the cooperative pool — which, on a
// small machine, may be the very threads a server's batches need to answer.

import Foundation
import Synchronization

public final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)

    public init(name: String = "stockpile-blocking") {
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

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Ends the thread once the jobs queued so far have run.
    public func stop() {
        available.signal()
    }
}
