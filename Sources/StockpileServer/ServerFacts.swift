// What the server says about itself: the facts HELLO answers with, the command list COMMAND
// gives, and INFO's Redis-style text sections (server, clients, persistence, stats, stock).

import Foundation
import Stockpile
import StockpileProtocol

struct ServerFacts: Sendable {
    static let version = "0.4.0"
    var port: Int
    var durability: DurabilityPolicy
    let processID = Int(getpid())

    /// HELLO's reply, as Redis 6+ gives it (clients read `proto` to confirm the switch).
    func hello(session: SessionState) -> [RecordField] {
        [
            RecordField("server", .text("stockpile")),
            RecordField("version", .text(Self.version)),
            RecordField("proto", .integer(Int64(session.version.rawValue))),
            RecordField("id", .integer(Int64(session.id))),
            RecordField("mode", .text("standalone")),
            RecordField("role", .text("master")),
            RecordField("modules", .array([])),
        ]
    }

}

/// The commands the server knows, for COMMAND and COMMAND COUNT.
enum CommandCatalog {
    struct Entry {
        var name: String
    }

    static let entries: [Entry] = [
        "PING", "RESERVE", "EXTEND", "CONFIRM", "RELEASE", "FULFILL", "ADJUST", "SETQTY", "COUNT", "TRANSFER", "RETURN", "STOCK",
        "RESERVATION", "LOWSTOCK", "BACKORDERS", "HISTORY", "EVENTS", "WAREHOUSE", "POLICY", "STATS", "INFO", "SNAPSHOT",
        "SUBSCRIBE", "UNSUBSCRIBE", "AUTH", "HELLO", "COMMAND", "CLIENT", "SELECT", "CONFIG", "QUIT", "ECHO",
        "RESET",
    ].map { Entry(name: $0) }
}

extension RequestHandler {
    /// INFO: `# Section` headers and `field:value` lines, CRLF-separated, as Redis writes them.
    /// `section` picks one (case-insensitive); nil, `all`, `everything` or `default` give them all.
    func infoText(section: String?) async -> String {
        let wanted = section?.lowercased()
        let all = wanted == nil || wanted == "all" || wanted == "everything" || wanted == "default"
        var out = ""
        func add(_ name: String, _ fields: [(String, String)]) {
            guard all || wanted == name.lowercased() else { return }
            if !out.isEmpty { out += "\r\n" }
            out += "# \(name)\r\n"
            for (k, v) in fields { out += "\(k):\(v)\r\n" }
        }
        let s = statistics
        let uptime = s.startedAt.duration(to: .now).components.seconds
        add("Server", [
            ("stockpile_version", ServerFacts.version), ("redis_mode", "standalone"), ("os", "Linux"),
            ("process_id", "\(facts.processID)"), ("tcp_port", "\(facts.port)"), ("uptime_in_seconds", "\(uptime)"),
            ("shards", "\(engine.configuration.shardCount)"), ("event_loops", "\(configuration.eventLoopCount)"),
            ("retention_seconds", "\(engine.configuration.retention.components.seconds)"),
        ])
        add("Clients", [
            ("connected_clients", "\(s.connectionsOpen.load(ordering: .relaxed))"),
            ("pubsub_clients", "\(s.subscribersOpen.load(ordering: .relaxed))"),
            ("maxclients", "\(configuration.clientCountMax)"),
        ])
        let log = engine.logStatus
        let snapshot = engine.lastSnapshot
        add("Persistence", [
            ("fsync", facts.durability.flagText), ("aof_enabled", facts.durability == .none ? "0" : "1"),
            ("wal_last_lsn", "\(log.lastLSN)"), ("wal_acknowledged_lsn", "\(log.acknowledgedLSN)"),
            ("wal_syncs", "\(log.syncCount)"), ("wal_batches", "\(log.batchCount)"), ("wal_record_bytes", "\(log.recordByteCount)"),
            ("writes_stopped", log.failure == nil ? "0" : "1"), ("writes_stopped_reason", log.failure ?? ""),
            ("snapshot_every_records", "\(engine.configuration.snapshotEveryRecords)"),
            ("snapshot_last_lsn", "\(snapshot?.lsn ?? 0)"), ("snapshot_last_bytes", "\(snapshot?.byteCount ?? 0)"),
            ("snapshot_last_capture_us", "\(snapshot.map { $0.captureDuration.components.attoseconds / 1_000_000_000_000 + $0.captureDuration.components.seconds * 1_000_000 } ?? 0)"),
        ])
        let latency = s.latencySnapshot
        func micros(_ q: Double) -> String { String(format: "%.1f", Double(latency.value(atQuantile: q)) / 1000) }
        add("Stats", [
            ("total_connections_received", "\(s.connectionsAccepted.load(ordering: .relaxed))"),
            ("rejected_connections", "\(s.connectionsRejected.load(ordering: .relaxed))"),
            ("total_commands_processed", "\(s.commandsProcessed.load(ordering: .relaxed))"),
            ("instantaneous_ops_per_sec", String(format: "%.0f", s.commandsPerSecond)),
            ("latency_p50_usec", micros(0.5)), ("latency_p99_usec", micros(0.99)), ("latency_p999_usec", micros(0.999)),
            ("latency_max_usec", String(format: "%.1f", Double(latency.max == 0 ? 0 : latency.max) / 1000)),
            ("total_net_input_bytes", "\(s.bytesRead.load(ordering: .relaxed))"),
            ("total_net_output_bytes", "\(s.bytesWritten.load(ordering: .relaxed))"),
            ("protocol_errors", "\(s.protocolErrors.load(ordering: .relaxed))"),
            ("pubsub_dropped_slow_subscribers", "\(s.subscribersDropped.load(ordering: .relaxed))"),
        ])
        if all || wanted == "stock" {
            let stats = await engine.stats()
            add("Stock", [
                ("cells", "\(stats.cells)"), ("warehouses", "\(stats.warehouses)"), ("variants", "\(stats.variants)"),
                ("on_hand", "\(stats.onHand)"), ("reserved", "\(stats.reserved)"), ("available", "\(stats.available)"),
                ("active_reservations", "\(stats.activeReservations)"), ("next_seq", "\(engine.nextSeq)"),
            ])
        }
        return out
    }
}
