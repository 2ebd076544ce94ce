// An in-memory `FileSystem` for tests: the writer and recovery run on it unchanged, and it can make the
// k-th write or sync fail (ENOSPC, EIO, …) and simulate a crash that loses what was not synced. It keeps
// true: a file's `durable` bytes are what the last successful sync of it saw, and `crash()` puts every
// file back to them. `crash(atSync:leaving:)` stops the machine at the k-th sync instead: that sync never
// happens, every write not yet synced is kept, dropped or torn, and every later call fails until
// `restart()`. Directory operations (create, rename, unlink) are durable at once — the simulation
// models lost data, not lost directory entries. `setFreeByteCount` makes a disk that fills up: a write
// that would grow files past the space left fails with ENOSPC, as on a full disk, while writes into
// bytes a file already has go on. `holdSyncs()` makes every sync wait until `releaseSyncs()`, as a
// slow disk would, so a test can look at what is revealed while a record is written but not durable.

import Glibc
import Synchronization

public final class SimulatedFileSystem: FileSystem {
    /// What a crash leaves of the bytes written but not yet synced.
    public enum UnsyncedWrites: Sendable, CaseIterable {
        /// They all reached the disk.
        case kept
        /// None did.
        case dropped
        /// The first half of each file's unsynced range did, the rest did not (a torn write).
        case torn
    }

    struct File {
        var bytes: [UInt8] = []
        var durable: [UInt8] = []
    }

    struct State {
        /// Files by full path.
        var files: [String: File] = [:]
        var directories: Set<String> = []
        /// Open descriptors and the path each refers to (it follows renames, as a real descriptor does).
        var open: [Int32: String] = [:]
        var nextDescriptor: Int32 = 3
        var writeCount = 0
        var syncCount = 0
        var writeFailures: [Int: Int32] = [:]
        var syncFailures: [Int: Int32] = [:]
        var crashAt: (sync: Int, leaving: UnsyncedWrites)?
        /// Set by a crash at a sync: every call fails until `restart()`.
        var crashed = false
        /// Bytes files may still grow by; nil for no limit.
        var freeByteCount: Int?
        /// Syncs of files whose path contains this wait until it is cleared.
        var heldSyncPathText: String?
        /// Set by `holdSyncs()`: every sync waits.
        var holdsEverySync = false
        /// How many syncs wait now, held.
        var heldSyncCount = 0
        /// Every path a file was created at, in order.
        var createdPaths: [String] = []
    }

    private let state = Mutex(State())

    public init(directories: [String] = []) {
        state.withLock { $0.directories = Set(directories.map(Self.normalized)) }
    }

