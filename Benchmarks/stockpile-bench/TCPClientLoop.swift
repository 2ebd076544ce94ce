// One client thread of TCP mode: it keeps `pipeline` RESERVE requests in flight on its own connection
// (writes a batch, reads that many replies, repeats) until the deadline, and counts what came back.
// It runs on a thread of its own because `RESPClient` blocks in `send` and `recv`; on the cooperative
// pool it would stall every other task.
//
// Every request's id is unique across clients and runs: the run's prefix (the clock and the process
// id), the client's index and a counter. A request's latency runs from the moment its batch was
// written to the moment its reply was read.

import Stockpile
import StockpileProtocol
import StockpileClient

struct TCPClientResult: Sendable {
    var histogram = LatencyHistogram()
    var ok = 0
    /// Units the successful replies reserved, in all and per cell (by index into the variants).
    var okUnits: Int64 = 0
    var reservedByCell: [Int: Int64] = [:]
    /// Error replies by their code (the first word of the text): refusals are the engine's own codes
    /// (INSUFFICIENT, …), errors everything else (ERR, NOAUTH, or `UNEXPECTED` for a reply that is
    /// neither a record nor an error).
    var refused: [String: Int] = [:]
    var errors: [String: Int] = [:]
    /// Why the connection ended before the deadline, and how many requests were left without a reply
    /// (their outcome is unknown, so the oversell check cannot balance).
    var failure: String?
    var unanswered = 0

    var replies: Int { ok + refused.values.reduce(0, +) + errors.values.reduce(0, +) }
}

struct TCPClientLoop: Sendable {
    /// The variants' names as bytes, so that requests are written without building strings.
    var variants: [[UInt8]]
    /// Lines per request: 1, or 3 on three different cells for multiline.
    var linesPerRequest: Int
    var pipeline: Int
    /// The run's part of every id.
    var runPrefix: String

    static let refusalCodes = Set(RefusalCode.allCases.map(\.name))

    func run(client: RESPClient, index: Int, deadline: ContinuousClock.Instant) -> TCPClientResult {
        precondition(variants.count >= linesPerRequest, "each line of a request needs a cell of its own")
        var result = TCPClientResult()
        var rng = SplitMix64(seed: UInt64(index) &* 0x1234_5678_9ABC_DEF1 &+ 42)
        let idPrefix = Array("\(runPrefix)-\(index)-".utf8)
        let reserveWord = Array("RESERVE".utf8)
        let warehouseWord = Array("MAIN".utf8)
        let quantityWord = Array("1".utf8)
        var counter = 0
        var writer = RequestWriter()
        // The cells of the batch in flight, `linesPerRequest` per request in order.
        var batchCells: [Int] = []
        batchCells.reserveCapacity(pipeline * linesPerRequest)

        while ContinuousClock.now < deadline {
            writer.removeAll()
            batchCells.removeAll(keepingCapacity: true)
            for _ in 0..<pipeline {
                counter += 1
                writer.arrayHeader(2 + 3 * linesPerRequest)
                writer.bulk(reserveWord)
                writer.bulk(idPrefix, counter)
                let first = batchCells.count
                while batchCells.count - first < linesPerRequest {
                    let cell = Int(rng.next() % UInt64(variants.count))
                    if batchCells[first...].contains(cell) { continue }
                    batchCells.append(cell)
                    writer.bulk(variants[cell])
                    writer.bulk(warehouseWord)
                    writer.bulk(quantityWord)
                }
            }
            client.enqueueRaw(writer.bytes)
            let written = ContinuousClock.now
            do {
                try client.flush()
            } catch {
                result.failure = "\(error)"
                result.unanswered += pipeline
                return result
            }
            for k in 0..<pipeline {
                let frame: ReplyFrame?
                do {
                    frame = try client.receive()
                } catch {
                    result.failure = "\(error)"
                    result.unanswered += pipeline - k
                    return result
                }
                guard let frame else {
                    result.failure = "the server closed the connection"
                    result.unanswered += pipeline - k
                    return result
                }
                result.histogram.record(UInt64(max(0, (ContinuousClock.now - written).wholeNanoseconds)))
                switch frame {
                case .array, .record:
                    result.ok += 1
                    result.okUnits += Int64(linesPerRequest)
                    for cell in batchCells[(k * linesPerRequest)..<((k + 1) * linesPerRequest)] {
                        result.reservedByCell[cell, default: 0] += 1
                    }
                case .error(let text):
                    let code = String(text.prefix { $0 != " " })
                    if TCPClientLoop.refusalCodes.contains(code) {
                        result.refused[code, default: 0] += 1
                    } else {
                        result.errors[code, default: 0] += 1
                    }
                default:
                    result.errors["UNEXPECTED", default: 0] += 1
                }
            }
        }
        return result
    }
}
