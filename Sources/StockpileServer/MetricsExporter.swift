// Prometheus metrics on a port of their own (`stockpile serve --metrics-port`): the server's counters,
// the KPIs of SPEC §6, the stock gauges, the log's progress and the request latency, in the text
// exposition format 0.0.4, answered to a plain HTTP/1.1 `GET /metrics`.
//
// Three parts, so that each can be tested alone: `MetricsSnapshot` (the figures, gathered at once),
// `MetricsExposition` (figures → text, pure), `MetricsHTTP` (request bytes → response bytes, pure),
// and `MetricsExporter` (the socket: one blocking loop on a thread of its own; scrapes are rare, so
// one connection at a time is plenty). What it keeps true: every response closes its connection, no
// request may hold the loop longer than `requestTimeout` or make it buffer more than
// `requestHeadByteCountMax`, and the loop never runs on the cooperative pool.

import Dispatch
import Foundation
import Glibc
import Stockpile
import Synchronization

// MARK: - The figures

/// Everything a scrape reports, gathered once per scrape. Plain values, so a test can build one.
struct MetricsSnapshot: Sendable {
    var commandsProcessed = 0
    var connectionsAccepted = 0
    var connectionsRejected = 0
    var connectionsOpen = 0
    var subscribersOpen = 0
    var subscribersDropped = 0
    var protocolErrors = 0
    var bytesRead = 0
    var bytesWritten = 0
    var uptimeSeconds = 0.0
    var stats = Stats()
    var nextSeq: UInt64 = 0
    var logEnabled = false
    var logLastLSN: UInt64 = 0
    var logAcknowledgedLSN: UInt64 = 0
    var logSyncCount = 0
    var logBatchCount = 0
    var logWritesStopped = false
    /// Request latency since the server started, in seconds: (quantile, value) pairs, the sum and the count.
    var latencyQuantiles: [(quantile: Double, seconds: Double)] = []
    var latencySumSeconds = 0.0
    var latencyCount: UInt64 = 0

    /// The quantiles the latency summary reports.
    static let latencyQuantilesReported = [0.5, 0.99, 0.999]

