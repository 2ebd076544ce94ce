// The real crash test of SPEC §4: a `stockpile serve --fsync always` child runs a seeded random
// workload and is killed with SIGKILL at random moments, again and again on one data directory. The
// parent records every reply it received (an acknowledgement); after each restart:
// - every acknowledged change is there, with the sequence number its reply gave;
// - the ledger is gapless, and replaying its deltas gives exactly the figures STOCK shows;
// - nothing is oversold: reserved ≤ on_hand in every cell.
// The child writes a snapshot every 150 records and on the workload's SNAPSHOT requests, so kills land
// during snapshots too and restarts load one and replay the log after it.
// Kills: `STOCKPILE_CRASH_KILLS` (default 20); seed: `STOCKPILE_SEED`.

import Foundation
import StockpileClient
import StockpileCore
import StockpileProtocol
import Testing

@testable import StockpileServer

/// What the parent saw acknowledged, across every run of the child.
struct Acknowledged {
    /// ADJUST replies: seq → (variant, delta, on_hand after).
    var adjustments: [UInt64: (variant: String, delta: Int64, onHand: Int64)] = [:]
    /// RESERVE replies: id → (variant, quantity).
    var reservations: [String: (variant: String, quantity: Int64)] = [:]
    /// Reservations whose RELEASE was acknowledged.
    var released: Set<String> = []
}

@Suite("Crash", .serialized)
struct CrashTests {
    static let variants = ["CR-A", "CR-B", "CR-C", "CR-D"]

