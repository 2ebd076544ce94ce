// Snapshot files in a data directory (wal/FORMAT.md §4 and recovery row 9). It keeps true: a file
// under its final name was complete and synced before it got that name (written as `.tmp`, fsynced,
// renamed, directory fsynced); start-up takes the newest snapshot that is valid and says which ones
// it passed over; and pruning never removes the newest valid snapshot or the one before it, so a
// snapshot found damaged later still has an older one behind it.

import Glibc
import StockpileCore

public enum SnapshotStore {
    /// How many snapshots are kept: the newest and one before it.
    public static let keptCount = 2
    /// How much of a snapshot goes to its file between two syncs.
    public static let syncSliceByteCount = 256 << 10

    /// The snapshot files of `directory`, newest first, with their LSNs.
    public static func list(directory: String, fileSystem: any FileSystem = SystemFileSystem()) throws(WALIOError) -> [(name: String, lsn: UInt64)] {
        try fileSystem.listDirectory(directory)
            .compactMap { name in SnapshotCodec.lsn(fromFileName: name).map { (name, $0) } }
            .sorted { $0.1 > $1.1 }
    }

    /// Writes `contents` as `snapshot-<LSN>.snap`: temporary file, fsync, rename, directory fsync.
    /// Returns the file name and its byte count. A snapshot of the same LSN already there is
    /// replaced (it holds the same state).
    public static func write(
        _ contents: SnapshotContents, directory: String, fileSystem: any FileSystem = SystemFileSystem()
    ) throws(WALIOError) -> (fileName: String, byteCount: Int) {
        try write(contents, lists: SnapshotCodec.OrderedLists(contents), directory: directory, fileSystem: fileSystem)
    }

    /// `write(_:directory:fileSystem:)` with the cells and reservations of `lists` (those of
    /// `contents` are not read), encoded straight to the file a slice at a time: what is held in
    /// memory at once is a slice of the file, not the whole of it.
    public static func write(
        _ contents: SnapshotContents, lists: some SnapshotLists, directory: String, fileSystem: any FileSystem = SystemFileSystem()
    ) throws(WALIOError) -> (fileName: String, byteCount: Int) {
        let name = SnapshotCodec.fileName(lsn: contents.lsn)
        let path = walPath(directory, name)
        let tmpPath = path + ".tmp"
        if try fileSystem.fileExists(tmpPath) { try fileSystem.unlink(tmpPath) }
        let file = try fileSystem.open(tmpPath, mode: .createNew)
        let byteCount: Int
        do throws(WALIOError) {
            var output = FileOutput(fileSystem: fileSystem, file: file)
            byteCount = try SnapshotCodec.encode(contents, lists: lists, to: &output, chunkByteCount: syncSliceByteCount)
            try fileSystem.sync(file)
            try fileSystem.close(file)
        } catch {
            try? fileSystem.close(file)
            try? fileSystem.unlink(tmpPath)
            throw error
        }
        try fileSystem.rename(tmpPath, to: path)
        try fileSystem.syncDirectory(directory)
        return (name, byteCount)
    }

    /// A snapshot file being written: synced each time a slice's worth was written since the last
    /// sync. One large flush at the end would hold up the log's own fdatasync behind it (the file
    /// system commits them together), which writers see as a pause.
    private struct FileOutput: SnapshotOutput {
        let fileSystem: any FileSystem
        let file: WALFile
        var unsynced = 0

        mutating func write(_ bytes: [UInt8], at offset: Int) throws(WALIOError) {
            try fileSystem.write(file, bytes, at: offset)
            unsynced += bytes.count
            if unsynced >= SnapshotStore.syncSliceByteCount {
                try fileSystem.syncData(file)
                unsynced = 0
            }
        }
    }

    /// The newest valid snapshot (row 9): each newer one that is not valid is reported to `passedOver`
    /// and the next older one tried. Nil when there is none.
    public static func loadNewestValid(
        directory: String, fileSystem: any FileSystem = SystemFileSystem(), passedOver: (SnapshotDamage) -> Void
    ) throws(WALIOError) -> (fileName: String, contents: SnapshotContents)? {
        let gathered = SnapshotCodec.GatheredLists()
        var loaded = try loadNewestValid(
            directory: directory, fileSystem: fileSystem, cells: gathered.takeCells, reservations: gathered.takeReservations, passedOver: passedOver)
        if loaded != nil { gathered.fill(&loaded!.contents) }
        return loaded
    }

    /// `loadNewestValid(directory:fileSystem:passedOver:)` with the snapshot's cells and reservations
    /// handed to the functions `cells` and `reservations` return, as
    /// `SnapshotCodec.decode(_:fileName:expectedLSN:checkingListsFirst:cells:reservations:)` hands
    /// them (its contents' lists of them stay empty): only those of the snapshot returned.
    public static func loadNewestValid(
        directory: String, fileSystem: any FileSystem = SystemFileSystem(), cells: (_ count: Int) -> (SnapshotCell) -> Void,
        reservations: (_ count: Int) -> (Reservation) -> Void, passedOver: (SnapshotDamage) -> Void
    ) throws(WALIOError) -> (fileName: String, contents: SnapshotContents)? {
        for (name, lsn) in try list(directory: directory, fileSystem: fileSystem) {
            let file = try fileSystem.open(walPath(directory, name), mode: .readOnly)
            let bytes: [UInt8]
            do { bytes = try fileSystem.readAll(file) } catch {
                try? fileSystem.close(file)
                throw error
            }
            try? fileSystem.close(file)
            do {
                return (name, try SnapshotCodec.decode(bytes, fileName: name, expectedLSN: lsn, cells: cells, reservations: reservations))
            } catch {
                passedOver(error)
            }
        }
        return nil
    }

    /// Removes snapshots older than the newest `keptCount`, after `newest` was written. Returns the
    /// names removed.
    @discardableResult
    public static func pruneOlder(directory: String, fileSystem: any FileSystem = SystemFileSystem()) throws(WALIOError) -> [String] {
        let old = try list(directory: directory, fileSystem: fileSystem).dropFirst(keptCount).map(\.name)
        for name in old { try fileSystem.unlink(walPath(directory, name)) }
        if !old.isEmpty { try fileSystem.syncDirectory(directory) }
        return old
    }
}