    private static func normalized(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    // MARK: Test controls

    public func addDirectory(_ path: String) {
        state.withLock { _ = $0.directories.insert(Self.normalized(path)) }
    }

    /// Makes the `n`-th write from now (1 = the next one) fail with `errno`, writing nothing.
    public func failWrite(_ n: Int, errno: Int32) {
        precondition(n >= 1)
        state.withLock { $0.writeFailures[$0.writeCount + n] = errno }
    }

    /// Makes the `n`-th sync (fdatasync or fsync of a file) from now fail with `errno`; what it would
    /// have made durable stays volatile.
    public func failSync(_ n: Int, errno: Int32) {
        precondition(n >= 1)
        state.withLock { $0.syncFailures[$0.syncCount + n] = errno }
    }

    /// Lets files grow by only `byteCount` more bytes from now (nil: no limit). A write that would grow
    /// them past it fails with ENOSPC and writes nothing; removing a file gives its bytes back. A crash
    /// gives back nothing (the disk keeps the blocks it had allocated).
    public func setFreeByteCount(_ byteCount: Int?) {
        state.withLock { $0.freeByteCount = byteCount }
    }

    /// Bytes files may still grow by; nil for no limit.
    public var freeByteCount: Int? { state.withLock { $0.freeByteCount } }

    /// Holds every sync of a file whose path contains `text` until `releaseSyncs()`: to catch a
    /// thread between its write and its sync.
    public func holdSyncs(ofPathsContaining text: String) {
        state.withLock { $0.heldSyncPathText = text }
    }

    /// Lets held syncs, and every later one, go on.
    public func releaseSyncs() {
        state.withLock {
            $0.heldSyncPathText = nil
            $0.holdsEverySync = false
        }
    }

    /// How many times a file was created at a path containing `text`.
    public func creationCount(ofPathsContaining text: String) -> Int {
        state.withLock { $0.createdPaths.filter { $0.contains(text) }.count }
    }

    /// How many syncs wait now in a hold (`holdSyncs`): a test knows by it that a thread is between
    /// its write and its sync.
    public var heldSyncCount: Int { state.withLock { $0.heldSyncCount } }

    /// How many syncs (fdatasync or fsync of a file) were asked for so far.
    public var syncCount: Int { state.withLock { $0.syncCount } }

    /// Makes the `n`-th sync from now a crash: it does not happen, the writes not yet synced are left
    /// as `leaving` says, and every call after it fails with EIO until `restart()`.
    public func crash(atSync n: Int, leaving: UnsyncedWrites) {
        precondition(n >= 1)
        state.withLock { $0.crashAt = ($0.syncCount + n, leaving) }
    }

    /// After a crash at a sync: the machine starts again (descriptors closed, calls work).
    public func restart() {
        state.withLock { s in
            s.crashed = false
            s.crashAt = nil
            s.open.removeAll()
        }
    }

    /// Whether a crash at a sync has happened (and `restart()` not yet called).
    public var hasCrashed: Bool { state.withLock { $0.crashed } }

    private static func crash(_ s: inout State, leaving: UnsyncedWrites) {
        for path in s.files.keys {
            var f = s.files[path]!
            switch leaving {
            case .kept: f.durable = f.bytes
            case .dropped: f.bytes = f.durable
            case .torn:
                let count = max(f.bytes.count, f.durable.count)
                let now = f.bytes + [UInt8](repeating: 0, count: count - f.bytes.count)
                let before = f.durable + [UInt8](repeating: 0, count: count - f.durable.count)
                if let first = now.indices.first(where: { now[$0] != before[$0] }), let last = now.indices.last(where: { now[$0] != before[$0] }) {
                    // A file that grew keeps its new length, zeros where the write did not land.
                    let cut = first + (last - first + 1) / 2
                    f.bytes = Array(now[..<cut]) + Array(before[cut...])
                } else {
                    f.bytes = f.durable
                }
                f.durable = f.bytes
            }
            s.files[path] = f
        }
        s.open.removeAll()
        s.crashed = true
    }

    /// Loses every byte not yet synced, and closes every descriptor.
    public func crash() {
        state.withLock { s in
            for path in s.files.keys { s.files[path]!.bytes = s.files[path]!.durable }
            s.open.removeAll()
        }
    }

    /// A file's current bytes, nil if there is no such file.
    public func contents(of path: String) -> [UInt8]? {
        state.withLock { $0.files[path]?.bytes }
    }

    /// Replaces a file's bytes (current and durable), creating it if need be: to plant damage.
    public func setContents(of path: String, to bytes: [UInt8]) {
        state.withLock { $0.files[path] = File(bytes: bytes, durable: bytes) }
    }

    // MARK: FileSystem

    public func open(_ path: String, mode: WALOpenMode) throws(WALIOError) -> WALFile {
        try state.withLock { (s: inout State) throws(WALIOError) -> WALFile in
            if s.crashed { throw WALIOError(operation: .open, path: path, errno: EIO) }
            let exists = s.files[path] != nil
            switch mode {
            case .readOnly, .readWrite:
                guard exists else { throw WALIOError(operation: .open, path: path, errno: ENOENT) }
            case .createNew:
                guard !exists else { throw WALIOError(operation: .open, path: path, errno: EEXIST) }
                guard s.directories.contains(Self.parent(path)) else {
                    throw WALIOError(operation: .open, path: path, errno: ENOENT)
                }
                s.files[path] = File()
                s.createdPaths.append(path)
            }
            let fd = s.nextDescriptor
            s.nextDescriptor += 1
            s.open[fd] = path
            return WALFile(descriptor: fd, path: path)
        }
    }

    private static func path(of file: WALFile, in s: State) -> String {
        guard let path = s.open[file.descriptor] else { preconditionFailure("a descriptor not open: a bug") }
        return path
    }

    public func write(_ file: WALFile, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(WALIOError) {
        try state.withLock { (s: inout State) throws(WALIOError) in
            if s.crashed { throw WALIOError(operation: .write, path: file.path, offset: offset, errno: EIO) }
            let path = Self.path(of: file, in: s)
            s.writeCount += 1
            if let e = s.writeFailures.removeValue(forKey: s.writeCount) {
                throw WALIOError(operation: .write, path: file.path, offset: offset, errno: e)
            }
            var f = s.files[path]!
            let growth = max(0, offset + bytes.count - f.bytes.count)
            if let free = s.freeByteCount {
                guard growth <= free else { throw WALIOError(operation: .write, path: file.path, offset: offset, errno: ENOSPC) }
                s.freeByteCount = free - growth
            }
            if f.bytes.count < offset + bytes.count {
                f.bytes.append(contentsOf: repeatElement(0, count: offset + bytes.count - f.bytes.count))
            }
            f.bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            s.files[path] = f
        }
    }

    public func read(_ file: WALFile, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(WALIOError) -> Int {
        state.withLock { s in
            let bytes = s.files[Self.path(of: file, in: s)]!.bytes
            let n = max(0, min(buffer.count, bytes.count - offset))
            if n > 0 {
                bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            }
            return n
        }
    }

    public func byteCount(of file: WALFile) throws(WALIOError) -> Int {
        state.withLock { s in s.files[Self.path(of: file, in: s)]!.bytes.count }
    }

    /// From now on every sync waits (on its caller's thread) until `releaseSyncs()`.
    public func holdSyncs() {
        state.withLock { $0.holdsEverySync = true }
    }

    public func syncData(_ file: WALFile) throws(WALIOError) {
        try sync(file)
    }

    public func sync(_ file: WALFile) throws(WALIOError) {
        func held(_ s: borrowing State) -> Bool { s.holdsEverySync || (s.heldSyncPathText.map { file.path.contains($0) } ?? false) }
        let waits = state.withLock { s -> Bool in
            guard held(s) else { return false }
            s.heldSyncCount += 1
            return true
        }
        if waits {
            while state.withLock({ held($0) }) { usleep(1000) }
            state.withLock { $0.heldSyncCount -= 1 }
        }
        try state.withLock { (s: inout State) throws(WALIOError) in
            if s.crashed { throw WALIOError(operation: .syncData, path: file.path, errno: EIO) }
            let path = Self.path(of: file, in: s)
            s.syncCount += 1
            if let crash = s.crashAt, crash.sync == s.syncCount {
                Self.crash(&s, leaving: crash.leaving)
                throw WALIOError(operation: .syncData, path: file.path, errno: EIO)
            }
            if let e = s.syncFailures.removeValue(forKey: s.syncCount) {
                throw WALIOError(operation: .syncData, path: file.path, errno: e)
            }
            s.files[path]!.durable = s.files[path]!.bytes
        }
    }

    public func close(_ file: WALFile) throws(WALIOError) {
        state.withLock { s in
            if s.crashed { return }  // every descriptor went with the crash
            _ = Self.path(of: file, in: s)
            s.open[file.descriptor] = nil
        }
    }

    public func rename(_ path: String, to newPath: String) throws(WALIOError) {
        try state.withLock { (s: inout State) throws(WALIOError) in
            if s.crashed { throw WALIOError(operation: .rename, path: path, errno: EIO) }
            guard let f = s.files.removeValue(forKey: path) else {
                throw WALIOError(operation: .rename, path: path + " -> " + newPath, errno: ENOENT)
            }
            if let replaced = s.files[newPath], let free = s.freeByteCount { s.freeByteCount = free + replaced.bytes.count }
            s.files[newPath] = f
            for (fd, p) in s.open where p == path { s.open[fd] = newPath }
        }
    }

    public func unlink(_ path: String) throws(WALIOError) {
        try state.withLock { (s: inout State) throws(WALIOError) in
            if s.crashed { throw WALIOError(operation: .unlink, path: path, errno: EIO) }
            guard let removed = s.files.removeValue(forKey: path) else {
                throw WALIOError(operation: .unlink, path: path, errno: ENOENT)
            }
            if let free = s.freeByteCount { s.freeByteCount = free + removed.bytes.count }
        }
    }

    public func fileExists(_ path: String) throws(WALIOError) -> Bool {
        state.withLock { $0.files[path] != nil || $0.directories.contains(Self.normalized(path)) }
    }

    public func listDirectory(_ path: String) throws(WALIOError) -> [String] {
        let dir = Self.normalized(path)
        return try state.withLock { (s: inout State) throws(WALIOError) -> [String] in
            guard s.directories.contains(dir) else { throw WALIOError(operation: .list, path: path, errno: ENOENT) }
            return s.files.keys.filter { Self.parent($0) == dir }.map { String($0[$0.index(after: $0.lastIndex(of: "/")!)...]) }
        }
    }

    public func syncDirectory(_ path: String) throws(WALIOError) {
        try state.withLock { (s: inout State) throws(WALIOError) in
            if s.crashed { throw WALIOError(operation: .sync, path: path, errno: EIO) }
            guard s.directories.contains(Self.normalized(path)) else {
                throw WALIOError(operation: .open, path: path, errno: ENOENT)
            }
        }
    }
}
