// The server driven by real Redis clients, as users drive it: `redis-cli` (inline arguments, a
// script on stdin, `--pipe`), the Python `redis` package in RESP3 and RESP2 (clients/redis_py_check.py),
// and `redis-benchmark`. Each test starts its own server on a free port. The tools are installed by
// `.ci/run`; when one is missing the test fails and says so, rather than passing without running.

import Foundation
import Stockpile
import StockpileClient
import StockpileProtocol
import Testing

@testable import StockpileServer

/// What an external process did: its exit status and everything it wrote.
struct ProcessOutcome: CustomStringConvertible {
    var command: String
    var status: Int32
    var standardOutput: String
    var standardError: String

    var description: String {
        "`\(command)` exited with status \(status)\n--- stdout (last 4,000 bytes):\n\(String(standardOutput.suffix(4_000)))\n--- stderr:\n\(String(standardError.suffix(4_000)))"
    }

    /// The output's lines, without their line ends.
    var lines: [Substring] {
        standardOutput.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { line in line.last == "\r" ? line.dropLast() : line }
    }

    /// A record's field as `redis-cli` prints it when its output is not a terminal: a RESP2 record
    /// (a flat array) is one line per element, the value on the line after the name; a RESP3 map is
    /// one `name value` line per field. The first field of that name wins.
    func value(after name: String) -> String? {
        let lines = self.lines
        for (i, line) in lines.enumerated() {
            if line == name { return i + 1 < lines.count ? String(lines[i + 1]) : nil }
            if line.hasPrefix(name + " ") { return String(line.dropFirst(name.count + 1)) }
        }
        return nil
    }
}

enum ExternalProcess {
    /// The directory of this file, where the client scripts live.
    static let clientsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("clients")

