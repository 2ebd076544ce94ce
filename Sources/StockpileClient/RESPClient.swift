// A small blocking RESP client: what `stockpile cli`, the benchmark's TCP mode and the end-to-end
// tests use to talk to a server. One connection, requests written whole, replies parsed as they
// arrive; any number of requests may be sent before their replies are read (pipelining).
//
// One thread uses a client at a time, with one exception that tests of back-pressure need: one
// thread may `flush` while another calls `receive`, since the two touch disjoint state.

import Glibc
import StockpileProtocol

public final class RESPClient: @unchecked Sendable {
    private let descriptor: Int32
    private var parser = ReplyParser()
    private var outbound: [UInt8] = []
    private var readBuffer = [UInt8](repeating: 0, count: 16 * 1024)

    /// Connects to host:port. `timeoutSeconds` bounds every wait for a reply (0 waits forever).
    public init(host: String, port: Int, timeoutSeconds: Int = 30) throws(SocketError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw SocketError("resolve \(host): \(String(cString: gai_strerror(rc)))", errno: 0) }
        defer { freeaddrinfo(list) }
        var lastErrno: Int32 = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastErrno = errno
                continue
            }
            if connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                if timeoutSeconds > 0 {
                    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
                    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                }
                descriptor = fd
                return
            }
            lastErrno = errno
            Glibc.close(fd)
        }
        throw SocketError("connect to \(host):\(port)", errno: lastErrno)
    }

    deinit { Glibc.close(descriptor) }

    /// Queues a request; `flush` or `reply` sends it.
    public func enqueue(_ words: [String]) {
        RequestEncoder.encode(words, into: &outbound)
    }

    /// Queues bytes as they are (for tests of malformed input).
    public func enqueueRaw(_ bytes: [UInt8]) {
        outbound.append(contentsOf: bytes)
    }

    public func flush() throws(SocketError) {
        var offset = 0
        while offset < outbound.count {
            let n = outbound.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketError("send", errno: errno)
            }
            offset += n
        }
        outbound.removeAll(keepingCapacity: true)
    }

    /// The next reply, sending whatever is queued first. Nil when the server closed the connection.
    public func reply() throws(SocketError) -> ReplyFrame? {
        try flush()
        return try receive()
    }

    /// The next reply, without sending anything. Nil when the server closed the connection.
    public func receive() throws(SocketError) -> ReplyFrame? {
        while true {
            do {
                if let frame = try parser.next() { return frame }
            } catch {
                throw SocketError("reply: \(error.message)", errno: EPROTO)
            }
            let n = readBuffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketError("recv", errno: errno)
            }
            readBuffer.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
    }

    /// Sends one request and waits for its reply.
    public func call(_ words: [String]) throws(SocketError) -> ReplyFrame? {
        enqueue(words)
        return try reply()
    }
}
