// How a server is set up: where it listens, who may do what, and the limits of SPEC §5 that concern
// connections. Each limit says why it has its value.

import Foundation
import Stockpile
import StockpileProtocol

public struct ServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (tests); the bound port is `Server.port`.
    public var port: Int
    /// Tokens and their roles; nil means no authentication, which is only allowed on loopback
    /// unless `insecure` is set (protected mode, as Redis has).
    public var auth: AuthTable?
    public var insecure: Bool
    public var protocolLimits: ProtocolLimits
    /// Open connections. Each costs a descriptor and a few KiB; the process raises its descriptor
    /// limit to fit at start.
    public var clientCountMax: Int
    /// Bytes queued for a subscriber that does not read. Past it the subscriber is disconnected, so a
    /// slow reader never holds memory or slows anyone else.
    public var subscriberBacklogByteCountMax: Int
    /// Bytes of replies queued for a client before the server stops reading its requests: a client
    /// that pipelines without reading gets back-pressure, not unbounded buffering.
    public var replyBacklogByteCountMax: Int
    /// Requests taken from one connection's pipeline into one batch, so one busy client cannot keep
    /// the others waiting for long.
    public var batchRequestCountMax: Int
    /// Where Prometheus metrics are served (`GET /metrics`); nil serves none. 0 picks a free port
    /// (tests); the bound port is `Server.metricsPort`.
    public var metricsPort: Int?
    /// Loopback by default. The metrics are read-only aggregate figures and have no authentication:
    /// another address is the operator's explicit choice, and the server says so when it starts.
    public var metricsHost: String
    /// Whether RESET may run (admin role still required): off unless the operator asks, since it
    /// empties the engine (SPEC §6: for test deployments).
    public var allowReset: Bool
    /// Event loops, each a thread of its own serving its share of the connections. A loop is one
    /// core's worth of reading, deciding and writing, and the engine's shards let loops run side by
    /// side (see the README's design section). One per core unless given (`eventLoopCountDefault`);
    /// `stockpile serve` gives `eventLoopCountDefault(for:)` of its durability unless told.
    public var eventLoopCount: Int

    public static let portDefault = 7379
    public static let clientCountDefault = 10_000
    public static let subscriberBacklogByteCountDefault = 8 * 1024 * 1024
    public static let replyBacklogByteCountDefault = 4 * 1024 * 1024
    /// `batchRequestCountMax` unless set.
    public static let batchRequestCountMaxDefault = 256
    public static let eventLoopCountMax = 64
    /// One loop per core.
    public static var eventLoopCountDefault: Int {
        min(eventLoopCountMax, max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The loops a server of `durability` runs unless told: one fewer than the cores (at least one),
    /// whatever the durability, so that a core is left for the clients on the same host, the kernel's
    /// network work and the log's thread; with a loop on every core the scheduler preempts loops
    /// mid-turn, holding up all of a loop's connections at once. On this project's 2-core machine,
    /// beside `redis-benchmark`: without a log, RESERVE p99 at pipeline 1 was 2.5-4.4 ms with two loops
    /// and 1.2-1.4 ms with one, and at pipeline 16 one loop served as many or more. With `always`, two
    /// loops served more at pipeline 1 while the log's thread made every sync (37,000-39,000 against
    /// 32,000-36,000 RESERVEs/s); since a loop commits its own turn's records (`WakeDeferral`), one
    /// loop does: 35,500-47,800/s against 35,600-39,400 on 100,000 cells and 43,700-50,800 against
    /// 37,000-45,600 on one cell (three alternating pairs each), at 18-26 µs of server CPU per request
    /// against 22-29, as many at pipeline 16 (214,000-242,000 against 227,000-235,000), and the flash
    /// sale's server-side p99 0.73-0.99 ms against 1.09-1.11 ms (two pairs).
    public static func eventLoopCountDefault(for durability: DurabilityPolicy) -> Int {
        max(1, eventLoopCountDefault - 1)
    }

    public init(
        host: String = "127.0.0.1", port: Int = portDefault, auth: AuthTable? = nil, insecure: Bool = false,
        protocolLimits: ProtocolLimits = ProtocolLimits(), clientCountMax: Int = clientCountDefault,
        subscriberBacklogByteCountMax: Int = subscriberBacklogByteCountDefault,
        replyBacklogByteCountMax: Int = replyBacklogByteCountDefault, batchRequestCountMax: Int = batchRequestCountMaxDefault,
        metricsPort: Int? = nil, metricsHost: String = "127.0.0.1", allowReset: Bool = false,
        eventLoopCount: Int = eventLoopCountDefault
    ) {
        precondition((1...Self.eventLoopCountMax).contains(eventLoopCount), "1 to \(Self.eventLoopCountMax) event loops")
        self.eventLoopCount = eventLoopCount
        self.allowReset = allowReset
        self.host = host
        self.port = port
        self.auth = auth
        self.insecure = insecure
        self.protocolLimits = protocolLimits
        self.clientCountMax = clientCountMax
        self.subscriberBacklogByteCountMax = subscriberBacklogByteCountMax
        self.replyBacklogByteCountMax = replyBacklogByteCountMax
        self.batchRequestCountMax = batchRequestCountMax
        self.metricsPort = metricsPort
        self.metricsHost = metricsHost
    }

    /// True for the addresses that only this machine can reach.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
