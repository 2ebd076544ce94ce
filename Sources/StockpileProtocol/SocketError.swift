// A socket or epoll call that failed, with the call and its errno. Both ends of the wire throw it —
// the server's listener and event loop, the client's connection — and this module is the one both
// depend on, so the type lives here although nothing in this module opens a socket.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A socket or epoll call that failed.
public struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
