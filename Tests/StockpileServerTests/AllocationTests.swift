// Allocations per operation of the engine's hot paths, counted (never timed) by running
// `stockpile-bench allocations`, which links the malloc interposer, as a child process: the count is
// process-wide, and tests running beside each other in this process would add to it.

import Foundation
import Testing

@testable import StockpileServer

@Suite("Allocations per operation")
struct AllocationTests {
    /// The most allocations each operation may make, as measured when the limit was set, for the
    /// build configuration the tests run in (the benchmark beside them is built the same way; a debug
    /// build keeps temporaries an optimised one does not, and checks each one-line reservation
    /// against the general path's value, which allocates). A change that allocates more fails here. A
    /// new one-line reservation allocates nothing (it is made, kept and answered without a line
    /// array); a retry of one builds the reservation from its compact entry (one array). The `wire_` figures
    /// are a request's bytes through the request parser and the request handler, engine included:
    /// what the wire adds is the difference (in release builds, next to nothing: a RESERVE's array of
    /// lines is one a RESERVE answered earlier no longer needs, `SpareLines`; a run of RESERVEs is
    /// decided, and a batch's start times and reply ranges are kept until the log answers, in arrays
    /// the loop keeps from turn to turn, `TurnScratch`; a pipeline's requests share one array of
    /// bytes). A pipeline's run of RESERVEs goes to the engine in one call, which saves
    /// entering the shard and its lock per request.
    /// `reserve_across_shards` is a reservation of three lines in three shards: its lines and the box
    /// it is kept in (two in an optimised build; three while an engine without a log built its ledger
    /// entries and their list, which it now keeps from the lines' figures; four while its cells' figures were
    /// gathered into an array, not room on the stack, five while the list of its routed cells was an
    /// array, six while its fingerprint was a sorted copy of its lines), made before the shards are held
    /// where they can be; a list handed to the decision with a second reference to it was copied while
    /// they were held (eight). The debug build also decides each one the general way to check it.
    /// `wire_release` is a RELEASE of one of `wire_reserve`'s reservations, in pipelines of 16 (the
    /// benchmark checks that each was released): two in an optimised
    /// build, as `release` in process, which the wire adds nothing to (a RELEASE is decided the
    /// general way, through a commit, where a new one-line reservation has a path of its own).
    /// `wire_reserve_p64` is a batch of 64 RESERVEs, longer than a client at pipeline 16 sends.
    /// `wire_reserve_p1` is a RESERVE alone in its batch (an unpipelined client): nothing (a batch of
    /// one keeps its start time and its reply's range inline, and its latency is counted without a
    /// closure). The replies go into the connection's buffer, lent to each
    /// batch (`ReplyBuffer`); the batch's list of requests and their bytes go back to the connection's
    /// parser with its result, for a later batch (`RequestParser.recycle`); the turn's lists of batches
    /// and of results are kept from turn to turn, as the loop keeps them.
    /// `wire_reserve_long_names` is a RESERVE with a 24-byte order id and a 16-byte SKU: Swift keeps a
    /// string of up to 15 UTF-8 bytes inline, and a longer one in an object of its own, made when the
    /// command table reads the word. One in an optimised build, the id's, the reservation's own for as
    /// long as it is kept: the SKU, the same in every RESERVE here, is read into a string once and
    /// shared by the RESERVEs after it (`SpareLines.variant`; two while each made its own).
    /// `reserve_durable` is a one-line reservation in an engine with a log (`always`), made by 64
    /// tasks at once, the log's work included: a few allocations per commit, shared by the few dozen
    /// reservations it acknowledges. It was one per reservation (1.08) while the log's thread resumed
    /// every waiting task itself, each resumption a dispatch continuation from the heap
    /// (`GroupCommitter.acknowledge`); the log's thread still resumes one per processor
    /// (`GroupCommitter.directResumeCount`), so its limit is `durableLimitBase` plus their share of
    /// a reservation, which depends on the machine: those waiters over the records a sync covers.
    #if DEBUG
    static let limits: [String: Double] = [
        "reserve": 8.5, "reserve_replay": 3.5, "release": 12.5, "adjust": 5.5, "cell": 0.5, "reserve_across_shards": 85.0,
        "wire_reserve": 91.5, "wire_stock": 49.0, "wire_release": 52.5, "wire_reserve_p1": 87.5, "wire_reserve_p64": 91.5,
        "wire_reserve_long_names": 92.5,
    ]
    static let durableLimitBase = 57.0
    #else
    static let limits: [String: Double] = [
        "reserve": 0.5, "reserve_replay": 1.5, "release": 2.5, "adjust": 1.5, "cell": 0.5, "reserve_across_shards": 2.5,
        "wire_reserve": 0.05, "wire_stock": 0.05, "wire_release": 2.5, "wire_reserve_p1": 0.05, "wire_reserve_p64": 0.1,
        "wire_reserve_long_names": 1.5,
    ]
    static let durableLimitBase = 0.3
    #endif

    @Test("no hot operation allocates more than its limit")
    func withinLimits() throws {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        let bench = directory.appendingPathComponent("stockpile-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "stockpile-bench is not at \(bench): build it with `swift build`")
        let child = try ChildProcess(path: bench, arguments: ["allocations", "--json"])
        let status = child.wait().status
        #expect(status == 0)
        let lastLine = child.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(child.standardOutput)")
        for (name, limit) in Self.limits {
            let measured = try #require(object["\(name)_allocations"] as? Double, "no figure for \(name)")
            #expect(measured <= limit, "\(name): \(measured) allocations per operation, over its limit \(limit)")
        }
        let durable = try #require(object["reserve_durable_allocations"] as? Double, "no figure for reserve_durable")
        let perSync = try #require(object["reserve_durable_records_per_sync"] as? Double)
        let direct = try #require(object["direct_resume_count"] as? Int)
        let durableLimit = Self.durableLimitBase + Double(direct) / max(1, perSync)
        #expect(durable <= durableLimit, "reserve_durable: \(durable) allocations per reservation, over its limit \(durableLimit) (\(perSync) records a sync, \(direct) resumed on the log's thread)")
        // A batch of 64 RESERVEs allocates per request what one of 16 does, in either build: its
        // arrays of lines come back for the next batch as those of a shorter one do (`SpareLines`).
        // Kept 16 at a time, the other 48 were made again each batch (0.75 more per request in a release build).
        let deep = try #require(object["wire_reserve_p64_allocations"] as? Double)
        let usual = try #require(object["wire_reserve_allocations"] as? Double)
        #expect(deep <= usual + 0.5, "RESERVE at pipeline 64: \(deep) allocations, at 16: \(usual)")
    }
}
