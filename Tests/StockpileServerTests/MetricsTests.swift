// The Prometheus exporter: the text rendered from known figures, line by line; the well-formedness of
// the whole exposition; the HTTP routing as a table; and a live server whose `/metrics` is read over a
// raw socket before and after some RESERVEs, with 404, 405, 431 and 408 answers.

import Foundation
import Glibc
import Stockpile
import StockpileProtocol
import Testing

@testable import StockpileServer

/// Known figures, each distinct, so a line can only match its own figure.
private func knownSnapshot() -> MetricsSnapshot {
    var s = MetricsSnapshot()
    s.commandsProcessed = 42
    s.connectionsAccepted = 5
    s.connectionsRejected = 1
    s.connectionsOpen = 3
    s.subscribersOpen = 2
    s.subscribersDropped = 4
    s.protocolErrors = 6
    s.bytesRead = 1000
    s.bytesWritten = 2000
    s.uptimeSeconds = 12.5
    s.stats.cells = 11
    s.stats.warehouses = 2
    s.stats.variants = 9
    s.stats.onHand = 100
    s.stats.reserved = 30
    s.stats.lowStock = 1
    s.stats.activeReservations = 8
    s.stats.counters.unitsReserved = 50
    s.stats.counters.unitsFulfilled = 15
    s.stats.counters.unitsReleased = 4
    s.stats.counters.unitsExpired = 1
    s.stats.counters.stockouts = 7
    s.stats.counters.shrinkage = 3
    s.stats.counters.adjustedByReason = [.received: 120, .damaged: -2, .lost: -1, .correction: -5]
    s.stats.counters.cycleCounts = 4
    s.stats.counters.cycleCountsWithoutVariance = 3
    s.stats.refused = [.insufficient: 13, .conflict: 2]
    s.nextSeq = 77
    s.logEnabled = true
    s.logLastLSN = 70
    s.logAcknowledgedLSN = 69
    s.logSyncCount = 21
    s.logBatchCount = 22
    s.latencyQuantiles = [(0.5, 0.00025), (0.99, 0.001), (0.999, 0.004)]
    s.latencySumSeconds = 0.375
    s.latencyCount = 1000
    return s
}

/// The lines of a family: HELP, TYPE, then its samples, in the order they are rendered.
private func family(_ text: String, _ name: String) -> [String] {
    let lines = text.split(separator: "\n").map(String.init)
    guard let start = lines.firstIndex(where: { $0.hasPrefix("# HELP \(name) ") }) else { return [] }
    var out = [lines[start]]
    for line in lines[(start + 1)...] {
        if line.hasPrefix("# HELP ") { break }
        out.append(line)
    }
    return out
}

