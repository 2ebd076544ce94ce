// A server started in-process on a free loopback port, on an engine of its own, for the end-to-end
// tests; and helpers to talk to it.

import Foundation
import Stockpile
import StockpileClient
import Synchronization
import StockpileProtocol
import Testing

@testable import StockpileServer

final class TestServer: Sendable {
    let engine: Engine
    let server: Server
    var port: Int { server.port }

    /// Starts a server; `configure` adjusts the configuration (limits, auth) first.
    init(engine: Engine = Engine(), configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configure(&configuration)
        self.engine = engine
        server = try Server(engine: engine, configuration: configuration, log: { _ in })
    }

    func client(timeoutSeconds: Int = 10) throws -> RESPClient {
        try RESPClient(host: "127.0.0.1", port: port, timeoutSeconds: timeoutSeconds)
    }

    /// Sends one command on a new connection and returns the reply.
    func call(_ words: String...) throws -> ReplyFrame? {
        try client().call(words)
    }

    func stop() async {
        await server.stop()
    }
}

/// Runs `body` with a started server and stops it afterwards, whatever happens.
///
/// The body runs on a thread of its own (a task executor with one thread), not on the cooperative
/// pool: `RESPClient` blocks in `recv`, and the server's batches run as tasks on that pool (two
/// threads on this machine), so a blocking client there could starve the very server it waits
/// for. Being still a task of the test, the body's expectations are reported against the test.
func withServer<T: Sendable>(
    engine: Engine = Engine(), configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestServer) async throws -> T
) async throws -> T {
    let server = try TestServer(engine: engine, configure: configure)
    let result = await onOwnThread { () async -> Result<T, any Error> in
        do { return .success(try await body(server)) } catch { return .failure(error) }
    }
    await server.stop()
    return try result.get()
}

/// Runs `body` on a thread of its own, where it may block, as a task of the caller (so its
/// expectations count against the test that runs it).
func onOwnThread<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    let executor = ThreadExecutor()
    defer { executor.stop() }
    return try await withTaskExecutorPreference(executor) { try await body() }
}

/// Runs blocking work on a new thread and waits for it without holding a cooperative thread.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 4 << 20
        thread.start()
    }
}

extension ReplyFrame {
    /// A record's field by name (RESP3 map, or a RESP2 flat array of pairs).
    subscript(field name: String) -> ReplyFrame? {
        switch self {
        case .record(let fields): return fields.first { $0.name == name }?.value
        case .array(let items) where items.count % 2 == 0:
            var i = 0
            while i < items.count {
                if let key = items[i].bulkBytes, String(decoding: key, as: UTF8.self) == name { return items[i + 1] }
                i += 2
            }
            return nil
        default: return nil
        }
    }

    var integerValue: Int64? {
        if case .integer(let n) = self { return n }
        return nil
    }

    var textValue: String? {
        switch self {
        case .bulk(let b): String(decoding: b, as: UTF8.self)
        case .string(let s): s
        case .simple(let s): s
        default: nil
        }
    }

    var errorText: String? {
        if case .error(let e) = self { return e }
        return nil
    }
}