    /// One run of the workload until the connection breaks (the kill) or `count` requests are done.
    /// Only replies read whole count as acknowledged.
    static func workload(port: Int, rng: inout SplitMix64, round: Int, acknowledged: inout Acknowledged) {
        guard let client = try? RESPClient(host: "127.0.0.1", port: port, timeoutSeconds: 5) else { return }
        var serial = 0
        while true {
            // A pipeline of up to 8 requests, then their replies.
            var sent: [[String]] = []
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                serial += 1
                let variant = variants[Int(rng.next() % UInt64(variants.count))]
                let roll = rng.next() % 10
                let words: [String]
                if rng.next() % 50 == 0 {
                    words = ["SNAPSHOT"]
                } else if roll < 3 {
                    words = ["ADJUST", variant, "MAIN", String(1 + rng.next() % 5), "REASON", "received", "KEY", "k-\(round)-\(serial)"]
                } else if roll < 9 || acknowledged.reservations.isEmpty {
                    words = ["RESERVE", "r-\(round)-\(serial)", variant, "MAIN", String(1 + rng.next() % 3)]
                } else {
                    let ids = acknowledged.reservations.keys.sorted()
                    words = ["RELEASE", ids[Int(rng.next() % UInt64(ids.count))]]
                }
                client.enqueue(words)
                sent.append(words)
            }
            do { try client.flush() } catch { return }
            for words in sent {
                guard let reply = try? client.receive() else { return }
                switch words[0] {
                case "ADJUST":
                    if let seq = reply[field: "seq"]?.integerValue, let onHand = reply[field: "on_hand"]?.integerValue {
                        acknowledged.adjustments[UInt64(seq)] = (words[1], Int64(words[3])!, onHand)
                    }
                case "RESERVE":
                    if reply[field: "status"]?.textValue == "active" { acknowledged.reservations[words[1]] = (words[2], Int64(words[4])!) }
                case "SNAPSHOT":
                    #expect(reply == .simple("OK"), "SNAPSHOT: \(reply)")
                default:
                    if reply[field: "status"] != nil { acknowledged.released.insert(words[1]) }
                }
            }
        }
    }

    /// Every event from seq 1, page by page.
    static func allEvents(_ client: RESPClient) throws -> [ReplyFrame] {
        var events: [ReplyFrame] = []
        while true {
            guard case .array(let page)? = try client.call(["EVENTS", String(events.count + 1), "LIMIT", "10000"]) else { return events }
            events += page
            if page.count < 10_000 { return events }
        }
    }

    /// The checks after a restart; returns the number of ledger entries.
    @discardableResult
    static func check(port: Int, acknowledged: Acknowledged, context: String) throws -> Int {
        let client = try RESPClient(host: "127.0.0.1", port: port)
        let events = try allEvents(client)
        var figures: [String: (onHand: Int64, reserved: Int64)] = [:]
        for (i, e) in events.enumerated() {
            let seq = e[field: "seq"]?.integerValue
            #expect(seq == Int64(i + 1), "\(context): the ledger has a gap at \(i + 1)")
            guard let variant = e[field: "variant"]?.textValue, !variant.isEmpty else { continue }
            var f = figures[variant, default: (0, 0)]
            f.onHand += e[field: "delta_on_hand"]?.integerValue ?? 0
            f.reserved += e[field: "delta_reserved"]?.integerValue ?? 0
            #expect(f.onHand == e[field: "on_hand"]?.integerValue && f.reserved == e[field: "reserved"]?.integerValue, "\(context): entry \(i + 1)")
            figures[variant] = f
        }
        for (seq, a) in acknowledged.adjustments {
            let e = seq >= 1 && Int(seq) <= events.count ? events[Int(seq) - 1] : nil
            #expect(
                e?[field: "type"]?.textValue == "adjust" && e?[field: "variant"]?.textValue == a.variant
                    && e?[field: "delta_on_hand"]?.integerValue == a.delta && e?[field: "on_hand"]?.integerValue == a.onHand,
                "\(context): the acknowledged ADJUST with seq \(seq) is missing or different")
        }
        // Pipelined: one round trip for all of them.
        let ids = acknowledged.reservations.keys.sorted()
        for id in ids { client.enqueue(["RESERVATION", id]) }
        try client.flush()
        for id in ids {
            let r = acknowledged.reservations[id]!
            let record = try client.receive()
            guard case .array(let lines)? = record?[field: "lines"], let line = lines.first else {
                Issue.record("\(context): the acknowledged reservation \(id) is missing: \(String(describing: record))")
                continue
            }
            #expect(line[field: "variant"]?.textValue == r.variant && line[field: "quantity"]?.integerValue == r.quantity, "\(context): \(id)")
            if acknowledged.released.contains(id) {
                #expect(record?[field: "status"]?.textValue == "released", "\(context): the acknowledged release of \(id) is missing")
            }
        }
        for variant in variants {
            let cell = try client.call(["STOCK", variant, "MAIN"])
            let onHand = cell?[field: "on_hand"]?.integerValue ?? -1
            let reserved = cell?[field: "reserved"]?.integerValue ?? -1
            let replayed = figures[variant, default: (0, 0)]
            #expect(onHand == replayed.onHand && reserved == replayed.reserved, "\(context): \(variant) differs from the replay of its ledger")
            #expect(reserved <= onHand, "\(context): \(variant) is oversold (\(reserved) reserved of \(onHand))")
        }
        return events.count
    }

    @Test("a child killed with SIGKILL at random moments loses nothing it acknowledged")
    func killAndRestart() async throws {
        let kills = Int(ProcessInfo.processInfo.environment["STOCKPILE_CRASH_KILLS"] ?? "") ?? 20
        let seed = UInt64(ProcessInfo.processInfo.environment["STOCKPILE_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("crash test seed \(seed), \(kills) kills (STOCKPILE_SEED=\(seed) repeats it)")
        try await onOwnThread {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-crash-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var rng = SplitMix64(seed: seed)
            var acknowledged = Acknowledged()
            // Stock to reserve from; acknowledged like everything else.
            let serveFlags = ["--snapshot-every", "150"]
            let first = try ServeProcess(dataDirectory: directory, extra: serveFlags)
            let setup = try first.client()
            for v in Self.variants {
                let reply = try setup.call(["ADJUST", v, "MAIN", "1000", "REASON", "received"])
                acknowledged.adjustments[UInt64(reply?[field: "seq"]?.integerValue ?? 0)] = (v, 1000, reply?[field: "on_hand"]?.integerValue ?? 0)
            }
            var server = first
            var entries = 0
            for round in 1...kills {
                let delay = useconds_t(20_000 + rng.next() % 200_000)
                let pid = server.child.pid
                let killer = Background { () -> Void in
                    usleep(delay)
                    kill(pid, SIGKILL)
                }
                var workRNG = SplitMix64(seed: rng.next())
                Self.workload(port: server.port, rng: &workRNG, round: round, acknowledged: &acknowledged)
                try killer.value()
                #expect(server.child.wait().signal == SIGKILL, "round \(round): the child was not killed")
                server = try ServeProcess(dataDirectory: directory, extra: serveFlags)
                entries = try Self.check(port: server.port, acknowledged: acknowledged, context: "seed \(seed) round \(round)")
            }
            _ = server.stop(with: SIGTERM)
            #expect(acknowledged.reservations.count > kills, "the workload should have made progress (seed \(seed))")
            let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".snap") }
            #expect(!snapshots.isEmpty, "the child should have written snapshots (seed \(seed))")
            print("crash test: \(kills) kills, \(entries) ledger entries, \(acknowledged.reservations.count) acknowledged reservations")
        }
    }
}
