// The `stockpile serve` executable as an operator runs it: started as a child process on a data
// directory, stopped by SIGTERM or SIGINT, started again on the same directory. Everything it
// acknowledged is there after the restart, and it exits 0 after a clean shutdown.

import Foundation
import StockpileClient
import StockpileProtocol
import Testing

@testable import StockpileServer

/// A `stockpile serve` child process.
final class ServeProcess: @unchecked Sendable {
    let child: ChildProcess
    let port: Int

    /// The executable SwiftPM built next to the test bundle.
    static var executable: URL {
        get throws {
            var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
            let url = directory.appendingPathComponent("stockpile")
            guard FileManager.default.isExecutableFile(atPath: url.path) else {
                throw SocketError("the stockpile executable is not at \(url.path): build it with `swift build`", errno: ENOENT)
            }
            return url
        }
    }

    init(dataDirectory: String, extra: [String] = []) throws {
        child = try ChildProcess(path: try Self.executable.path, arguments: ["serve", "--port", "0", "--data-dir", dataDirectory] + extra)
        // A line on stderr names the port the system picked (a seed file's line may come first).
        let text = child.waitForErrorLine(containing: "listening on")
        guard let range = text.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression),
            let port = Int(text[range].split(separator: ":").last!)
        else {
            child.send(SIGKILL)
            child.wait()
            throw SocketError("stockpile serve did not start: \(text)", errno: 0)
        }
        self.port = port
    }

    func client() throws -> RESPClient { try RESPClient(host: "127.0.0.1", port: port) }

    /// Sends `signal` and waits for the exit; returns the exit status and what it wrote to stderr.
    func stop(with signal: Int32) -> (status: Int32, log: String) {
        child.send(signal)
        let status = child.wait().status
        return (status, child.standardError)
    }
}