    /// An executable on PATH, or nil.
    static func locate(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// A tool the tests need; a missing one fails the test with what to run.
    static func require(_ name: String, package: String) throws -> URL {
        try #require(locate(name), "`\(name)` is not installed: run .ci/run, which installs \(package) before it runs the tests")
    }

    /// Runs a process to its end, with stdin from a file (or nothing), and collects its output.
    /// It blocks: call it from a `withServer` body (a thread of its own), or through `onThread`, never
    /// on the cooperative pool that the server's batches run on.
    static func run(_ executable: URL, _ arguments: [String], standardInput: URL? = nil) throws -> ProcessOutcome {
        // posix_spawn, not Foundation's Process: see ChildProcess.swift.
        let result = try ChildProcess.run(path: executable.path, arguments: arguments, standardInput: standardInput?.path)
        let command = ([executable.lastPathComponent] + arguments).joined(separator: " ") + (standardInput.map { " < \($0.lastPathComponent)" } ?? "")
        return ProcessOutcome(command: command, status: result.status, standardOutput: result.output, standardError: result.errors)
    }

    /// A file of this text in a new temporary directory (removed by the caller's `cleanUp`).
    static func temporaryFile(named name: String, contents: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-e2e-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try Data(contents.utf8).write(to: url)
        return url
    }

    static func cleanUp(_ file: URL) {
        try? FileManager.default.removeItem(at: file.deletingLastPathComponent())
    }

    /// `run`, from a thread of its own.
    static func outcome(_ executable: URL, _ arguments: [String], standardInput: URL? = nil) async throws -> ProcessOutcome {
        try await onThread { Result { try run(executable, arguments, standardInput: standardInput) } }.get()
    }
}

/// Starts a server, runs `body` in the test's own task, and stops the server whatever happens.
///
/// `withServer` runs its body on a plain thread, where a failed `#expect` is not tied to the test
/// that made it (it is reported against no test, and the test itself shows as passed). Here the
/// expectations stay in the test's task, and each blocking step (a request, a process) goes through
/// `onThread`, so the cooperative pool stays free for the server's batches.
func withLiveServer<T>(
    configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestServer) async throws -> T
) async throws -> T {
    let server = try TestServer(configure: configure)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

extension TestServer {
    /// One request on a new connection, sent from a thread of its own.
    func ask(_ words: String...) async throws -> ReplyFrame? {
        let request = words
        return try await onThread { Result { try self.client().call(request) } }.get()
    }
}

extension RESPClient {
    /// One request and its reply, from a thread of its own.
    func ask(_ words: [String]) async throws -> ReplyFrame? {
        try await onThread { Result { () throws(SocketError) -> ReplyFrame? in try self.call(words) } }.get()
    }

    /// The next reply without sending anything (nil once the server closed), from a thread of its own.
    func nextReply() async throws -> ReplyFrame? {
        try await onThread { Result { () throws(SocketError) -> ReplyFrame? in try self.receive() } }.get()
    }
}

/// The single-cell arithmetic a script of RESERVE and ADJUST commands must produce when the server runs
/// them in order: a reservation takes what is available or is refused whole; a known id is a replay.
struct PipeModel {
    var onHand: Int64
    var reserved: Int64 = 0
    var ids: Set<String> = []
    var refusedCount = 0
    var replayedCount = 0

    mutating func reserve(_ id: String, _ quantity: Int64) {
        if ids.contains(id) {
            replayedCount += 1
        } else if onHand - reserved >= quantity {
            reserved += quantity
            ids.insert(id)
        } else {
            refusedCount += 1
        }
    }

    mutating func adjust(_ delta: Int64) { onHand += delta }
}

@Suite("Real clients")
struct RealClientTests {
    /// A cell's figure read over the server's own client.
    static func stockField(_ server: TestServer, _ variant: String, _ field: String) async throws -> Int64? {
        try await server.ask("STOCK", variant, "MAIN")?[field: field]?.integerValue
    }

    @Test("redis-cli runs inline commands, shows records field by field and refusals by their code")
    func redisCLIInline() async throws {
        let cli = try ExternalProcess.require("redis-cli", package: "redis-tools")
        try await withLiveServer { server in
            let port = ["-p", "\(server.port)"]

            let adjust = try await ExternalProcess.outcome(cli, port + ["ADJUST", "SKU", "MAIN", "10", "REASON", "received"])
            #expect(adjust.status == 0, "\(adjust)")
            #expect(adjust.value(after: "on_hand") == "10", "\(adjust)")
            #expect(adjust.value(after: "available") == "10", "\(adjust)")

            let reserve = try await ExternalProcess.outcome(cli, port + ["RESERVE", "ord-1", "SKU", "MAIN", "4", "CUSTOMER", "c-9"])
            #expect(reserve.status == 0, "\(reserve)")
            #expect(reserve.value(after: "id") == "ord-1", "\(reserve)")
            #expect(reserve.value(after: "status") == "active", "\(reserve)")
            #expect(reserve.value(after: "customer") == "c-9", "\(reserve)")
            #expect(reserve.value(after: "remaining") == "4", "\(reserve)")

            let refused = try await ExternalProcess.outcome(cli, port + ["RESERVE", "ord-2", "SKU", "MAIN", "7"])
            #expect(refused.lines.contains("INSUFFICIENT SKU MAIN available 6 requested 7"), "\(refused)")

            // A negative number and a note with spaces pass through as single arguments.
            let damaged = try await ExternalProcess.outcome(
                cli, port + ["ADJUST", "SKU", "MAIN", "-2", "REASON", "damaged", "NOTE", "dropped by a forklift"])
            #expect(damaged.value(after: "on_hand") == "8", "\(damaged)")
            let history = try await server.ask("HISTORY", "SKU", "MAIN", "LIMIT", "1")
            guard case .array(let entries) = history, let newest = entries.first else {
                Issue.record("HISTORY gave \(String(describing: history))")
                return
            }
            #expect(newest[field: "note"]?.textValue == "dropped by a forklift")

            // `-3` makes redis-cli send HELLO 3 and read maps.
            let stock = try await ExternalProcess.outcome(cli, ["-3"] + port + ["STOCK", "SKU", "MAIN"])
            #expect(stock.status == 0, "\(stock)")
            #expect(stock.value(after: "on_hand") == "8", "\(stock)")
            #expect(stock.value(after: "reserved") == "4", "\(stock)")
            #expect(stock.value(after: "available") == "4", "\(stock)")
            #expect(try await Self.stockField(server, "SKU", "reserved") == 4)
        }
    }

    /// 1,000 commands for one cell, in blocks of ten: an arrival of three units, eight new
    /// reservations of one unit, and a retry of the block's first reservation. Once the first 100 units
    /// are gone, each block reserves three and is refused five, so refusals, replays and successes
    /// interleave, and only in-order execution gives the model's figures.
    static func pipeScript() -> (commands: [[String]], model: PipeModel) {
        var model = PipeModel(onHand: 100)
        var commands: [[String]] = []
        for i in 0..<1_000 {
            switch i % 10 {
            case 0:
                commands.append(["ADJUST", "PIPE", "MAIN", "3", "REASON", "received"])
                model.adjust(3)
            case 9:
                commands.append(["RESERVE", "pipe-\(i - 8)", "PIPE", "MAIN", "1"])
                model.reserve("pipe-\(i - 8)", 1)
            default:
                commands.append(["RESERVE", "pipe-\(i)", "PIPE", "MAIN", "1"])
                model.reserve("pipe-\(i)", 1)
            }
        }
        return (commands, model)
    }

    @Test("redis-cli reading 1,000 commands from stdin runs them in order: the cell ends as the model says")
    func redisCLIStandardInput() async throws {
        let cli = try ExternalProcess.require("redis-cli", package: "redis-tools")
        let (commands, model) = Self.pipeScript()
        // The script itself: it must exercise refusals and replays, and end with every unit reserved.
        #expect(model.refusedCount == 400 && model.replayedCount == 100 && model.reserved == 400 && model.onHand == 400)
        try await withLiveServer { server in
            #expect(try await server.ask("ADJUST", "PIPE", "MAIN", "100", "REASON", "received")?[field: "on_hand"] == .integer(100))
            let script = try ExternalProcess.temporaryFile(
                named: "commands.txt", contents: commands.map { $0.joined(separator: " ") }.joined(separator: "\n") + "\n")
            defer { ExternalProcess.cleanUp(script) }

            let outcome = try await ExternalProcess.outcome(cli, ["-p", "\(server.port)"], standardInput: script)
            #expect(outcome.status == 0, "\(outcome)")
            let refusals = outcome.lines.filter { $0.hasPrefix("INSUFFICIENT PIPE MAIN available 0 requested 1") }.count
            let replays = outcome.lines.filter { $0 == "replayed" }.count
            let otherErrors = outcome.lines.filter { $0.hasPrefix("ERR") || $0.hasPrefix("CONFLICT") || $0.hasPrefix("INVALID") }
            #expect(refusals == model.refusedCount, "\(outcome)")
            #expect(replays == model.replayedCount, "\(outcome)")
            #expect(otherErrors.isEmpty, "\(otherErrors)")
            #expect(try await Self.stockField(server, "PIPE", "on_hand") == model.onHand)
            #expect(try await Self.stockField(server, "PIPE", "reserved") == model.reserved)
            #expect(try await server.ask("STATS")?[field: "active_reservations"]?.integerValue == Int64(model.ids.count))
        }
    }

    @Test("redis-cli --pipe loads 1,000 RESP-encoded commands and reports no errors")
    func redisCLIPipeMode() async throws {
        let cli = try ExternalProcess.require("redis-cli", package: "redis-tools")
        var commands: [[String]] = []
        for i in 0..<1_000 {
            commands.append(i % 2 == 0 ? ["ADJUST", "BULK", "MAIN", "1", "REASON", "received"] : ["RESERVE", "bulk-\(i)", "BULK", "MAIN", "1"])
        }
        var bytes: [UInt8] = []
        for words in commands { RequestEncoder.encode(words, into: &bytes) }
        let encoded = bytes
        try await withLiveServer { server in
            let input = try ExternalProcess.temporaryFile(named: "commands.resp", contents: String(decoding: encoded, as: UTF8.self))
            defer { ExternalProcess.cleanUp(input) }
            // --pipe ends its input with an ECHO of a random marker and waits for it to come back; the
            // timeout only bounds how long a server that never echoes takes to fail the test.
            let outcome = try await ExternalProcess.outcome(cli, ["-p", "\(server.port)", "--pipe", "--pipe-timeout", "10"], standardInput: input)
            #expect(outcome.status == 0, "\(outcome)")
            #expect(outcome.standardOutput.contains("errors: 0, replies: 1000"), "\(outcome)")
            #expect(try await Self.stockField(server, "BULK", "on_hand") == 500)
            #expect(try await Self.stockField(server, "BULK", "reserved") == 500)
        }
    }

    @Test("the Python redis package works in RESP3 (its default) and RESP2: records, refusals, replays, pipelines, pub/sub, INFO")
    func redisPy() async throws {
        let python = try ExternalProcess.require("python3", package: "python3")
        let probe = try await ExternalProcess.outcome(
            python, ["-c", "import sys, redis; sys.exit(0 if int(redis.__version__.split('.')[0]) >= 5 else 1)"])
        try #require(
            probe.status == 0,
            "the Python `redis` package (5 or later) is not installed: run .ci/run, which installs it with pip\n\(probe)")
        let script = ExternalProcess.clientsDirectory.appendingPathComponent("redis_py_check.py")
        try await withLiveServer { server in
            let outcome = try await ExternalProcess.outcome(python, [script.path, "\(server.port)"])
            #expect(outcome.status == 0, "\(outcome)")
            #expect(outcome.standardOutput.hasPrefix("ok: "), "\(outcome)")
        }
    }

    @Test("redis-benchmark's RESERVE workload finishes cleanly and every distinct id is reserved exactly once")
    func redisBenchmark() async throws {
        let benchmark = try ExternalProcess.require("redis-benchmark", package: "redis-tools")
        let requestCount = 20_000
        let stocked: Int64 = 25_000
        try await withLiveServer { server in
            #expect(try await server.ask("ADJUST", "BENCH", "MAIN", "\(stocked)", "REASON", "received")?[field: "on_hand"] == .integer(stocked))
            let outcome = try await ExternalProcess.outcome(
                benchmark,
                ["-p", "\(server.port)", "-n", "\(requestCount)", "-c", "20", "-P", "4", "-r", "100000000", "-q",
                 "RESERVE", "ord:__rand_int__", "BENCH", "MAIN", "1"])
            #expect(outcome.status == 0, "\(outcome)")
            #expect(outcome.standardError.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(outcome)")
            #expect(outcome.standardOutput.contains("requests per second"), "\(outcome)")

            // Random ids collide now and then; a collision is a replay. So: every reserve event names a
            // different id, and the cell holds exactly one unit per event.
            var reservedIDs: [String] = []
            var from: Int64 = 1
            while true {
                guard case .array(let page) = try await server.ask("EVENTS", "\(from)", "LIMIT", "10000") else {
                    Issue.record("EVENTS \(from) did not give a list")
                    return
                }
                if page.isEmpty { break }
                for entry in page where entry[field: "type"]?.textValue == "reserve" {
                    reservedIDs.append(entry[field: "reservation"]?.textValue ?? "")
                }
                from = (page.last?[field: "seq"]?.integerValue ?? from) + 1
            }
            let distinct = Set(reservedIDs)
            #expect(distinct.count == reservedIDs.count, "an id was reserved twice")
            #expect(distinct.allSatisfy { $0.hasPrefix("ord:") }, "\(distinct.filter { !$0.hasPrefix("ord:") })")
            // 20,000 draws from 10^8 ids collide about twice; a few hundred lost would be a lost write.
            #expect(distinct.count <= requestCount && distinct.count > requestCount - 200, "\(distinct.count) distinct reservations")

            let reserved = try #require(try await Self.stockField(server, "BENCH", "reserved"))
            let onHand = try #require(try await Self.stockField(server, "BENCH", "on_hand"))
            #expect(reserved == Int64(distinct.count))
            #expect(onHand == stocked)
            #expect(reserved <= onHand)
            let stats = try await server.ask("STATS")
            #expect(stats?[field: "active_reservations"]?.integerValue == Int64(distinct.count))
            #expect(stats?[field: "units_reserved"]?.integerValue == Int64(distinct.count))
        }
    }
}
