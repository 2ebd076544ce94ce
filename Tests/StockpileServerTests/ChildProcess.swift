// A child process for the end-to-end tests, started with posix_spawn. Foundation's `Process.run()` on
// Linux (Swift 6.3.1) can crash while it lists /proc/self/fd (it reads a whole `d_name` past the end
// of readdir's buffer: swift-corelibs-foundation PR #5472), and these tests keep many descriptors
// open; posix_spawn does not walk /proc at all. Standard output and error are read by threads of
// their own, so a chatty child never blocks on a full pipe.

import CStockpileLinux
import Foundation
import Glibc
import Synchronization

final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let output = Collected()
    private let errors = Collected()
    private let readers = DispatchGroup()
    private let exit = Mutex<(status: Int32, signal: Int32?)?>(nil)

    /// Bytes read from one pipe, and a signal for anyone waiting for more.
    private final class Collected: @unchecked Sendable {
        let condition = NSCondition()
        var bytes: [UInt8] = []
        var finished = false
    }

    /// Starts `path` with `arguments`; stdin is the file at `standardInput`, or nothing (/dev/null).
    init(path: String, arguments: [String], standardInput: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        // Close-on-exec from the start, so no other child started meanwhile keeps these pipes open
        // (dup2 onto 1 and 2 clears the flag for this child's copies).
        guard stockpile_pipe_cloexec(&outPipe) == 0, stockpile_pipe_cloexec(&errPipe) == 0 else { throw POSIXError(.EMFILE) }
        posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, nil, argv, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL)
        }
        pid = child
        for (fd, sink) in [(outPipe[0], output), (errPipe[0], errors)] {
            readers.enter()
            Thread.detachNewThread { [readers] in
                var buffer = [UInt8](repeating: 0, count: 16 * 1024)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    sink.condition.lock()
                    if n > 0 { sink.bytes += buffer[..<n] } else { sink.finished = true }
                    sink.condition.broadcast()
                    sink.condition.unlock()
                    if n <= 0 { break }
                }
                close(fd)
                readers.leave()
            }
        }
    }

    /// Waits until standard error holds a line containing `text`, or the child closed it; returns
    /// what standard error held then.
    func waitForErrorLine(containing text: String) -> String {
        errors.condition.lock()
        defer { errors.condition.unlock() }
        while true {
            let sofar = String(decoding: errors.bytes, as: UTF8.self)
            if let range = sofar.range(of: text), sofar[range.upperBound...].contains("\n") { return sofar }
            if errors.finished { return sofar }
            errors.condition.wait()
        }
    }

    func send(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the child to end: its exit status, or the signal that ended it.
    @discardableResult
    func wait() -> (status: Int32, signal: Int32?) {
        if let done = exit.withLock({ $0 }) { return done }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        readers.wait()
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out: the C macros do not import.
        let termination = raw & 0x7F
        let result: (status: Int32, signal: Int32?) = termination == 0 ? ((raw >> 8) & 0xFF, nil) : (128 + termination, termination)
        exit.withLock { $0 = result }
        return result
    }

    /// Standard output and error, once the child has ended.
    var standardOutput: String { output.condition.lock(); defer { output.condition.unlock() }; return String(decoding: output.bytes, as: UTF8.self) }
    var standardError: String { errors.condition.lock(); defer { errors.condition.unlock() }; return String(decoding: errors.bytes, as: UTF8.self) }

    /// Runs to the end and returns the status and both outputs.
    static func run(path: String, arguments: [String], standardInput: String? = nil) throws -> (status: Int32, output: String, errors: String) {
        let child = try ChildProcess(path: path, arguments: arguments, standardInput: standardInput)
        let status = child.wait().status
        return (status, child.standardOutput, child.standardError)
    }
}
