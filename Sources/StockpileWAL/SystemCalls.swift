// The only place the log touches the operating system: thin wrappers over open, pread, pwrite,
// fdatasync, fsync, close, rename, unlink and directory listing, behind the `FileSystem` protocol so
// that tests can run the writer and recovery on `SimulatedFileSystem` and make the k-th write or sync
// fail; and the priority of the log's background threads. It keeps true: every call retries EINTR
// (except close, see there), short reads and writes are looped until done, a failure is a
// `WALIOError` carrying the operation, the path, the offset and the errno, and errnos that can only
// mean a bug in this process (EBADF, EFAULT) crash instead.

import CStockpileLinux
import Foundation
import Glibc

/// An operating-system call that failed, with what it was doing and where.
public struct WALIOError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Operation: String, Hashable, Sendable {
        case open, read, write, syncData = "fdatasync", sync = "fsync", close, rename, unlink, list, stat
    }

    public var operation: Operation
    public var path: String
    /// The file offset of a read or write; nil for calls that have none.
    public var offset: Int?
    public var errno: Int32
    /// The data directory the file belongs to (absolute), when the failure stopped its log: what an
    /// operator must free space on or look at. Set by the segment writer; nil elsewhere.
    public var dataDirectory: String?

    public init(operation: Operation, path: String, offset: Int? = nil, errno: Int32, dataDirectory: String? = nil) {
        self.operation = operation
        self.path = path
        self.offset = offset
        self.errno = errno
        self.dataDirectory = dataDirectory
    }

    /// What strerror says about `errno`.
    public var errnoDescription: String { String(cString: strerror(errno)) }

    public var description: String {
        let at = offset.map { " at offset \($0)" } ?? ""
        return "\(operation.rawValue) \(path)\(at) failed: \(errnoDescription) (errno \(errno))"
    }
}

/// An open file: its descriptor and the path it was opened under (for error messages).
public struct WALFile: Hashable, Sendable {
    public var descriptor: Int32
    public var path: String

    public init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }
}

public enum WALOpenMode: Hashable, Sendable {
    /// Read only; the file must exist.
    case readOnly
    /// Read and write; the file must exist.
    case readWrite
    /// Read and write; the file must not exist (O_CREAT | O_EXCL), and is created with mode 0644.
    case createNew
}

/// The file operations the log needs. Paths are plain strings; a directory's entries are file names.
public protocol FileSystem: Sendable {
    func open(_ path: String, mode: WALOpenMode) throws(WALIOError) -> WALFile
    /// Writes all of `bytes` at `offset` (looping over short writes).
    func write(_ file: WALFile, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(WALIOError)
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file. Returns the count read.
    func read(_ file: WALFile, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(WALIOError) -> Int
    func byteCount(of file: WALFile) throws(WALIOError) -> Int
    /// fdatasync.
    func syncData(_ file: WALFile) throws(WALIOError)
    /// fsync.
    func sync(_ file: WALFile) throws(WALIOError)
    func close(_ file: WALFile) throws(WALIOError)
    func rename(_ path: String, to newPath: String) throws(WALIOError)
    func unlink(_ path: String) throws(WALIOError)
    func fileExists(_ path: String) throws(WALIOError) -> Bool
    /// The names in a directory, without "." and "..", in no particular order.
    func listDirectory(_ path: String) throws(WALIOError) -> [String]
    /// fsync of the directory itself, so that creations and renames in it are durable.
    func syncDirectory(_ path: String) throws(WALIOError)
}

/// A file's bytes, read into memory of their own. The memory is kept from one read to the next:
/// recovery reads every segment into one buffer, so only the first read's pages are new to the
/// process (a fresh 64 MiB buffer per segment cost a page fault per 4 KiB page, and as much again to
/// unmap it when freed). One owner at a time: a read replaces the bytes another reader may hold.
public final class FileContents: @unchecked Sendable {
    // @unchecked: the memory is written only by `read`, by the buffer's one owner.
    private var memory = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// The bytes of the last read, valid until the next read or until this buffer goes.
    public private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)

    public init() {}

    /// Reads the whole of `file` in place of what this buffer held, into memory not zeroed first (the
    /// read fills it), where `readAll` zero-fills an array and then reads into it. Mapping the file
    /// instead saved the copy too (replay 2.02M -> 2.15M records/s), but a page the disk cannot read
    /// would then kill the process with SIGBUS where a read reports the error and the file: not kept.
    public func read(_ file: WALFile, in fileSystem: any FileSystem) throws(WALIOError) {
        bytes = UnsafeRawBufferPointer(start: nil, count: 0)
        let count = try fileSystem.byteCount(of: file)
        if count > memory.count {
            memory.deallocate()
            memory = .allocate(byteCount: count, alignment: 16)
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: memory[..<count])
        // The file shrank between the two calls: take what was there.
        let readCount = try fileSystem.read(file, into: target, at: 0)
        bytes = UnsafeRawBufferPointer(rebasing: memory[..<readCount])
    }

    deinit { memory.deallocate() }
}

extension FileSystem {
    /// Reads the whole file into a buffer of its own (`FileContents.read`).
    public func contents(of file: WALFile) throws(WALIOError) -> FileContents {
        let contents = FileContents()
        try contents.read(file, in: self)
        return contents
    }