    /// The figures now. The stock figures come from `Engine.stats()`, assembled from the shards one
    /// after another (README, "Consistency of reads").
    static func collect(engine: Engine, statistics: ServerStatistics) async -> MetricsSnapshot {
        var s = MetricsSnapshot()
        s.commandsProcessed = statistics.commandsProcessed.load(ordering: .relaxed)
        s.connectionsAccepted = statistics.connectionsAccepted.load(ordering: .relaxed)
        s.connectionsRejected = statistics.connectionsRejected.load(ordering: .relaxed)
        s.connectionsOpen = statistics.connectionsOpen.load(ordering: .relaxed)
        s.subscribersOpen = statistics.subscribersOpen.load(ordering: .relaxed)
        s.subscribersDropped = statistics.subscribersDropped.load(ordering: .relaxed)
        s.protocolErrors = statistics.protocolErrors.load(ordering: .relaxed)
        s.bytesRead = statistics.bytesRead.load(ordering: .relaxed)
        s.bytesWritten = statistics.bytesWritten.load(ordering: .relaxed)
        s.uptimeSeconds = Self.seconds(statistics.startedAt.duration(to: .now))
        let latency = statistics.latencySnapshot
        s.latencyQuantiles = latencyQuantilesReported.map { ($0, Double(latency.value(atQuantile: $0)) / 1e9) }
        s.latencyCount = latency.count
        s.latencySumSeconds = latency.mean * Double(latency.count) / 1e9
        let log = engine.logStatus
        s.logEnabled = log.policy != .none
        s.logLastLSN = log.lastLSN
        s.logAcknowledgedLSN = log.acknowledgedLSN
        s.logSyncCount = log.syncCount
        s.logBatchCount = log.batchCount
        s.logWritesStopped = log.failure != nil
        s.stats = await engine.stats()
        s.nextSeq = engine.nextSeq
        return s
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

// MARK: - The text format

/// Renders a snapshot in the Prometheus text exposition format, version 0.0.4: for each family a
/// `# HELP` and a `# TYPE` line, then its samples. Counters end in `_total` and only grow while the
/// process lives; gauges may go either way.
enum MetricsExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(_ s: MetricsSnapshot) -> String {
        var w = Writer()
        let k = s.stats.counters
        w.counter("stockpile_commands_processed_total", "Requests answered, every command counted.", s.commandsProcessed)
        w.family("stockpile_refused_total", "counter", "Mutations refused, by refusal code.")
        for code in RefusalCode.allCases {
            w.sample("stockpile_refused_total", [("code", code.name.lowercased())], "\(s.stats.refused[code] ?? 0)")
        }
        w.counter("stockpile_connections_accepted_total", "Client connections accepted.", s.connectionsAccepted)
        w.counter("stockpile_connections_rejected_total", "Client connections refused for want of room (max clients).", s.connectionsRejected)
        w.gauge("stockpile_connections_open", "Client connections open now.", s.connectionsOpen)
        w.gauge("stockpile_subscribers_open", "Connections subscribed to the event stream now.", s.subscribersOpen)
        w.counter("stockpile_subscribers_dropped_total", "Subscribers disconnected for falling behind their backlog.", s.subscribersDropped)
        w.counter("stockpile_protocol_errors_total", "Connections closed for a framing error.", s.protocolErrors)
        w.counter("stockpile_network_read_bytes_total", "Bytes read from clients.", s.bytesRead)
        w.counter("stockpile_network_written_bytes_total", "Bytes written to clients.", s.bytesWritten)
        w.gauge("stockpile_uptime_seconds", "Seconds since the server started.", s.uptimeSeconds)

        w.counter("stockpile_units_reserved_total", "Units reserved (tracked variants).", k.unitsReserved.units)
        w.counter("stockpile_units_fulfilled_total", "Units shipped (tracked variants).", k.unitsFulfilled.units)
        w.counter("stockpile_units_released_total", "Units released by a RELEASE.", k.unitsReleased.units)
        w.counter("stockpile_units_expired_total", "Units released by the expiry of a hold.", k.unitsExpired.units)
        w.counter("stockpile_stockouts_total", "Changes that took a cell's available from above zero to zero or below.", k.stockouts)
        w.counter("stockpile_shrinkage_units_total", "Units removed by ADJUST damaged or lost.", k.shrinkage.units)
        // A net change per reason: damaged and lost are negative, correction either way, so a gauge.
        w.family("stockpile_adjusted_units", "gauge", "Net on_hand change by ADJUST, by reason code (the adjustment trend).")
        for reason in ReasonCode.allCases {
            w.sample("stockpile_adjusted_units", [("reason", reason.rawValue)], "\(k.adjustedByReason[reason]?.units ?? 0)")
        }
        w.counter("stockpile_cycle_counts_total", "Cycle counts (COUNT).", k.cycleCounts)
        w.counter("stockpile_cycle_counts_without_variance_total", "Cycle counts that found what the books said.", k.cycleCountsWithoutVariance)
        w.gauge("stockpile_stock_accuracy_ratio", "Share of cycle counts without variance (1 when nothing was counted).",
            Double(s.stats.accuracyBasisPoints) / 10_000)

        w.gauge("stockpile_cells", "Stock cells ever used.", s.stats.cells)
        w.gauge("stockpile_warehouses", "Warehouses.", s.stats.warehouses)
        w.gauge("stockpile_variants", "Variants with a cell.", s.stats.variants)
        w.gauge("stockpile_on_hand_units", "Units on hand over every cell.", s.stats.onHand.units)
        w.gauge("stockpile_reserved_units", "Units reserved over every cell.", s.stats.reserved.units)
        w.gauge("stockpile_available_units", "Units available (on hand less reserved) over every cell.", s.stats.available.units)
        w.gauge("stockpile_low_stock_cells", "Cells at or below their variant's low-stock threshold.", s.stats.lowStock)
        w.gauge("stockpile_active_reservations", "Reservations that still hold stock.", s.stats.activeReservations)
        w.gauge("stockpile_ledger_next_seq", "The sequence number the next ledger entry will get.", s.nextSeq)

        w.gauge("stockpile_wal_enabled", "1 when changes are logged (fsync always or interval), 0 with --fsync none.", s.logEnabled ? 1 : 0)
        w.gauge("stockpile_wal_last_lsn", "The last log sequence number handed to the log.", s.logLastLSN)
        w.gauge("stockpile_wal_acknowledged_lsn", "The last log sequence number as safe as the fsync policy promises.", s.logAcknowledgedLSN)
        w.counter("stockpile_wal_syncs_total", "fdatasync calls on the log.", s.logSyncCount)
        w.counter("stockpile_wal_batches_total", "Group-commit batches written to the log.", s.logBatchCount)
        w.gauge("stockpile_wal_writes_stopped", "1 when writes are stopped because the log could not be written.", s.logWritesStopped ? 1 : 0)

        let latency = "stockpile_request_latency_seconds"
        w.family(latency, "summary", "Time from a request's start to the moment its reply may leave (after the log), since the server started.")
        for (q, v) in s.latencyQuantiles { w.sample(latency, [("quantile", Writer.number(q))], Writer.number(v)) }
        w.sample(latency + "_sum", [], Writer.number(s.latencySumSeconds))
        w.sample(latency + "_count", [], "\(s.latencyCount)")
        return w.text
    }

    struct Writer {
        private(set) var text = ""

        mutating func family(_ name: String, _ type: String, _ help: String) {
            text += "# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(type)\n"
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
            text += name
            if !labels.isEmpty {
                text += "{" + labels.map { "\($0.0)=\"\(Self.escapedLabel($0.1))\"" }.joined(separator: ",") + "}"
            }
            text += " \(value)\n"
        }

        mutating func counter<N: BinaryInteger>(_ name: String, _ help: String, _ value: N) {
            family(name, "counter", help)
            sample(name, [], "\(value)")
        }

        mutating func gauge<N: BinaryInteger>(_ name: String, _ help: String, _ value: N) {
            family(name, "gauge", help)
            sample(name, [], "\(value)")
        }

        mutating func gauge(_ name: String, _ help: String, _ value: Double) {
            family(name, "gauge", help)
            sample(name, [], Self.number(value))
        }

        /// A float as the format reads it (Go's ParseFloat): the shortest text that reads back exactly.
        static func number(_ v: Double) -> String {
            if v.isNaN { return "NaN" }
            if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
            return "\(v)"
        }

        static func escapedHelp(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        }

        static func escapedLabel(_ s: String) -> String {
            escapedHelp(s).replacingOccurrences(of: "\"", with: "\\\"")
        }
    }
}

// MARK: - HTTP, without sockets

/// The little HTTP/1.1 the exporter speaks: one request head in, one response out, then close.
enum MetricsHTTP {
    enum Route: Equatable {
        /// `GET /metrics` (or HEAD: the same head, no body).
        case metrics(includeBody: Bool)
        case notFound
        case methodNotAllowed
        case badRequest
    }

