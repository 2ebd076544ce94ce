// A server started in-process on a free loopback port, on an engine of its own, for the flash sale
// over TCP; stopped by the test whatever happens.

import Stockpile
import StockpileServer

/// Runs `body` with a server on 127.0.0.1 and stops the server afterwards, whatever happens.
func withLoopbackServer<T: Sendable>(engine: Engine, _ body: (Server) async throws -> T) async throws -> T {
    let server = try Server(engine: engine, configuration: ServerConfiguration(host: "127.0.0.1", port: 0), log: { _ in })
    let result: Result<T, any Error>
    do {
        result = .success(try await body(server))
    } catch {
        result = .failure(error)
    }
    await server.stop()
    return try result.get()
}
