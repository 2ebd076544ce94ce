// The server's only contact with the operating system's sockets and epoll: thin wrappers that retry
// EINTR, report every other failure as a `SocketError` carrying the call and the errno, and crash on
// errnos that can only mean a bug in this process (EBADF, EFAULT, EINVAL on a call we built).
// `SocketError` lives in StockpileProtocol, which the client shares.

import CStockpileLinux
import Glibc
import StockpileProtocol

enum Socket {
    /// What a non-blocking read or write did.
    enum Transfer {
        case bytes(Int)
        /// The call would block (EAGAIN): wait for readiness.
        case wouldBlock
        /// End of stream (read) or the peer is gone (write: EPIPE, ECONNRESET).
        case closed
    }

    private static func checkNotABug(_ call: String, _ e: Int32) {
        precondition(e != EBADF && e != EFAULT, "\(call) on a descriptor this process does not own: errno \(e)")
    }

    /// Opens a listening TCP socket on host:port (port 0 picks a free one), non-blocking, with
    /// SO_REUSEADDR so a restart can bind while old connections linger in TIME_WAIT. Returns the
    /// descriptor and the port actually bound.
    static func listen(host: String, port: Int, backlog: Int32 = 1024) throws(SocketError) -> (descriptor: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw SocketError("resolve \(host): \(String(cString: gai_strerror(rc)))", errno: 0)
        }
        defer { freeaddrinfo(list) }
        var lastError = SocketError("bind \(host):\(port)", errno: EADDRNOTAVAIL)
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = SocketError("socket", errno: errno)
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
                lastError = SocketError("bind \(host):\(port)", errno: errno)
                close(fd)
                continue
            }
            if Glibc.listen(fd, backlog) != 0 {
                lastError = SocketError("listen \(host):\(port)", errno: errno)
                close(fd)
                continue
            }
            return (fd, try boundPort(fd))
        }
        throw lastError
    }

    private static func boundPort(_ fd: Int32) throws(SocketError) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SocketError("getsockname", errno: errno) }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
        default:
            throw SocketError("getsockname: unexpected address family \(storage.ss_family)", errno: 0)
        }
    }

    /// Accepts one pending connection, non-blocking, with TCP_NODELAY set (replies are small and must
    /// not wait for Nagle). Nil when none is pending, or when the call failed for a reason that
    /// concerns only that connection (it was reset before we took it). Throws when the process is out
    /// of descriptors or memory, so the caller can stop accepting for a while.
    static func accept(_ listener: Int32) throws(SocketError) -> Int32? {
        while true {
            let fd = stockpile_accept(listener)
            if fd >= 0 {
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            case ECONNABORTED, EPROTO, EPERM: return nil
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: throw SocketError("accept", errno: e)
            default:
                checkNotABug("accept", e)
                throw SocketError("accept", errno: e)
            }
        }
    }

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Transfer {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default:
                checkNotABug("read", e)
                return .closed  // ECONNRESET, ETIMEDOUT, …: the connection is gone
            }
        }
    }

    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Transfer {
        while true {
            // MSG_NOSIGNAL: a peer that went away must not kill the server with SIGPIPE.
            let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default:
                checkNotABug("send", e)
                return .closed
            }
        }
    }

    /// Closes a descriptor. EINTR is not retried: on Linux the descriptor is released anyway, and a
    /// retry could close one another thread just opened.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}

/// An epoll instance and the eventfd that wakes it from other threads.
final class Poller {
    let descriptor: Int32
    let wakeDescriptor: Int32
    private var events: [stockpile_epoll_event]

    static let wakeToken = UInt64.max
    static let listenerToken = UInt64.max - 1

    struct Interest: OptionSet, Hashable {
        let rawValue: UInt32
        static let read = Interest(rawValue: STOCKPILE_EPOLLIN)
        static let write = Interest(rawValue: STOCKPILE_EPOLLOUT)
    }

    init(eventCountMax: Int = 256) throws(SocketError) {
        let ep = stockpile_epoll_create()
        guard ep >= 0 else { throw SocketError("epoll_create1", errno: errno) }
        let wake = stockpile_eventfd()
        guard wake >= 0 else {
            let e = errno
            Socket.close(ep)
            throw SocketError("eventfd", errno: e)
        }
        descriptor = ep
        wakeDescriptor = wake
        events = [stockpile_epoll_event](repeating: stockpile_epoll_event(), count: eventCountMax)
        try add(wake, token: Self.wakeToken, interest: .read)
    }

    deinit {
        Socket.close(wakeDescriptor)
        Socket.close(descriptor)
    }

    func add(_ fd: Int32, token: UInt64, interest: Interest) throws(SocketError) {
        guard stockpile_epoll_ctl(descriptor, 1, fd, interest.rawValue, token) == 0 else { throw SocketError("epoll_ctl add", errno: errno) }
    }

    func modify(_ fd: Int32, token: UInt64, interest: Interest) {
        let rc = stockpile_epoll_ctl(descriptor, 3, fd, interest.rawValue, token)
        precondition(rc == 0, "epoll_ctl modify of a registered descriptor failed: errno \(errno)")
    }

    func remove(_ fd: Int32) {
        _ = stockpile_epoll_ctl(descriptor, 2, fd, 0, 0)
    }

    /// Waits up to `timeoutMilliseconds` and calls `body` with each ready descriptor's token and its
    /// epoll event bits.
    func wait(timeoutMilliseconds: Int32, _ body: (UInt64, UInt32) -> Void) {
        let n = events.withUnsafeMutableBufferPointer { stockpile_epoll_wait(descriptor, $0.baseAddress, Int32($0.count), timeoutMilliseconds) }
        if n < 0 {
            precondition(errno == EINTR, "epoll_wait failed: errno \(errno)")
            return
        }
        for i in 0..<Int(n) { body(events[i].data, events[i].events) }
    }

    /// Wakes `wait` from any thread.
    func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeDescriptor, &one, 8)
    }

    /// Clears the wake-up counter; called by the loop when the wake token fires.
    func drainWake() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeDescriptor, &value, 8)
    }
}
