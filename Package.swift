// swift-tools-version:6.0
// Stockpile: an in-memory, concurrent inventory reservation engine. No dependencies beyond the toolchain.
import PackageDescription

let package = Package(
    name: "Stockpile",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Stockpile", targets: ["Stockpile"]),
        .executable(name: "stockpile", targets: ["stockpile"]),
        .executable(name: "stockpile-bench", targets: ["stockpile-bench"]),
    ],
    targets: [
        // Pure domain: ids, quantities, cells, reservations, commands, outcomes and the decision rules. No I/O, no actors.
        .target(name: "StockpileCore"),
        // The write-ahead log's byte format: CRC-32C, record and commit encoding (the writer, group
        // commit, snapshots and recovery build on it).
        .target(name: "StockpileWAL", dependencies: ["StockpileCore", "CStockpileLinux"]),
        // The engine that users embed: shard actors, the ledger, expiry, the public API.
        .target(name: "Stockpile", dependencies: ["StockpileCore", "StockpileWAL", "CStockpileLinux"]),
        // The few Linux calls Swift's Glibc module does not export (epoll, eventfd), SSE 4.2's CRC32
        // instruction, the compiler's prefetch hint and an 8-byte load of half a 16-byte atomic word,
        // wrapped in C.
        .target(name: "CStockpileLinux"),
        // A malloc interposer that counts allocations, linked only into the benchmark and the tests
        // (swift-nio's allocation tests count the same way): allocations per reservation is a number
        // with a limit. It also wraps malloc_trim, which the memory scenario calls before reading the
        // resident set.
        .target(name: "CAllocationCounter"),
        // The wire without sockets: RESP framing and parsing, the command table, reply encoding (and
        // SocketError, which both ends of the wire throw).
        .target(name: "StockpileProtocol", dependencies: ["StockpileCore"]),
        // The TCP server: the epoll loop, connections, sessions, auth and limits.
        .target(name: "StockpileServer", dependencies: ["Stockpile", "StockpileProtocol", "CStockpileLinux"]),
        // The client side of the wire: a blocking RESP connection, and a thread of its own to block
        // on. What `stockpile cli`, the benchmark, the load scenarios and the tests talk to a server
        // with; it knows the protocol and nothing of the server or the engine.
        .target(name: "StockpileClient", dependencies: ["StockpileProtocol"]),
        .executableTarget(name: "stockpile", dependencies: ["Stockpile", "StockpileServer", "StockpileClient", "CStockpileLinux"]),
        // Load scenarios (the flash sale) that drive an engine in-process or a server over TCP alike.
        .target(name: "StockpileLoad", dependencies: ["Stockpile", "StockpileClient", "StockpileProtocol"]),
        .executableTarget(
            name: "stockpile-bench", dependencies: ["Stockpile", "StockpileServer", "StockpileClient", "StockpileProtocol", "StockpileLoad", "CAllocationCounter", "CStockpileLinux"],
            path: "Benchmarks/stockpile-bench"),
        .testTarget(name: "StockpileCoreTests", dependencies: ["StockpileCore"]),
        .testTarget(name: "StockpileWALTests", dependencies: ["StockpileWAL"]),
        .testTarget(name: "StockpileTests", dependencies: ["Stockpile"]),
        .testTarget(name: "StockpileProtocolTests", dependencies: ["StockpileProtocol"]),
        // clients/ holds the Python script the real-client tests run.
        .testTarget(name: "StockpileServerTests", dependencies: ["StockpileServer", "StockpileClient", "StockpileWAL"], exclude: ["clients"]),
        .testTarget(name: "StockpileLoadTests", dependencies: ["StockpileLoad", "StockpileServer"]),
    ]
)
