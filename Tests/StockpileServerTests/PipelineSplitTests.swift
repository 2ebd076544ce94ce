// However a pipeline's bytes arrive, its replies are the same bytes in the same order: whole in one
// read, cut at random points (1,000 requests deep), cut at every byte boundary (a short pipeline),
// or answered one request per loop turn. A pipeline's runs of RESERVEs go to the engine in one call
// (`Engine.executeRunWithoutWaiting`); one request per turn never forms a run, so comparing the two
// checks the runs against requests one at a time. The pipelines mix runs of new reservations on one
// shard and on several (some with a TTL, a customer or a strategy, on a variant that backorders or one
// that is not counted), replays and conflicting reuses of an id, a sell-out's INSUFFICIENT, requests
// the command table refuses, multi-line and `*` reservations, releases, reads and PING.
// Seeded (STOCKPILE_SEED); the seed is printed.

import Foundation
import Stockpile
import StockpileCore
import StockpileProtocol
import Testing

@testable import StockpileServer

@Suite struct PipelineSplitTests {
    static let variants = ["A", "B", "C", "D", "E", "F", "G", "H"]

    /// A pipeline of `count` requests over a few cells with little stock, so that it sells out.
    static func pipeline(_ count: Int, rng: inout SplitMix64) -> [UInt8] {
        var bytes: [UInt8] = []
        var ids: [String] = []
        func pick(_ a: [String]) -> String { a[Int(rng.next() % UInt64(a.count))] }
        var i = 0
        while i < count {
            switch rng.next() % 12 {
            case 0, 1, 2, 3:
                // A run of new one-line reservations, on one cell or on several.
                let hot = rng.next() % 2 == 0
                let cell = pick(variants)
                for _ in 0..<Int(1 + rng.next() % 8) where i < count {
                    let id = "r\(i)"
                    ids.append(id)
                    // Now and then with the options a reply shows (a TTL's expiry, a customer) or that
                    // are kept with it (a strategy).
                    var options: [String] = []
                    if rng.next() % 3 == 0 { options += ["TTL", "\(60 + rng.next() % 600)"] }
                    if rng.next() % 3 == 0 { options += ["CUSTOMER", "cust\(rng.next() % 5)"] }
                    if rng.next() % 4 == 0 { options += ["STRATEGY", rng.next() % 2 == 0 ? "most" : "priority"] }
                    RequestEncoder.encode(["RESERVE", id, hot ? cell : pick(variants), "MAIN", "\(1 + rng.next() % 3)"] + options, into: &bytes)
                    i += 1
                }
                continue
            case 4:
                // A replay of an earlier id, or a conflicting reuse of it.
                RequestEncoder.encode(["RESERVE", ids.isEmpty ? "r-none" : pick(ids), pick(variants), "MAIN", "1"], into: &bytes)
            case 5:
                let id = "m\(i)"
                ids.append(id)
                RequestEncoder.encode(["reserve", id, pick(variants), "main", "1", pick(variants), "MAIN", "1", pick(variants), "*", "1"], into: &bytes)
            case 6:
                RequestEncoder.encode(["RESERVE", "bad\(i)", pick(variants), "MAIN", rng.next() % 2 == 0 ? "0" : "x"], into: &bytes)
            case 7:
                RequestEncoder.encode(["RELEASE", ids.isEmpty ? "r-none" : pick(ids)], into: &bytes)
            case 8:
                RequestEncoder.encode(["STOCK", pick(variants), "MAIN"], into: &bytes)
            case 9:
                RequestEncoder.encode(["ADJUST", pick(variants), "MAIN", "\(1 + rng.next() % 4)", "REASON", "received"], into: &bytes)
            default:
                RequestEncoder.encode(["PING", "p\(i)"], into: &bytes)
            }
            i += 1
        }
        return bytes
    }

    /// The reply bytes of `bytes` arriving in pieces cut at `cuts` (ascending offsets), on a fresh
    /// engine: each piece is read, then every complete request (at most `perTurn`) is answered as
    /// one loop turn is.
    static func replies(to bytes: [UInt8], cuts: [Int], perTurn: Int = 1_024) async -> [UInt8] {
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4), clock: ManualClock())
        for v in variants { _ = await engine.adjust(variant: v, warehouse: "MAIN", by: 30, reason: .received) }
        // A variant that backorders past its stock, and one that is not counted at all.
        _ = await engine.setPolicy(PolicyChange(variant: "G", backorder: true))
        _ = await engine.setPolicy(PolicyChange(variant: "H", unlimited: true))
        let handler = RequestHandler(engine: engine)
        var session = handler.newSession(id: 1)
        var parser = RequestParser()
        var out: [UInt8] = []
        var from = 0
        for end in cuts + [bytes.count] where end > from {
            parser.append(contentsOf: bytes[from..<end])
            from = end
            while true {
                let (requests, error) = parser.nextRequests(max: perTurn)
                if requests.isEmpty && error == nil { break }
                let result = await handler.run(RequestBatch(requests: requests, protocolError: error), session: session)
                session = result.session
                out += result.bytes
            }
        }
        let problems = await engine.verify()
        #expect(problems.isEmpty, "\(problems)")
        return out
    }

    static func seed() -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 4711
        print("PipelineSplitTests seed \(seed)")
        return seed
    }

    @Test("a pipeline 1,000 deep gets the same replies whole, cut at random points, and one request per turn")
    func deepPipeline() async throws {
        let seed = Self.seed()
        var rng = SplitMix64(seed: seed)
        let bytes = Self.pipeline(1_000, rng: &rng)
        let whole = await Self.replies(to: bytes, cuts: [])
        let oneByOne = await Self.replies(to: bytes, cuts: [], perTurn: 1)
        #expect(String(decoding: whole, as: UTF8.self) == String(decoding: oneByOne, as: UTF8.self), "seed \(seed): runs differ from one request at a time")
        var parser = ReplyParser()
        parser.append(contentsOf: whole)
        var count = 0
        while try parser.next() != nil { count += 1 }
        #expect(count == 1_000, "seed \(seed): \(count) replies to 1,000 requests")
        for round in 0..<6 {
            let cuts = (0..<Int(1 + rng.next() % 200)).map { _ in Int(rng.next() % UInt64(bytes.count)) }.sorted()
            let split = await Self.replies(to: bytes, cuts: cuts)
            #expect(split == whole, "seed \(seed) round \(round): cut at \(cuts.prefix(20))…")
        }
    }

    @Test("a short pipeline cut at every byte boundary gets the replies it gets whole")
    func everyBoundary() async throws {
        let seed = Self.seed()
        var rng = SplitMix64(seed: seed &+ 1)
        let bytes = Self.pipeline(24, rng: &rng)
        let whole = await Self.replies(to: bytes, cuts: [])
        #expect(whole == (await Self.replies(to: bytes, cuts: [], perTurn: 1)), "seed \(seed): runs differ from one request at a time")
        for cut in 1..<bytes.count {
            let split = await Self.replies(to: bytes, cuts: [cut])
            if split != whole {
                Issue.record("seed \(seed): cut at byte \(cut) of \(bytes.count) changes the replies")
                return
            }
        }
    }
}