/// One HTTP exchange on a raw socket: sends `request`, then reads until the server closes. Returns
/// what came back.
private func exchange(port: Int, _ request: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    try #require(connected == 0, "connect errno \(errno)")
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }
    send(request)
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        received += buffer[..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

/// The value of an unlabelled sample (or one with the labels given, as written) in an exposition.
private func value(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}

@Suite("Prometheus metrics")
struct MetricsTests {

    // MARK: Rendering

    @Test("known figures render as exact lines, each family with its HELP and TYPE")
    func renderKnownFigures() {
        let text = MetricsExposition.render(knownSnapshot())
        #expect(family(text, "stockpile_commands_processed_total") == [
            "# HELP stockpile_commands_processed_total Requests answered, every command counted.",
            "# TYPE stockpile_commands_processed_total counter",
            "stockpile_commands_processed_total 42",
        ])
        #expect(family(text, "stockpile_refused_total") == [
            "# HELP stockpile_refused_total Mutations refused, by refusal code.",
            "# TYPE stockpile_refused_total counter",
            #"stockpile_refused_total{code="invalid"} 0"#,
            #"stockpile_refused_total{code="limit"} 0"#,
            #"stockpile_refused_total{code="conflict"} 2"#,
            #"stockpile_refused_total{code="notfound"} 0"#,
            #"stockpile_refused_total{code="inactive"} 0"#,
            #"stockpile_refused_total{code="closed"} 0"#,
            #"stockpile_refused_total{code="expired"} 0"#,
            #"stockpile_refused_total{code="negative"} 0"#,
            #"stockpile_refused_total{code="insufficient"} 13"#,
            #"stockpile_refused_total{code="readonly"} 0"#,
        ])
        #expect(family(text, "stockpile_request_latency_seconds") == [
            "# HELP stockpile_request_latency_seconds Time from a request's start to the moment its reply may leave (after the log), since the server started.",
            "# TYPE stockpile_request_latency_seconds summary",
            #"stockpile_request_latency_seconds{quantile="0.5"} 0.00025"#,
            #"stockpile_request_latency_seconds{quantile="0.99"} 0.001"#,
            #"stockpile_request_latency_seconds{quantile="0.999"} 0.004"#,
            "stockpile_request_latency_seconds_sum 0.375",
            "stockpile_request_latency_seconds_count 1000",
        ])
        let adjusted = family(text, "stockpile_adjusted_units")
        #expect(adjusted.count == 2 + ReasonCode.allCases.count)
        #expect(adjusted[1] == "# TYPE stockpile_adjusted_units gauge", "a net change can fall: not a counter")
        #expect(adjusted.contains(#"stockpile_adjusted_units{reason="received"} 120"#))
        #expect(adjusted.contains(#"stockpile_adjusted_units{reason="damaged"} -2"#))
        #expect(adjusted.contains(#"stockpile_adjusted_units{reason="correction"} -5"#))
        #expect(adjusted.contains(#"stockpile_adjusted_units{reason="found"} 0"#))

        let expectedSamples = [
            "stockpile_connections_accepted_total 5", "stockpile_connections_rejected_total 1", "stockpile_connections_open 3",
            "stockpile_subscribers_open 2", "stockpile_subscribers_dropped_total 4", "stockpile_protocol_errors_total 6",
            "stockpile_network_read_bytes_total 1000", "stockpile_network_written_bytes_total 2000", "stockpile_uptime_seconds 12.5",
            "stockpile_units_reserved_total 50", "stockpile_units_fulfilled_total 15", "stockpile_units_released_total 4",
            "stockpile_units_expired_total 1", "stockpile_stockouts_total 7", "stockpile_shrinkage_units_total 3",
            "stockpile_cycle_counts_total 4", "stockpile_cycle_counts_without_variance_total 3", "stockpile_stock_accuracy_ratio 0.75",
            "stockpile_cells 11", "stockpile_warehouses 2", "stockpile_variants 9", "stockpile_on_hand_units 100",
            "stockpile_reserved_units 30", "stockpile_available_units 70", "stockpile_low_stock_cells 1",
            "stockpile_active_reservations 8", "stockpile_ledger_next_seq 77", "stockpile_wal_enabled 1", "stockpile_wal_last_lsn 70",
            "stockpile_wal_acknowledged_lsn 69", "stockpile_wal_syncs_total 21", "stockpile_wal_batches_total 22",
            "stockpile_wal_writes_stopped 0",
        ]
        let lines = Set(text.split(separator: "\n").map(String.init))
        for sample in expectedSamples { #expect(lines.contains(sample), "missing: \(sample)") }
    }

    @Test("the whole exposition is well formed: prefixed names, one HELP and TYPE per family before its samples, no sample twice")
    func expositionIsWellFormed() throws {
        let text = MetricsExposition.render(knownSnapshot())
        #expect(text.hasSuffix("\n"))
        var typed: [String: String] = [:]
        var helped = Set<String>()
        var samples = Set<String>()
        let sampleShape = try Regex(#"^(stockpile_[a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$"#)
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# HELP ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(helped.insert(name).inserted, "HELP twice for \(name)")
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 4)
                let name = String(parts[2])
                #expect(helped.contains(name), "TYPE before HELP for \(name)")
                #expect(typed[name] == nil, "TYPE twice for \(name)")
                #expect(["counter", "gauge", "summary"].contains(String(parts[3])))
                typed[name] = String(parts[3])
            } else {
                let match = try #require(try sampleShape.wholeMatch(in: line), "malformed line: \(line)")
                let name = String(match.output[1].substring!)
                let base = typed[name] != nil ? name : String(name.replacing(/_(sum|count)$/, with: ""))
                let type = try #require(typed[base], "sample before its TYPE: \(line)")
                if type == "counter" { #expect(name.hasSuffix("_total"), "a counter is named …_total: \(name)") }
                let identity = String(line.prefix { $0 != " " })
                #expect(samples.insert(identity).inserted, "sample twice: \(identity)")
            }
        }
        #expect(typed.count >= 35)
    }

    @Test("help text and label values are escaped as the format says")
    func escaping() {
        var w = MetricsExposition.Writer()
        w.family("stockpile_x", "gauge", "a \\ b\nc")
        w.sample("stockpile_x", [("l", "q\"\\\n")], "1")
        #expect(w.text == "# HELP stockpile_x a \\\\ b\\nc\n# TYPE stockpile_x gauge\nstockpile_x{l=\"q\\\"\\\\\\n\"} 1\n")
        #expect(MetricsExposition.Writer.number(.nan) == "NaN")
        #expect(MetricsExposition.Writer.number(-.infinity) == "-Inf")
        #expect(MetricsExposition.Writer.number(1e-7) == "1e-07")
    }

    // MARK: HTTP, without sockets

    @Test(
        "a request line routes to metrics, 404, 405 or 400",
        arguments: [
            ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", MetricsHTTP.Route.metrics(includeBody: true)),
            ("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", .metrics(includeBody: true)),
            ("HEAD /metrics HTTP/1.1\r\n\r\n", .metrics(includeBody: false)),
            ("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n", .methodNotAllowed),
            ("DELETE /metrics HTTP/1.1\r\n\r\n", .methodNotAllowed),
            ("GET / HTTP/1.1\r\n\r\n", .notFound),
            ("GET /metricsx HTTP/1.1\r\n\r\n", .notFound),
            ("POST /other HTTP/1.1\r\n\r\n", .notFound),
            ("GET /metrics\r\n\r\n", .badRequest),
            ("GET metrics HTTP/1.1\r\n\r\n", .badRequest),
            ("GET  /metrics HTTP/1.1\r\n\r\n", .badRequest),
            ("\u{16}\u{03}\u{01}\u{02}\r\n\r\n", .badRequest),
        ])
    func routing(_ request: String, _ route: MetricsHTTP.Route) {
        #expect(MetricsHTTP.route(Array(request.utf8)) == route)
    }

    @Test("the head ends at the first blank line, CRLF or bare LF, and not before it has all arrived")
    func headLength() {
        #expect(MetricsHTTP.headLength(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody".utf8)) == 34)
        #expect(MetricsHTTP.headLength(Array("GET /metrics HTTP/1.1\n\n".utf8)) == 23)
        #expect(MetricsHTTP.headLength(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) == nil)
        #expect(MetricsHTTP.headLength(Array("GET /metrics HTTP/1.1\r\n\r".utf8)) == nil)
        #expect(MetricsHTTP.headLength([]) == nil)
    }

    @Test("responses carry their length, type and Connection: close; HEAD has no body; 405 says what is allowed")
    func responses() {
        var rendered = 0
        let ok = String(decoding: MetricsHTTP.respond(to: Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)) { rendered += 1; return "a 1\n" }, as: UTF8.self)
        #expect(ok == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n")
        let head = String(decoding: MetricsHTTP.respond(to: Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8)) { "a 1\n" }, as: UTF8.self)
        #expect(head.hasSuffix("Content-Length: 4\r\nConnection: close\r\n\r\n"))
        let refused = String(decoding: MetricsHTTP.respond(to: Array("PUT /metrics HTTP/1.1\r\n\r\n".utf8)) { rendered += 1; return "" }, as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(refused.contains("\r\nAllow: GET, HEAD\r\n"))
        let missing = String(decoding: MetricsHTTP.respond(to: Array("GET /x HTTP/1.1\r\n\r\n".utf8)) { rendered += 1; return "" }, as: UTF8.self)
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(rendered == 1, "only /metrics gathers the figures")
    }

    // MARK: A live server

    @Test("GET /metrics on a live server: the counters move with RESERVEs; other paths 404, other methods 405")
    func liveServer() async throws {
        try await withServer(configure: { $0.metricsPort = 0 }) { server in
            let metricsPort = try #require(server.server.metricsPort)
            #expect(metricsPort != server.port)
            _ = try server.call("ADJUST", "SKU-1", "MAIN", "10", "REASON", "received")

            let before = try exchange(port: metricsPort, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(before.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
            let beforeBody = String(before[try #require(before.range(of: "\r\n\r\n")).upperBound...])
            #expect(before.contains("\r\nContent-Length: \(beforeBody.utf8.count)\r\n"))
            #expect(value(beforeBody, "stockpile_units_reserved_total") == 0)
            #expect(value(beforeBody, "stockpile_on_hand_units") == 10)
            let commandsBefore = try #require(value(beforeBody, "stockpile_commands_processed_total"))
            let latencyCountBefore = try #require(value(beforeBody, "stockpile_request_latency_seconds_count"))

            let client = try server.client()
            for i in 1...3 { #expect(try client.call(["RESERVE", "order-\(i)", "SKU-1", "MAIN", "2"])?[field: "status"]?.textValue == "active") }
            #expect(try client.call(["RESERVE", "order-4", "SKU-1", "MAIN", "5"])?.errorText?.hasPrefix("INSUFFICIENT") == true)

            let after = try exchange(port: metricsPort, "GET /metrics HTTP/1.1\r\n\r\n")
            #expect(value(after, "stockpile_units_reserved_total") == 6)
            #expect(value(after, "stockpile_reserved_units") == 6)
            #expect(value(after, "stockpile_available_units") == 4)
            #expect(value(after, "stockpile_active_reservations") == 3)
            #expect(value(after, #"stockpile_refused_total{code="insufficient"}"#) == 1)
            #expect(try #require(value(after, "stockpile_commands_processed_total")) >= commandsBefore + 4)
            #expect(try #require(value(after, "stockpile_request_latency_seconds_count")) >= latencyCountBefore + 4)
            #expect(try #require(value(after, #"stockpile_request_latency_seconds{quantile="0.5"}"#)) > 0)
            #expect(try #require(value(after, "stockpile_connections_open")) >= 1, "the client above is still connected")
            #expect(value(after, "stockpile_wal_enabled") == 0, "the test engine keeps no log")

            let notFound = try exchange(port: metricsPort, "GET /favicon.ico HTTP/1.1\r\n\r\n")
            #expect(notFound.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
            let notAllowed = try exchange(port: metricsPort, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
            #expect(notAllowed.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
            #expect(notAllowed.contains("\r\nAllow: GET, HEAD\r\n"))
            let head = try exchange(port: metricsPort, "HEAD /metrics HTTP/1.1\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n"), "HEAD: the head only")
        }
    }

    @Test("a huge request head is answered 431, a slow one 408, and the exporter goes on serving")
    func hugeAndSlowRequests() async throws {
        try await withServer(configure: { $0.metricsPort = 0 }) { server in
            let metricsPort = try #require(server.server.metricsPort)
            let huge = try exchange(port: metricsPort, "GET /metrics HTTP/1.1\r\nX-Padding: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
            #expect(huge.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))

            let started = ContinuousClock.now
            // The head never ends: the exporter gives up after its timeout.
            let slow = try exchange(port: metricsPort, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
            #expect(slow.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
            #expect(started.duration(to: .now) >= MetricsExporter.requestTimeout)

            let fine = try exchange(port: metricsPort, "GET /metrics HTTP/1.1\r\n\r\n")
            #expect(fine.hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
    }

    @Test("without --metrics-port nothing is served")
    func offByDefault() async throws {
        try await withServer { server in
            #expect(server.server.metricsPort == nil)
        }
    }
}
