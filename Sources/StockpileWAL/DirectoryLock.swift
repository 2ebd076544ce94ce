// One writer per data directory: a process that writes a log holds an exclusive flock on the
// directory's LOCK file for as long as it runs. A second server, or a repair, on the same directory is
// refused instead of interleaving its records with the first one's. The kernel releases the lock when
// the process ends, however it ends, so a crash never leaves a stale lock behind.

import Glibc
import Synchronization

public final class DirectoryLock: Sendable {
    /// The data directory, and its LOCK file.
    public let directory: String
    public let path: String
    /// The open LOCK file while the lock is held; -1 once released.
    private let descriptor: Mutex<Int32>

    /// The lock file's name inside a data directory.
    public static let fileName = "LOCK"

    /// Why the lock could not be taken.
    public enum Failure: Error, CustomStringConvertible {
        /// Another process holds it.
        case held(path: String)
        case io(WALIOError)

        public var description: String {
            switch self {
            case .held(let path): "another stockpile process is using this data directory (it holds \(path)); stop it first"
            case .io(let e): "\(e)"
            }
        }
    }

    /// Takes the lock of `directory`, creating the LOCK file if needed. Waits at most half a second
    /// for a holder to let go: a process that forks (to run a tool, say) lends its descriptors to the
    /// child until the child's exec closes them, so a lock just released can look held for a moment.
    public init(directory: String) throws(Failure) {
        let path = directory.hasSuffix("/") ? directory + Self.fileName : directory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(WALIOError(operation: .open, path: path, errno: errno)) }
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK && attempts < 50 {
                attempts += 1
                usleep(10_000)
                continue
            }
            close(fd)
            if e == EWOULDBLOCK { throw .held(path: path) }
            throw .io(WALIOError(operation: .open, path: path, errno: e))
        }
        self.directory = directory
        self.path = path
        self.descriptor = Mutex(fd)
    }

    /// Lets the directory go (the engine closed its log). Idempotent.
    public func release() {
        descriptor.withLock { fd in
            // Closing the descriptor releases the lock.
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    deinit {
        release()
    }
}
