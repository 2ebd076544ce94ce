// RESET over the wire: refused unless the server was started with --allow-reset (and then still only
// for the admin role, see AuthTests), and when allowed it answers +OK and the engine is empty.

import Stockpile
import StockpileProtocol
import Testing

@testable import StockpileServer

@Suite("RESET command")
struct ResetCommandTests {
    @Test("RESET is refused without --allow-reset and changes nothing")
    func refusedByDefault() async throws {
        try await withServer { server in
            let client = try server.client()
            _ = try client.call(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])
            let reply = try client.call(["RESET"])
            #expect(reply?.errorText?.hasPrefix("ERR RESET is disabled") == true, "\(String(describing: reply))")
            #expect(reply?.errorText?.contains("--allow-reset") == true)
            #expect(try client.call(["STOCK", "SKU", "MAIN"])?[field: "on_hand"]?.integerValue == 5)
        }
    }

    @Test("RESET takes no arguments: one more word is a wrong number of arguments and changes nothing, even when allowed")
    func noArguments() async throws {
        try await withServer(configure: { $0.allowReset = true }) { server in
            let client = try server.client()
            _ = try client.call(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])
            let reply = try client.call(["RESET", "ALL"])
            #expect(reply?.errorText == "ERR wrong number of arguments for 'reset' command", "\(String(describing: reply))")
            #expect(try client.call(["STOCK", "SKU", "MAIN"])?[field: "on_hand"]?.integerValue == 5)
        }
    }

    @Test("with --allow-reset, RESET answers +OK and leaves an empty engine")
    func allowed() async throws {
        try await withServer(configure: { $0.allowReset = true }) { server in
            let client = try server.client()
            _ = try client.call(["ADJUST", "SKU", "MAIN", "5", "REASON", "received"])
            _ = try client.call(["RESERVE", "r1", "SKU", "MAIN", "2"])
            #expect(try client.call(["RESET"]) == .simple("OK"))
            #expect(try client.call(["STOCK", "SKU", "MAIN"])?[field: "on_hand"]?.integerValue == 0)
            #expect(try client.call(["RESERVATION", "r1"])?.errorText?.hasPrefix("NOTFOUND") == true)
            #expect(try client.call(["STATS"])?[field: "active_reservations"]?.integerValue == 0)
        }
    }
}
