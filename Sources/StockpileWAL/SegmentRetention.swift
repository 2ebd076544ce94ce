// Removing old log segments, when the operator asks for it (SPEC §4: segments are kept for audit
// unless a retention size is configured). It keeps true: only segments whose records all precede
// the oldest snapshot kept are removed, so start-up from either kept snapshot still finds every
// record after it (FORMAT.md §5, row 10), and the newest segment is never removed.

public enum SegmentRetention {
    /// Removes the oldest segments, while the log takes more than `byteCountMax` bytes, among those
    /// whose records all come before LSN `keepFrom` (the oldest kept snapshot's LSN + 1, or the
    /// record of the oldest KEY memory keeps by LSN, if earlier). Returns the names removed, oldest
    /// first.
    @discardableResult
    public static func trim(
        directory: String, keepFrom: UInt64, byteCountMax: Int, fileSystem: any FileSystem = SystemFileSystem()
    ) throws(WALIOError) -> [String] {
        let segments = SegmentHeader.segments(among: try fileSystem.listDirectory(directory))
        var sizes: [Int] = []
        for s in segments {
            let file = try fileSystem.open(walPath(directory, s.name), mode: .readOnly)
            defer { try? fileSystem.close(file) }
            sizes.append(try fileSystem.byteCount(of: file))
        }
        var total = sizes.reduce(0, +)
        var removed: [String] = []
        // Segment i holds only records before `keepFrom` when the next one starts at or before it.
        for i in segments.indices.dropLast() where total > byteCountMax && segments[i + 1].firstLSN <= keepFrom {
            try fileSystem.unlink(walPath(directory, segments[i].name))
            total -= sizes[i]
            removed.append(segments[i].name)
        }
        if !removed.isEmpty { try fileSystem.syncDirectory(directory) }
        return removed
    }
}
