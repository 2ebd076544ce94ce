// One loop turn answers several connections' pipelines together, with one wait for the log. That
// must not change any reply: each connection gets, byte for byte, what its pipeline gets when the
// same pipelines run one turn each, in the same order. The pipelines mix one-line and multi-shard
// reservations, replays of an id, conflicts, refusals (INSUFFICIENT, NOTFOUND, INVALID), keyed
// adjustments and their replays, releases, queries and PING, on a durable engine (fsync always).
// Seeded (STOCKPILE_SEED); the seed is printed.

import Foundation
import Glibc
import Stockpile
import StockpileProtocol
import StockpileWAL
import Testing

@testable import StockpileServer

@Suite struct TurnBatchTests {
    static let variants = ["A", "B", "C", "D", "E", "F"]

    /// A durable engine on a fresh directory, stocked the same way each time.
    static func engine(in parent: String, _ name: String) async throws -> Engine {
        let engine = try Engine.open(
            dataDirectory: parent + "/" + name, durability: .always, configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 20, reason: .received) }
        return engine
    }

    /// A random pipeline for connection `c`: its own ids and keys, the shared cells.
    static func pipeline(_ c: Int, rng: inout SplitMix64) -> [[String]] {
        var requests: [[String]] = []
        var ids: [String] = []
        func pick(_ a: [String]) -> String { a[Int(rng.next() % UInt64(a.count))] }
        for i in 0..<Int(5 + rng.next() % 20) {
            switch rng.next() % 10 {
            case 0, 1, 2:
                let id = "c\(c)-\(i)"
                ids.append(id)
                requests.append(["RESERVE", id, pick(variants), "MAIN", "\(1 + rng.next() % 6)"])
            case 3:
                let id = "c\(c)-\(i)"
                ids.append(id)
                requests.append(["RESERVE", id, pick(variants), "MAIN", "1", pick(variants), "MAIN", "2", pick(variants), "MAIN", "1"])
            case 4:
                // A replay of an id, or a conflict when the lines differ, or NOTFOUND-free new id.
                requests.append(["RESERVE", ids.isEmpty ? "c\(c)-none" : pick(ids), pick(variants), "MAIN", "1"])
            case 5:
                requests.append(["RELEASE", ids.isEmpty || rng.next() % 4 == 0 ? "c\(c)-missing" : pick(ids)])
            case 6:
                requests.append(["ADJUST", pick(variants), "MAIN", "\(1 + rng.next() % 3)", "REASON", "received", "KEY", "k\(c)-\(rng.next() % 3)"])
            case 7:
                requests.append(["STOCK", pick(variants), "MAIN"])
            case 8:
                requests.append(["RESERVE", "c\(c)-bad-\(i)", pick(variants), "MAIN", "0"])
            default:
                requests.append(["PING", "c\(c)-\(i)"])
            }
        }
        return requests
    }

    /// Runs `pipelines` as one turn on one durable engine and one at a time on another, and expects
    /// each connection's replies to be the same bytes either way. Returns the turn's results.
    @discardableResult
    static func compareOneTurnWithApart(_ pipelines: [[[String]]], in parent: String, name: String, context: String) async throws -> [BatchResult] {
        let together = try await engine(in: parent, "together-\(name)")
        let apart = try await engine(in: parent, "apart-\(name)")
        defer {
            try? together.close()
            try? apart.close()
        }
        let batches = pipelines.map { RequestBatch(requests: $0.map { $0.map { Array($0.utf8) } }) }
        let handlerTogether = RequestHandler(engine: together)
        let sessions = batches.indices.map { handlerTogether.newSession(id: UInt64($0 + 1)) }
        let oneTurn = await handlerTogether.run(Array(zip(batches, sessions)))
        let handlerApart = RequestHandler(engine: apart)
        for (k, batch) in batches.enumerated() {
            let alone = await handlerApart.run(batch, session: handlerApart.newSession(id: UInt64(k + 1)))
            // Compared as text, so that a difference reads as RESP.
            #expect(
                String(decoding: oneTurn[k].bytes, as: UTF8.self) == String(decoding: alone.bytes, as: UTF8.self),
                "\(context) connection \(k): \(pipelines[k].map { $0.joined(separator: " ") })")
        }
        let problems = await together.verify() + apart.verify()
        #expect(problems.isEmpty, "\(context): \(problems)")
        return oneTurn
    }

    @Test("connections answered in one turn get the replies they get one turn each, in the same order")
    func oneTurnIsManyTurns() async throws {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 1203
        print("TurnBatchTests seed \(seed)")
        var template = Array("/tmp/stockpile-turn-test-XXXXXX".utf8CString)
        let parent = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: parent) }
        var rng = SplitMix64(seed: seed)
        for round in 0..<8 {
            let pipelines = (0..<Int(2 + rng.next() % 5)).map { Self.pipeline($0, rng: &rng) }
            try await Self.compareOneTurnWithApart(pipelines, in: parent, name: "round-\(round)", context: "seed \(seed) round \(round)")
        }
    }

    @Test("a loop runs turn after turn in the tasks it made: one request at a time makes a task per loop, not per turn")
    func turnsReuseTheirTasks() async throws {
        let engine = Engine()
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 1_000, reason: .received)
        let started = try await withServer(engine: engine) { server -> Int in
            let client = try server.client()
            for i in 0..<300 {
                // Each waits for its reply, so each is a turn of its own.
                #expect(try client.call(["RESERVE", "r\(i)", "A", "MAIN", "1"]) != nil)
                #expect(try client.call(["PING"]) == .simple("PONG"))
            }
            return server.server.statistics.turnTasksStarted.load(ordering: .relaxed)
        }
        // 600 turns; a task per turn would make 600. One connection is served by one loop, which made
        // one task (none of them waited for anything).
        #expect(started == 1, "tasks made for 600 turns: \(started)")
    }

    @Test("turns out at once, each waiting for its sync, keep their lists afterwards: later rounds of them make none")
    func waitingTurnsKeepTheirLists() async throws {
        var template = Array("/tmp/stockpile-turn-lists-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The log on a simulated file system, whose syncs the test holds back.
        let fileSystem = SimulatedFileSystem(directories: [directory])
        let engine = try Engine.open(
            dataDirectory: directory, durability: .always, clock: ManualClock(), segmentByteCount: 1 << 16, fileSystem: fileSystem, warn: { _ in })
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 1_000, reason: .received)
        let clientCount = 4
        let rounds = 5
        let made = try await withServer(engine: engine, configure: { $0.eventLoopCount = 1 }) { server -> Int in
            let clients = try (0..<clientCount).map { _ in try server.client() }
            for round in 0..<rounds {
                // Each client's RESERVE is read in a turn of its own (the loop has read it before the
                // next is sent), and that turn waits for a sync held back until all of them wait.
                fileSystem.holdSyncs()
                for (k, client) in clients.enumerated() {
                    let before = server.server.statistics.bytesRead.load(ordering: .relaxed)
                    client.enqueue(["RESERVE", "r\(round)-\(k)", "A", "MAIN", "1"])
                    try client.flush()
                    var polls = 0
                    while server.server.statistics.bytesRead.load(ordering: .relaxed) == before && polls < 5_000 {
                        usleep(1_000)
                        polls += 1
                    }
                    usleep(5_000)
                }
                fileSystem.releaseSyncs()
                for client in clients { #expect(try client.receive()?[field: "status"] != nil, "round \(round)") }
            }
            return server.server.statistics.turnListsMade.load(ordering: .relaxed)
        }
        // The first round has up to four turns out at once, three more than the loop started with
        // lists for; every later round reuses what those left. Made afresh each round, it was three
        // per round after the first.
        #expect(made <= clientCount - 1, "turn lists made over \(rounds) rounds of \(clientCount) waiting turns: \(made)")
    }

    @Test("every request answered is counted once, those of a run of reservations as those one at a time")
    func everyRequestCounted() async throws {
        let engine = Engine()
        _ = await engine.adjust(variant: "A", warehouse: "MAIN", by: 5, reason: .received)
        let counted = try await withServer(engine: engine) { server -> Int in
            let client = try server.client()
            var sent = 0
            func send(_ words: String...) {
                client.enqueue(words)
                sent += 1
            }
            // Runs of new reservations (one engine call each), a refusal that ends a run, reads,
            // PING, an unknown command, a replay and a release, in one pipeline.
            for i in 0..<6 { send("RESERVE", "r\(i)", "A", "MAIN", "1") }
            send("PING")
            send("RESERVE", "big", "A", "MAIN", "100")
            send("STOCK", "A")
            for i in 6..<9 { send("RESERVE", "s\(i)", "B", "MAIN", "1") }
            send("NOSUCHCOMMAND")
            send("RESERVE", "r0", "A", "MAIN", "1")
            send("RELEASE", "r1")
            try client.flush()
            for _ in 0..<sent { _ = try client.receive() }
            #expect(sent == 15)
            return server.server.statistics.commandsProcessed.load(ordering: .relaxed)
        }
        #expect(counted == 15)
    }

    @Test("runs of reservations that end where a connection's batch ends, and begin the next one's, in one turn")
    func runsAtBatchEdges() async throws {
        var template = Array("/tmp/stockpile-turn-edge-XXXXXX".utf8CString)
        let parent = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: parent) }
        func reserve(_ id: String, _ v: String, _ q: Int = 1) -> [String] { ["RESERVE", id, v, "MAIN", "\(q)"] }
        // Each pipeline ends in a run and the next begins with one; one run sells a cell out partway,
        // one is a single reservation, one follows a PING.
        let pipelines: [[[String]]] = [
            (0..<5).map { reserve("a\($0)", "A") },
            (0..<4).map { reserve("b\($0)", "B", 6) } + [["PING"]] + (0..<3).map { reserve("b-late\($0)", "C") },
            [reserve("c0", "D")],
            [["PING"]] + (0..<6).map { reserve("d\($0)", Self.variants[$0]) },
        ]
        let oneTurn = try await Self.compareOneTurnWithApart(pipelines, in: parent, name: "edges", context: "batch edges")
        // Connection 1's run sold B out after three of its four.
        #expect(String(decoding: oneTurn[1].bytes, as: UTF8.self).contains("INSUFFICIENT"))
    }
}