    /// Reads the whole file into memory.
    public func readAll(_ file: WALFile) throws(WALIOError) -> [UInt8] {
        let count = try byteCount(of: file)
        var bytes = [UInt8](repeating: 0, count: count)
        let result: Result<Int, WALIOError> = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(WALIOError) -> Int in try self.read(file, into: raw, at: 0) }
        }
        let readCount = try result.get()
        // The file shrank between the two calls: take what was there.
        if readCount < count { bytes.removeLast(count - readCount) }
        return bytes
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ file: WALFile, _ bytes: [UInt8], at offset: Int) throws(WALIOError) {
        let result: Result<Void, WALIOError> = bytes.withUnsafeBytes { raw in
            Result { () throws(WALIOError) in try self.write(file, raw, at: offset) }
        }
        try result.get()
    }
}

/// Joins a directory and a file name.
func walPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// The real file system, through Glibc.
public struct SystemFileSystem: FileSystem {
    public init() {}

    /// Crashes on an errno that means this process passed a bad descriptor or pointer: a bug, not an
    /// operating condition to report.
    private func check(_ e: Int32, _ operation: WALIOError.Operation) {
        precondition(e != EBADF && e != EFAULT, "\(operation.rawValue) failed with \(String(cString: strerror(e))): a bug")
    }

    public func open(_ path: String, mode: WALOpenMode) throws(WALIOError) -> WALFile {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .createNew: flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC
        }
        while true {
            let fd = Glibc.open(path, flags, 0o644)
            if fd >= 0 { return WALFile(descriptor: fd, path: path) }
            let e = errno
            if e == EINTR { continue }
            check(e, .open)
            throw WALIOError(operation: .open, path: path, errno: e)
        }
    }

    public func write(_ file: WALFile, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(WALIOError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(file.descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n > 0 {
                done += n
                continue
            }
            let e = n == 0 ? EIO : errno  // pwrite of a non-zero count returning 0 makes no progress: treat as EIO.
            if e == EINTR { continue }
            check(e, .write)
            throw WALIOError(operation: .write, path: file.path, offset: offset + done, errno: e)
        }
    }

    public func read(_ file: WALFile, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(WALIOError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(file.descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n > 0 {
                done += n
                continue
            }
            if n == 0 { break }  // end of file
            let e = errno
            if e == EINTR { continue }
            check(e, .read)
            throw WALIOError(operation: .read, path: file.path, offset: offset + done, errno: e)
        }
        return done
    }

    public func byteCount(of file: WALFile) throws(WALIOError) -> Int {
        var info = stat()
        while fstat(file.descriptor, &info) != 0 {
            let e = errno
            if e == EINTR { continue }
            check(e, .stat)
            throw WALIOError(operation: .stat, path: file.path, errno: e)
        }
        return Int(info.st_size)
    }

    public func syncData(_ file: WALFile) throws(WALIOError) {
        while fdatasync(file.descriptor) != 0 {
            let e = errno
            if e == EINTR { continue }
            check(e, .syncData)
            throw WALIOError(operation: .syncData, path: file.path, errno: e)
        }
    }

    public func sync(_ file: WALFile) throws(WALIOError) {
        while fsync(file.descriptor) != 0 {
            let e = errno
            if e == EINTR { continue }
            check(e, .sync)
            throw WALIOError(operation: .sync, path: file.path, errno: e)
        }
    }

    /// Not retried on EINTR: on Linux the descriptor is released even when close reports EINTR, and a
    /// retry could close a descriptor another thread has just been given.
    public func close(_ file: WALFile) throws(WALIOError) {
        if Glibc.close(file.descriptor) != 0 {
            let e = errno
            if e == EINTR { return }
            check(e, .close)
            throw WALIOError(operation: .close, path: file.path, errno: e)
        }
    }

    public func rename(_ path: String, to newPath: String) throws(WALIOError) {
        while Glibc.rename(path, newPath) != 0 {
            let e = errno
            if e == EINTR { continue }
            check(e, .rename)
            throw WALIOError(operation: .rename, path: path + " -> " + newPath, errno: e)
        }
    }

    public func unlink(_ path: String) throws(WALIOError) {
        while Glibc.unlink(path) != 0 {
            let e = errno
            if e == EINTR { continue }
            check(e, .unlink)
            throw WALIOError(operation: .unlink, path: path, errno: e)
        }
    }

    public func fileExists(_ path: String) throws(WALIOError) -> Bool {
        var info = stat()
        while lstat(path, &info) != 0 {
            let e = errno
            if e == EINTR { continue }
            if e == ENOENT { return false }
            check(e, .stat)
            throw WALIOError(operation: .stat, path: path, errno: e)
        }
        return true
    }

    public func listDirectory(_ path: String) throws(WALIOError) -> [String] {
        guard let dir = opendir(path) else {
            let e = errno
            check(e, .list)
            throw WALIOError(operation: .list, path: path, errno: e)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                let e = errno
                if e == 0 { break }
                if e == EINTR { continue }
                throw WALIOError(operation: .list, path: path, errno: e)
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func syncDirectory(_ path: String) throws(WALIOError) {
        let dir: WALFile
        while true {
            let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                dir = WALFile(descriptor: fd, path: path)
                break
            }
            let e = errno
            if e == EINTR { continue }
            check(e, .open)
            throw WALIOError(operation: .open, path: path, errno: e)
        }
        defer { try? close(dir) }
        try sync(dir)
    }
}

/// Starts a thread that runs `body`, named `name` for the kernel (`top -H`, `perf`,
/// /proc/PID/task/TID/comm; cut to 15 bytes): Foundation's `Thread.name` does not reach the kernel on
/// Linux.
public func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    Thread {
        stockpile_name_thread(name)
        body()
    }.start()
}

/// Lowers the calling thread's scheduling priority (nice 10), for threads doing large background
/// writes (a snapshot, a segment made ahead of use): on a busy machine the writers come first.
public func lowerCallingThreadPriority() {
    _ = stockpile_set_thread_nice(10)
}
