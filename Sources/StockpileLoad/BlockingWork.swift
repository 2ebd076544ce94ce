// Where the sale's work runs: on a thread of its own (`ThreadExecutor`) for a target whose channels
// block (a socket), so a blocking call stalls only that thread and never the two threads of the
// cooperative pool; where the caller runs otherwise. Work on a thread of its own also waits with a
// plain sleep of that thread: a task's sleep is woken through the cooperative pool, which the rest
// of a busy process (a test suite) can keep from the sale for seconds.

import Glibc
import StockpileClient

/// Whether the current task runs on a thread of its own (set by `runAllowingBlocking`).
enum OwnThread {
    @TaskLocal static var isCurrent = false
}

/// Waits until `deadline` (see the file's header for how).
func pause(until deadline: ContinuousClock.Instant) async {
    guard OwnThread.isCurrent else {
        try? await Task.sleep(until: deadline, clock: .continuous)
        return
    }
    let wait = deadline - .now
    guard wait > .zero else { return }
    let (seconds, attoseconds) = wait.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A thread each for the sale's concurrent tasks when its channels block; none otherwise.
struct SaleThreads: Sendable {
    let blocking: Bool
    private let executors: [ThreadExecutor]

    init(blocking: Bool, count: Int) {
        self.blocking = blocking
        executors = blocking ? (0..<count).map { ThreadExecutor(name: "flash-sale-\($0)") } : []
    }

    /// The executor a task should start on (nil: the default, the cooperative pool).
    func executor(_ index: Int) -> ThreadExecutor? { blocking ? executors[index] : nil }

    /// Runs `body` knowing whether it is on a thread of its own (see `pause(until:)`).
    func run<T: Sendable>(_ body: () async -> T) async -> T {
        await OwnThread.$isCurrent.withValue(blocking) { await body() }
    }

    /// Ends the threads once their queued work has run.
    func stop() {
        for e in executors { e.stop() }
    }
}

/// Runs `body` on a thread of its own when `blocking`, otherwise where the caller runs.
func runAllowingBlocking<T: Sendable>(_ blocking: Bool, name: String, _ body: () async -> T) async -> T {
    guard blocking else { return await body() }
    let executor = ThreadExecutor(name: name)
    defer { executor.stop() }
    return await withTaskExecutorPreference(executor) { await OwnThread.$isCurrent.withValue(true) { await body() } }
}
