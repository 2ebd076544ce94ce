// Where the sale's work runs: on a thread of its own (`ThreadExecutor`) for a target whose channels
// block (a socket), so a blocking call stalls only that thread and never the two threads of the
// cooperative pool; where the caller runs otherwise.

import StockpileServer

/// Runs `body` on a thread of its own when `blocking`, otherwise where the caller runs.
func runAllowingBlocking<T: Sendable>(_ blocking: Bool, name: String, _ body: () async -> T) async -> T {
    guard blocking else { return await body() }
    let executor = ThreadExecutor(name: name)
    defer { executor.stop() }
    return await withTaskExecutorPreference(executor) { await body() }
}
