// One client connection as the event loop sees it: bytes in, requests parsed, replies queued out.
// Only the loop thread touches a `Connection`. It keeps true:
// - at most one batch of its requests runs at a time, so replies leave in request order; the
//   session is with that batch while it runs (`session == nil`);
// - it reads only while it has room: a client that does not read its replies, or pipelines faster
//   than it is answered, is simply not read from (back-pressure), never buffered without bound;
// - once closing, nothing more is read or run; what is queued is written, then the socket closes.

import StockpileProtocol

final class Connection {
    let id: UInt64
    let descriptor: Int32
    var parser: RequestParser
    /// Replies waiting to be written: `outbound[outboundOffset...]`.
    var outbound: [UInt8] = []
    var outboundOffset = 0
    /// The session, or nil while a batch holds it.
    var session: SessionState?
    /// The buffer lent to each batch for its replies (`takeRequests`), empty between batches.
    let replies = ReplyBuffer()
    /// The most a buffer keeps of its storage between batches: a connection that once had a long
    /// reply does not keep that memory.
    static let retainedReplyCapacityMax = 64 * 1024
    /// The peer closed its side (or the socket failed): read no more.
    var readClosed = false
    /// Write what is queued, then close (QUIT, a framing error, shutdown).
    var closeAfterFlush = false
    /// What epoll currently watches for this connection.
    var interest: Poller.Interest = .read
    /// Forwards events to a subscriber; nil when the connection subscribes to nothing.
    var subscription: Task<Void, Never>?

    init(id: UInt64, descriptor: Int32, session: SessionState, limits: ProtocolLimits) {
        self.id = id
        self.descriptor = descriptor
        self.session = session
        self.parser = RequestParser(limits: limits)
    }

    var pendingOutboundByteCount: Int { outbound.count - outboundOffset }
    var isRunningBatch: Bool { session == nil }

    /// Queues a batch's replies, and empties the buffer for the next batch. With nothing left to
    /// write, the buffers trade places instead of the bytes being copied.
    func enqueue(_ replies: ReplyBuffer) {
        if outboundOffset == outbound.count {
            outboundOffset = 0
            swap(&outbound, &replies.bytes)
        } else {
            outbound.append(contentsOf: replies.bytes)
        }
        replies.bytes.removeAll(keepingCapacity: replies.bytes.capacity <= Self.retainedReplyCapacityMax)
    }

    func enqueue(_ bytes: [UInt8]) {
        if outboundOffset == outbound.count {
            outbound.removeAll(keepingCapacity: true)
            outboundOffset = 0
        }
        outbound.append(contentsOf: bytes)
    }

    /// Writes as much as the socket takes. Returns false when the peer is gone.
    func flush(statistics: ServerStatistics) -> Bool {
        while outboundOffset < outbound.count {
            let result = outbound.withUnsafeBytes { Socket.write(descriptor, UnsafeRawBufferPointer(rebasing: $0[outboundOffset...])) }
            switch result {
            case .bytes(let n):
                outboundOffset += n
                statistics.bytesWritten.add(n, ordering: .relaxed)
            case .wouldBlock:
                return true
            case .closed:
                return false
            }
        }
        outbound.removeAll(keepingCapacity: outbound.capacity <= 1 << 20)  // keep a modest buffer, not a huge one
        outboundOffset = 0
        return true
    }

    /// Takes up to `max` complete requests from what was read, and the framing error that stops
    /// the pipeline if there is one.
    func takeRequests(max: Int) -> RequestBatch {
        let (requests, error) = parser.nextRequests(max: max)
        return RequestBatch(requests: requests, protocolError: error, replies: replies)
    }
}
