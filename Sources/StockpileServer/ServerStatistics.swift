// What INFO reports about the server itself: connections, commands, latency and the rate of
// commands. Counters are atomics so that every batch can count without a shared lock; the latency
// histogram takes one lock per batch, not per request.

import Foundation
import Stockpile
import Synchronization

final class ServerStatistics: Sendable {
    let startedAt = ContinuousClock.now
    let startedAtWallTime = Date()
    let connectionsAccepted = Atomic<Int>(0)
    let connectionsRejected = Atomic<Int>(0)
    let connectionsOpen = Atomic<Int>(0)
    let subscribersOpen = Atomic<Int>(0)
    let subscribersDropped = Atomic<Int>(0)
    let commandsProcessed = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    let bytesRead = Atomic<Int>(0)
    let bytesWritten = Atomic<Int>(0)
    /// Tasks the loops made to run turns: a task runs turn after turn, and a new one is made only
    /// while every one of its loop's is still running a turn (waiting for the log).
    let turnTasksStarted = Atomic<Int>(0)
    /// Turns that found no finished turn's lists to reuse and made their own (`EventLoop.TurnWork`).
    let turnListsMade = Atomic<Int>(0)
    /// Nanoseconds from a request's start to the moment its reply could be revealed (after the log).
    private let latency = Mutex(LatencyHistogram())
    /// The commands per second over the last whole second, sampled by the loop.
    private let rate = Mutex(Rate())

    private struct Rate {
        var sampledAt = ContinuousClock.now
        var commandsAtSample = 0
        var perSecond = 0.0
    }

    /// Counts requests that ended at `end`, given as runs of requests that started together (`count`
    /// requests at `start`): how many, and their latency.
    func recordCompleted(_ runs: InlineFirstArray<StartedRequests>, end: ContinuousClock.Instant) {
        var completed = 0
        latency.withLock { h in
            for i in runs.indices {
                completed += runs[i].count
                // In whole nanoseconds from the duration's components: dividing one Duration by
                // another goes through floating point.
                let (seconds, attoseconds) = runs[i].start.duration(to: end).components
                let nanoseconds = seconds < 0 ? 0 : UInt64(seconds) &* 1_000_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000)
                h.record(nanoseconds, count: UInt64(runs[i].count))
            }
        }
        commandsProcessed.add(completed, ordering: .relaxed)
    }

    var latencySnapshot: LatencyHistogram { latency.withLock { $0 } }

    /// Called by the event loop about ten times a second; updates the rate once a second.
    func sample(now: ContinuousClock.Instant) {
        let commands = commandsProcessed.load(ordering: .relaxed)
        rate.withLock { r in
            let elapsed = now - r.sampledAt
            guard elapsed >= .seconds(1) else { return }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            r.perSecond = Double(commands - r.commandsAtSample) / seconds
            r.sampledAt = now
            r.commandsAtSample = commands
        }
    }

    var commandsPerSecond: Double { rate.withLock { $0.perSecond } }
}

/// Requests of a batch that started together: one, or the reservations of a run (one engine call).
struct StartedRequests: Sendable {
    var start: ContinuousClock.Instant
    var count: Int
}
