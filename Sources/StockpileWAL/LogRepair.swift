// `stockpile wal repair`: what an operator runs when start-up refuses a damaged log. It cuts the log
// at the first record that is not valid (FORMAT.md §5, rows 2, 3 and 6–8) and keeps a copy of every
// segment it changes or removes, so the cut can be undone or examined. It keeps true:
// - nothing is changed before every affected file has a synced backup next to it;
// - after the repair the log reads without damage, and holds exactly the records before the cut;
// - a snapshot past the cut goes too (to the backup), since it holds records the log no longer has;
// - a log without damage is left alone.

public enum LogRepair {
    /// What a repair will do.
    public struct Plan: Hashable, Sendable {
        /// The damage that start-up refuses.
        public var damage: LogDamage
        /// The segment cut at `cutOffset` (its bytes from there on become zeros), or nil when the
        /// damaged segment is removed whole (its header is not valid, or its LSNs do not follow).
        public var cutFileName: String?
        public var cutOffset: Int
        /// Segments removed: the damaged one when it cannot be cut, and every later one.
        public var removedFileNames: [String]
        /// The last LSN kept.
        public var lastKeptLSN: UInt64
        /// Snapshots of a state past the cut: moved to the backup.
        public var removedSnapshotFileNames: [String] = []
    }

    /// The repair `directory` needs; nil when its log has no damage (a torn tail is not damage:
    /// start-up cuts it by itself).
    /// - Throws: `LogRecoveryError.io` when the log cannot be read.
    public static func plan(directory: String, fileSystem: any FileSystem = SystemFileSystem()) throws(LogRecoveryError) -> Plan? {
        let (result, error) = LogRecovery.readValidPrefix(directory: directory, fileSystem: fileSystem)
        guard let error else { return nil }
        guard case .damaged(let damage) = error else { throw error }
        let names = result.segmentFileNames
        guard let index = names.firstIndex(of: damage.fileName) else { throw error }
        let later = Array(names[(index + 1)...])
        let snapshotsPastCut: [String]
        do {
            snapshotsPastCut = try SnapshotStore.list(directory: directory, fileSystem: fileSystem).filter { $0.lsn > damage.lastLSN }.map(\.name)
        } catch {
            throw .io(error)
        }
        switch damage.reason {
        case .headerInvalid, .headerLSNMismatch, .lsnGap:
            return Plan(
                damage: damage, cutFileName: nil, cutOffset: 0, removedFileNames: [damage.fileName] + later, lastKeptLSN: damage.lastLSN,
                removedSnapshotFileNames: snapshotsPastCut)
        case .tornInOlderSegment, .recordInvalid, .payloadUndecodable, .damageBeforeValidRecord:
            return Plan(
                damage: damage, cutFileName: damage.fileName, cutOffset: damage.offset, removedFileNames: later, lastKeptLSN: damage.lastLSN,
                removedSnapshotFileNames: snapshotsPastCut)
        case .logStartsAfterSnapshot, .logEndsBeforeSnapshot:
            throw error  // decided with a snapshot only; reading the whole log never finds them
        }
    }

    /// Carries out `plan`: copies each affected segment into `backupDirectory` (an existing, empty
    /// directory; each copy synced, then the directory), then zeroes the cut segment from the cut on,
    /// removes the others, and syncs the log's directory. Returns the backup paths.
    /// - Throws: the first failing call; files not yet changed are left as they were.
    @discardableResult
    public static func apply(
        _ plan: Plan, directory: String, backupDirectory: String, fileSystem: any FileSystem = SystemFileSystem()
    ) throws(WALIOError) -> [String] {
        let affected = (plan.cutFileName.map { [$0] } ?? []) + plan.removedFileNames + plan.removedSnapshotFileNames
        var backups: [String] = []
        for name in affected {
            let source = try fileSystem.open(walPath(directory, name), mode: .readOnly)
            let bytes = try fileSystem.readAll(source)
            try fileSystem.close(source)
            let backupPath = walPath(backupDirectory, name)
            let backup = try fileSystem.open(backupPath, mode: .createNew)
            try fileSystem.write(backup, bytes, at: 0)
            try fileSystem.sync(backup)
            try fileSystem.close(backup)
            backups.append(backupPath)
        }
        try fileSystem.syncDirectory(backupDirectory)
        if let name = plan.cutFileName {
            let file = try fileSystem.open(walPath(directory, name), mode: .readWrite)
            let size = try fileSystem.byteCount(of: file)
            let zeros = [UInt8](repeating: 0, count: 1 << 16)
            var offset = plan.cutOffset
            while offset < size {
                let n = min(zeros.count, size - offset)
                try fileSystem.write(file, Array(zeros[..<n]), at: offset)
                offset += n
            }
            try fileSystem.syncData(file)
            try fileSystem.close(file)
        }
        for name in plan.removedFileNames + plan.removedSnapshotFileNames { try fileSystem.unlink(walPath(directory, name)) }
        try fileSystem.syncDirectory(directory)
        return backups
    }
}