@Suite("stockpile serve")
struct ServeProcessTests {
    @Test("a signal stops the server cleanly and a restart finds everything it acknowledged", arguments: [SIGTERM, SIGINT])
    func restart(signal: Int32) async throws {
        try await onOwnThread {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-serve-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }

            let first = try ServeProcess(dataDirectory: directory)
            // One writer per directory: a second server on it is refused while the first runs.
            #expect(throws: SocketError.self) { _ = try ServeProcess(dataDirectory: directory) }
            var client = try first.client()
            #expect(try client.call(["ADJUST", "SKU", "MAIN", "10", "REASON", "received", "KEY", "k1"])?[field: "on_hand"]?.integerValue == 10)
            #expect(try client.call(["RESERVE", "hold-1", "SKU", "MAIN", "3", "TTL", "3600"])?[field: "status"]?.textValue == "active")
            for i in 0..<5 { client.enqueue(["RESERVE", "r\(i)", "SKU", "MAIN", "1"]) }
            try client.flush()
            for _ in 0..<5 { _ = try client.receive() }
            let before = try client.call(["STOCK", "SKU", "MAIN"])
            let events = try client.call(["EVENTS", "0", "LIMIT", "1000"])
            let (status, log) = first.stop(with: signal)
            #expect(status == 0, "exit status \(status); log: \(log)")
            #expect(log.contains("stopped; the log is synced"), "\(log)")

            let second = try ServeProcess(dataDirectory: directory)
            client = try second.client()
            #expect(try client.call(["STOCK", "SKU", "MAIN"]) == before)
            #expect(try client.call(["EVENTS", "0", "LIMIT", "1000"]) == events)
            // Ids and KEYs survive the restart: retries replay instead of acting twice.
            #expect(try client.call(["RESERVE", "hold-1", "SKU", "MAIN", "3", "TTL", "3600"])?[field: "replayed"]?.integerValue == 1)
            #expect(try client.call(["ADJUST", "SKU", "MAIN", "10", "REASON", "received", "KEY", "k1"])?[field: "replayed"]?.integerValue == 1)
            #expect(try client.call(["STOCK", "SKU", "MAIN"]) == before)
            #expect(second.stop(with: SIGTERM).status == 0)
        }
    }

    @Test("a non-loopback address without an auth file is refused at start, naming --insecure")
    func protectedMode() async throws {
        try await onOwnThread {
            let (status, _, log) = try Self.run(["serve", "--host", "0.0.0.0", "--port", "0", "--fsync", "none"])
            #expect(status != 0)
            #expect(log.contains("--insecure"), "\(log)")
        }
    }

    /// Runs `stockpile cli` with `arguments` and `input` on stdin; returns its status and stdout.
    static func cli(_ arguments: [String], input: String = "") throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-cli-\(UUID().uuidString)")
        try input.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try ChildProcess.run(path: try ServeProcess.executable.path, arguments: ["cli"] + arguments, standardInput: file.path)
        return (result.status, result.output)
    }

    @Test("stockpile cli sends one command, or reads them from its input, and prints like redis-cli")
    func cli() async throws {
        try await withServer { server in
            let port = String(server.port)
            #expect(try Self.cli(["--port", port, "PING"]) == (0, "PONG\n"))
            let refused = try Self.cli(["--port", port, "RESERVE", "c1", "SKU", "MAIN", "5"])
            #expect(refused.status == 1)
            #expect(refused.output == "(error) INSUFFICIENT SKU MAIN available 0 requested 5\n")
            let session = try Self.cli(["--port", port], input: "ADJUST SKU MAIN 3 REASON received NOTE \"first delivery\"\nSTOCK SKU MAIN\nQUIT\n")
            #expect(session.status == 0)
            #expect(session.output.contains(" 5) \"on_hand\"\n 6) (integer) 3"), "\(session.output)")
            let history = try server.call("HISTORY", "SKU", "MAIN")
            guard case .array(let entries)? = history else { Issue.record("HISTORY: \(String(describing: history))"); return }
            #expect(entries.first?[field: "note"]?.textValue == "first delivery")
        }
    }

    @Test("--seed loads a stock file at start; a bad file stops the start, names every bad line and loads nothing")
    func seed() async throws {
        try await onOwnThread {
            let directory = try Self.scratchDirectory("stockpile-seed-")
            defer { try? FileManager.default.removeItem(at: directory) }
            let good = directory.appendingPathComponent("stock.csv")
            try "variant,warehouse,on_hand\r\nSKU-1,main,40\n\nSKU-2,MAIN,0\n".write(to: good, atomically: true, encoding: .utf8)
            let server = try ServeProcess(dataDirectory: directory.appendingPathComponent("data").path, extra: ["--fsync", "none", "--seed", good.path])
            let client = try server.client()
            #expect(try client.call(["STOCK", "SKU-1", "MAIN"])?[field: "on_hand"]?.integerValue == 40)
            let history = try client.call(["HISTORY", "SKU-1", "MAIN"])
            guard case .array(let entries)? = history, let entry = entries.first else {
                Issue.record("HISTORY: \(String(describing: history))")
                return
            }
            #expect(entry[field: "type"]?.textValue == "import" && entry[field: "reason"]?.textValue == "import")
            #expect(server.stop(with: SIGTERM).status == 0)

            let bad = directory.appendingPathComponent("bad.csv")
            try "variant,warehouse,on_hand\nSKU-1,MAIN,5\nSKU 2,MAIN,1\nSKU-3,MAIN,-4\nSKU-1,main,6\n".write(to: bad, atomically: true, encoding: .utf8)
            let (status, _, log) = try Self.run(["serve", "--port", "0", "--fsync", "none", "--seed", bad.path])
            #expect(status != 0)
            #expect(log.contains("nothing was loaded"), "\(log)")
            for line in [3, 4, 5] { #expect(log.contains("bad.csv line \(line):"), "line \(line) not named: \(log)") }
            #expect(!log.contains("line 2:"), "\(log)")
        }
    }

    @Test("--seed of a file of many chunks (read once, each chunk's pages given back as the next is read) loads every row")
    func seedOfManyChunks() async throws {
        try await onOwnThread {
            let directory = try Self.scratchDirectory("stockpile-seed-")
            defer { try? FileManager.default.removeItem(at: directory) }
            // More rows than one chunk of the load (2^18), in a file of many pages.
            let rowCount = 300_000
            var text = "variant,warehouse,on_hand\n"
            text.reserveCapacity(rowCount * 24)
            for i in 0..<rowCount { text += "SKU-\(i),MAIN,\(i % 1_000)\n" }
            let file = directory.appendingPathComponent("stock.csv")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let server = try ServeProcess(dataDirectory: directory.appendingPathComponent("data").path, extra: ["--fsync", "none", "--seed", file.path])
            let client = try server.client()
            for i in [0, 1, 4_095, 4_096, 262_143, 262_144, 262_145, rowCount - 1] {
                #expect(try client.call(["STOCK", "SKU-\(i)", "MAIN"])?[field: "on_hand"]?.integerValue == Int64(i % 1_000), "SKU-\(i)")
            }
            #expect(try client.call(["STATS"])?[field: "cells"]?.integerValue == Int64(rowCount))
            #expect(server.stop(with: SIGTERM).status == 0)
        }
    }

    @Test("the ready line counts from the process's start: its figure covers a seed file that arrived half a second after the spawn")
    func readyLineCountsFromProcessStart() async throws {
        try await onOwnThread {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockpile-ready-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // The seed file is a pipe held open for writing (O_RDWR does not wait for a reader): the
            // server's read of it ends only when this process closes it, so the server cannot be ready
            // before then.
            let seed = directory + "/seed.csv"
            try #require(mkfifo(seed, 0o600) == 0)
            let writer = open(seed, O_RDWR | O_CLOEXEC)
            try #require(writer >= 0)
            let beforeSpawn = ContinuousClock.now
            let child = try ChildProcess(path: try ServeProcess.executable.path, arguments: ["serve", "--port", "0", "--fsync", "none", "--seed", seed])
            let spawned = ContinuousClock.now
            usleep(500_000)
            let text = Array("variant,warehouse,on_hand\nSKU-1,MAIN,7\n".utf8)
            #expect(text.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == text.count)
            let seedEnded = ContinuousClock.now
            close(writer)
            let log = child.waitForErrorLine(containing: "ready in")
            let seen = ContinuousClock.now
            child.send(SIGTERM)
            #expect(child.wait().status == 0, "\(child.standardError)")
            #expect(log.contains("seeded 1 cell(s)"), "\(log)")
            let match = try #require(log.firstMatch(of: /ready in ([0-9,]+) ms/), "no ready line: \(log)")
            let reported = try #require(Int(match.1.replacingOccurrences(of: ",", with: "")))
            // The process existed when posix_spawn returned, and was not ready before the seed ended.
            let provablyInside = (seedEnded - spawned) / .milliseconds(1)
            #expect(Double(reported) >= provablyInside - 1, "ready in \(reported) ms, but it waited \(provablyInside) ms for its seed file")
            // Nor can it be more than the time from before the spawn to the line, give or take the
            // kernel's tick (the start is recorded in ticks, rounded down) and the figure's rounding.
            let tick = 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
            let outside = (seen - beforeSpawn) / .milliseconds(1)
            #expect(Double(reported) <= outside + tick + 1, "ready in \(reported) ms, more than the \(outside) ms from spawn to the line")
        }
    }

    /// Runs `stockpile` with `arguments`; returns its status, stdout and stderr.
    /// A new directory for one test under the system's temporary directory; the test removes it.
    static func scratchDirectory(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(prefix + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try ChildProcess.run(path: try ServeProcess.executable.path, arguments: arguments)
    }

    @Test("stockpile import then export gives the file back; a bad file or a running server changes nothing")
    func importExport() async throws {
        try await onOwnThread {
            let directory = try Self.scratchDirectory("stockpile-ie-")
            defer { try? FileManager.default.removeItem(at: directory) }
            let data = directory.appendingPathComponent("data").path
            let file = directory.appendingPathComponent("in.csv")
            try "variant,warehouse,on_hand\nB,main,7\nA,MAIN,5\n".write(to: file, atomically: true, encoding: .utf8)
            #expect(try Self.run(["import", "--data-dir", data, file.path]).status == 0)
            #expect(try Self.run(["export", "--data-dir", data]).output == "variant,warehouse,on_hand\nA,MAIN,5\nB,MAIN,7\n")

            let bad = directory.appendingPathComponent("bad.csv")
            try "variant,warehouse,on_hand\nA,MAIN,9\nB,MAIN,-1\n".write(to: bad, atomically: true, encoding: .utf8)
            let refused = try Self.run(["import", "--data-dir", data, bad.path])
            #expect(refused.status != 0 && refused.errors.contains("bad.csv line 3:"), "\(refused.errors)")
            #expect(try Self.run(["export", "--data-dir", data]).output == "variant,warehouse,on_hand\nA,MAIN,5\nB,MAIN,7\n")

            let server = try ServeProcess(dataDirectory: data)
            let whileRunning = try Self.run(["import", "--data-dir", data, file.path])
            #expect(whileRunning.status != 0 && whileRunning.errors.contains("another stockpile process"), "\(whileRunning.errors)")
            #expect(server.stop(with: SIGTERM).status == 0)
        }
    }
}
