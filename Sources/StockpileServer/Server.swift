// The TCP server an operator starts with `stockpile serve`, or a test starts in-process on a free
// port. It listens, runs its event loops, each on a thread of its own (and, when asked, the metrics
// exporter on another), and shuts down cleanly: it stops accepting, answers what it has already
// received, stops the exporter, then returns so the caller can close the engine (which makes the log
// durable).

import Foundation
import Stockpile
import StockpileProtocol
import Synchronization

/// Why a server could not start.
public struct ServerStartError: Error, CustomStringConvertible {
    public var description: String
}

public final class Server: Sendable {
    public let engine: Engine
    public let configuration: ServerConfiguration
    /// The port actually bound (the configured one, or the one the system picked for port 0).
    public let port: Int
    /// The port Prometheus metrics are served on, when `configuration.metricsPort` asked for them.
    public var metricsPort: Int? { metrics?.port }
    private let metrics: MetricsExporter?
    /// The accepting loop, first, then the others.
    private let loops: [EventLoop]
    private let listener: Int32
    private let finished = DispatchSemaphore(value: 0)
    private let state = Mutex(State.running)
    /// The counters behind INFO and the metrics (read directly by the tests).
    let statistics: ServerStatistics

    private enum State { case running, stopping, stopped }

    /// Binds the port and starts serving on a new thread.
    /// - Throws: `ServerStartError` when the address is not allowed without authentication
    ///   (protected mode), or cannot be bound.
    public init(engine: Engine, configuration: ServerConfiguration, log: @escaping @Sendable (String) -> Void = Server.logToStandardError) throws(ServerStartError) {
        if !ServerConfiguration.isLoopback(configuration.host) && configuration.auth == nil && !configuration.insecure {
            throw ServerStartError(description: """
                refusing to listen on \(configuration.host) without an auth file (protected mode): anyone who can reach \
                the port could change the stock. Pass --auth-file FILE, or --insecure to listen without authentication.
                """)
        }
        Self.raiseDescriptorLimit(toFit: configuration.clientCountMax)
        let bound: (descriptor: Int32, port: Int)
        do {
            bound = try Socket.listen(host: configuration.host, port: configuration.port)
        } catch {
            throw ServerStartError(description: "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        let facts = ServerFacts(port: bound.port, durability: engine.logStatus.policy)
        let statistics = ServerStatistics()
        let handler = RequestHandler(engine: engine, configuration: configuration, statistics: statistics, facts: facts)
        if let metricsPort = configuration.metricsPort {
            do {
                metrics = try MetricsExporter(host: configuration.metricsHost, port: metricsPort) {
                    MetricsExposition.render(await MetricsSnapshot.collect(engine: engine, statistics: statistics))
                }
            } catch {
                Socket.close(bound.descriptor)
                throw error
            }
            if !ServerConfiguration.isLoopback(configuration.metricsHost) {
                log("metrics on \(configuration.metricsHost):\(metrics!.port) can be read by anyone who can reach that address (no authentication)")
            }
        } else {
            metrics = nil
        }
        do {
            let peers = try (1..<configuration.eventLoopCount).map { _ throws(SocketError) in
                try EventLoop(listener: nil, handler: handler, configuration: configuration, statistics: statistics, log: log)
            }
            loops = [try EventLoop(listener: bound.descriptor, peers: peers, handler: handler, configuration: configuration, statistics: statistics, log: log)] + peers
        } catch {
            metrics?.stop()
            Socket.close(bound.descriptor)
            throw ServerStartError(description: "cannot start the event loop: \(error)")
        }
        self.engine = engine
        self.configuration = configuration
        self.port = bound.port
        self.listener = bound.descriptor
        self.statistics = statistics
        let finished = self.finished
        for (k, loop) in loops.enumerated() {
            startThread(named: "sp-loop-\(k)") {
                loop.run()
                finished.signal()
            }
        }
    }

    /// Asks the server to stop: no new connections, nothing more read; what was received is
    /// answered. Returns at once; `waitUntilStopped` waits.
    public func shutdown() {
        let first = state.withLock { s in
            defer { if s == .running { s = .stopping } }
            return s == .running
        }
        // To the accepting loop, which passes it on once it has stopped accepting.
        if first { loops[0].post(.shutdown) }
    }

    /// Blocks until every loop has finished (call off the cooperative pool, or use `stop()`).
    public func waitUntilStopped() {
        let wait = state.withLock { $0 != .stopped }
        guard wait else { return }
        for _ in loops { finished.wait() }
        state.withLock { $0 = .stopped }
        Socket.close(listener)
        metrics?.stop()
    }

    /// Shuts down and waits, without blocking the cooperative pool.
    public func stop() async {
        shutdown()
        await stopped()
    }

    /// Waits until the server has stopped (after `shutdown`, from a signal handler say), without
    /// blocking the cooperative pool.
    public func stopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                self.waitUntilStopped()
                continuation.resume()
            }
        }
    }

    @Sendable public static func logToStandardError(_ line: String) {
        FileHandle.standardError.write(Data("stockpile: \(line)\n".utf8))
    }

    /// Every connection needs a descriptor: raise the soft limit toward the hard one so that
    /// `clientCountMax` connections fit (with room for the log and the listener).
    private static func raiseDescriptorLimit(toFit clients: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = rlim_t(clients + 64)
        if limit.rlim_cur < wanted {
            limit.rlim_cur = min(wanted, limit.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}
