// A connection's part of a server loop's turns, without the socket, for the scenarios that count or
// time the request handler's work (`allocations`, `wire`): a pipeline's bytes go through one reused
// request parser, as a connection's do, and its requests are answered as one turn's batch through the
// request handler, with the lists a loop keeps from turn to turn (the batches, the results,
// `TurnScratch`) and the connection's reply buffer, lent to each batch and emptied after.

import Stockpile
import StockpileProtocol
import StockpileServer

final class HandlerTurns {
    private let handler: RequestHandler
    private var parser = RequestParser()
    private var session: SessionState
    private let replies = ReplyBuffer()
    private var turnBatches: [(RequestBatch, SessionState)] = []
    private var turnResults: [BatchResult] = []
    private var turnScratch = TurnScratch()

    init(engine: Engine) {
        handler = RequestHandler(engine: engine)
        session = handler.newSession(id: 1)
    }

    /// The bytes of `count` requests (`words(i)` for the i-th), as a client sends them in pipelines of
    /// `pipeline`: one array per pipeline, the last one filled up past `count` if it does not divide.
    static func pipelines(count: Int, of pipeline: Int, _ words: (Int) -> [String]) -> [[UInt8]] {
        stride(from: 0, to: count, by: pipeline).map { start in
            var bytes: [UInt8] = []
            for i in start..<start + pipeline { RequestEncoder.encode(words(i), into: &bytes) }
            return bytes
        }
    }

    /// Answers the `pipeline` requests of `bytes` as one turn; returns how many bytes the replies took.
    @discardableResult
    func answer(_ bytes: [UInt8], pipeline: Int) async -> Int {
        bytes.withUnsafeBytes { parser.append($0) }
        let (requests, error) = parser.nextRequests(max: pipeline)
        precondition(error == nil && requests.count == pipeline, "the pipeline did not parse")
        turnBatches.append((RequestBatch(requests: requests, replies: replies), session))
        await handler.run(&turnBatches, into: &turnResults, scratch: &turnScratch)
        turnBatches.removeAll(keepingCapacity: true)
        session = turnResults[0].session
        // As the loop does: the batch's requests go back to the parser, for the next batch.
        parser.recycle(turnResults[0].takeRequests())
        turnResults.removeAll(keepingCapacity: true)
        let replyByteCount = replies.bytes.count
        replies.bytes.removeAll(keepingCapacity: true)
        return replyByteCount
    }
}