    /// The length of the request head (up to and including its blank line), once it has all arrived.
    static func headLength(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") {
                // "\n\n" or "\n\r\n": a blank line ends the head (bare LF is accepted, as most servers do).
                if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if i + 2 < bytes.count && bytes[i + 1] == UInt8(ascii: "\r") && bytes[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// Decides from the request line alone; headers are read (to find the end of the head) but not used.
    static func route(_ head: [UInt8]) -> Route {
        let lineEnd = head.firstIndex(of: UInt8(ascii: "\n")) ?? head.count
        var line = head[..<lineEnd]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard words.count == 3, words[2].starts(with: Array("HTTP/1.".utf8)), let target = words[1].first, target == UInt8(ascii: "/") else {
            return .badRequest
        }
        let method = String(decoding: words[0], as: UTF8.self)
        let path = words[1].split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first.map(Array.init) ?? []
        guard path == Array("/metrics".utf8) else {
            // An unknown path is 404 whatever the method: nothing else lives here.
            return method.isEmpty ? .badRequest : .notFound
        }
        switch method {
        case "GET": return .metrics(includeBody: true)
        case "HEAD": return .metrics(includeBody: false)
        default: return method.isEmpty ? .badRequest : .methodNotAllowed
        }
    }

    /// A complete response that closes the connection.
    static func response(status: Int, reason: String, contentType: String = "text/plain; charset=utf-8", body: String,
                         includeBody: Bool = true, extraHeaders: [String] = []) -> [UInt8] {
        let bodyBytes = Array(body.utf8)
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\n"
        for h in extraHeaders { head += h + "\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (includeBody ? bodyBytes : [])
    }

    /// The response to a request head; `metrics` renders the body and is called only for `/metrics`.
    static func respond(to head: [UInt8], metrics: () -> String) -> [UInt8] {
        switch route(head) {
        case .metrics(let includeBody):
            return response(status: 200, reason: "OK", contentType: MetricsExposition.contentType, body: metrics(), includeBody: includeBody)
        case .notFound:
            return response(status: 404, reason: "Not Found", body: "not found: metrics are at /metrics\n")
        case .methodNotAllowed:
            return response(status: 405, reason: "Method Not Allowed", body: "only GET (and HEAD) are allowed\n", extraHeaders: ["Allow: GET, HEAD"])
        case .badRequest:
            return response(status: 400, reason: "Bad Request", body: "bad request\n")
        }
    }

    static let headTooLarge = response(status: 431, reason: "Request Header Fields Too Large", body: "request head too large\n")
    static let timedOut = response(status: 408, reason: "Request Timeout", body: "request not received in time\n")
}

// MARK: - The socket

/// Serves `GET /metrics` on its own listening socket and thread until stopped.
final class MetricsExporter: Sendable {
    /// Longest request head read. A scraper's request is a few hundred bytes; past this the request is
    /// answered 431 and closed, so no client can make the exporter buffer without bound.
    static let requestHeadByteCountMax = 8 * 1024
    /// Time a client has to send its request head, and then to take the response. One slow client holds
    /// the loop (it serves one connection at a time) for at most this long.
    static let requestTimeout = Duration.seconds(2)
    /// How often the loop looks at the stop flag while no one connects.
    static let stopCheckInterval = Duration.milliseconds(100)

    let port: Int
    private let listener: Int32
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let joined = Mutex(false)

    /// Binds host:port and starts answering on a new thread. `render` produces the body of a scrape; it
    /// runs as a task, so it may await the engine.
    init(host: String, port: Int, render: @escaping @Sendable () async -> String) throws(ServerStartError) {
        let bound: (descriptor: Int32, port: Int)
        do {
            bound = try Socket.listen(host: host, port: port, backlog: 64)
        } catch {
            throw ServerStartError(description: "cannot listen for metrics on \(host):\(port): \(error)")
        }
        listener = bound.descriptor
        self.port = bound.port
        startThread(named: "sp-metrics") { [self] in
            run(render: render)
            finished.signal()
        }
    }

    /// Stops accepting and waits for the thread to end (at most the stop-check interval, or a request
    /// in progress). Safe to call more than once.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        let wait = joined.withLock { j in
            defer { j = true }
            return !j
        }
        guard wait else { return }
        finished.wait()
        Socket.close(listener)
    }

    private func run(render: @escaping @Sendable () async -> String) {
        while !stopping.load(ordering: .relaxed) {
            guard Self.poll(listener, events: Int16(POLLIN), milliseconds: Self.milliseconds(Self.stopCheckInterval)) else { continue }
            let client: Int32?
            do {
                client = try Socket.accept(listener)
            } catch {
                // Out of descriptors: wait a little instead of spinning on the same error.
                usleep(100_000)
                continue
            }
            guard let client else { continue }
            serve(client, render: render)
            Socket.close(client)
        }
    }

    private func serve(_ client: Int32, render: @escaping @Sendable () async -> String) {
        let deadline = ContinuousClock.now + Self.requestTimeout
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        var response: [UInt8]
        while true {
            if let length = MetricsHTTP.headLength(head) {
                response = MetricsHTTP.respond(to: Array(head[..<length])) { Self.wait(for: render) }
                break
            }
            if head.count > Self.requestHeadByteCountMax {
                response = MetricsHTTP.headTooLarge
                break
            }
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else {
                response = MetricsHTTP.timedOut
                break
            }
            guard Self.poll(client, events: Int16(POLLIN), milliseconds: Self.milliseconds(left)) else { continue }
            let transfer = chunk.withUnsafeMutableBytes { Socket.read(client, into: $0) }
            switch transfer {
            case .bytes(let n): head += chunk[..<n]
            case .wouldBlock: continue
            case .closed: return
            }
        }
        write(response, to: client, deadline: ContinuousClock.now + Self.requestTimeout)
        // Half-close, then read what the client may still send (a body we did not want) until it closes:
        // closing with unread input would reset the connection and could destroy the response in flight.
        _ = Glibc.shutdown(client, Int32(SHUT_WR))
        let drainDeadline = ContinuousClock.now + .milliseconds(200)
        var drained = 0
        while drained < 64 * 1024 {
            let left = ContinuousClock.now.duration(to: drainDeadline)
            guard left > .zero, Self.poll(client, events: Int16(POLLIN), milliseconds: Self.milliseconds(left)) else { return }
            switch chunk.withUnsafeMutableBytes({ Socket.read(client, into: $0) }) {
            case .bytes(let n): drained += n
            case .wouldBlock: continue
            case .closed: return
            }
        }
    }

    private func write(_ bytes: [UInt8], to client: Int32, deadline: ContinuousClock.Instant) {
        var offset = 0
        while offset < bytes.count {
            let transfer = bytes.withUnsafeBytes { Socket.write(client, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            switch transfer {
            case .bytes(let n): offset += n
            case .closed: return
            case .wouldBlock:
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero, Self.poll(client, events: Int16(POLLOUT), milliseconds: Self.milliseconds(left)) else { return }
            }
        }
    }

    /// Runs `render` as a task whose jobs run here, on the exporter's thread, and returns its text.
    /// The task must not need the cooperative pool: tests and busy servers can keep its two threads
    /// occupied, and a scrape should still be answered (the engine's reads enter shards synchronously,
    /// so nearly all of it runs right here).
    private static func wait(for render: @escaping @Sendable () async -> String) -> String {
        let executor = CallerThreadExecutor()
        let result = Mutex<String?>(nil)
        Task(executorPreference: executor) {
            let text = await render()
            result.withLock { $0 = text }
            executor.wake()
        }
        executor.runJobs { result.withLock { $0 != nil } }
        return result.withLock { $0 ?? "" }
    }

    /// Waits until `fd` is ready for `events`; false on timeout. EINTR counts as not ready yet: the
    /// callers loop, and their deadlines still hold.
    private static func poll(_ fd: Int32, events: Int16, milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return Glibc.poll(&p, 1, milliseconds) > 0
    }

    /// A poll timeout: whole milliseconds, rounded up so that a deadline is never cut short.
    private static func milliseconds(_ d: Duration) -> Int32 {
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let rest = d.components.attoseconds
        return Int32(clamping: max(1, d.components.seconds * 1000 + rest / perMillisecond + (rest % perMillisecond > 0 ? 1 : 0)))
    }
}

/// A task executor whose jobs run on the thread that calls `runJobs`, while that thread waits for
/// their result.
private final class CallerThreadExecutor: TaskExecutor, Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let ready = DispatchSemaphore(value: 0)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        ready.signal()
    }

    func wake() { ready.signal() }

    /// Runs jobs as they come until `isDone` says so.
    func runJobs(until isDone: () -> Bool) {
        while !isDone() {
            ready.wait()
            while let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }
}
