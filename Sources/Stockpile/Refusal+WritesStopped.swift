// The READONLY refusal of SPEC §4: once the log could not be written, every change is refused with
// the failure that stopped it (reads go on), and with what the operator does next. A full disk needs
// space before a restart can help, so that case names the disk's data directory; anything else is a
// restart, which recovers everything acknowledged.

import Glibc
import StockpileCore
import StockpileWAL

extension Refusal {
    /// READONLY: the log could not be written, so the engine takes no more changes (reads go on).
    static func writesStopped(_ error: WALIOError) -> Refusal {
        let why = "writes are stopped: the log could not be written (\(error))"
        guard error.errno == ENOSPC else { return Refusal(.readOnly, "\(why); restart to recover") }
        return Refusal(.readOnly, "\(why); the disk holding \(error.dataDirectory ?? Self.directory(of: error.path)) is full (ENOSPC): free space, then restart")
    }

    /// The directory of the file an error names (the first, for a rename's `a -> b`): the best guess at
    /// the data directory when the error does not carry it.
    private static func directory(of path: String) -> String {
        let file = path.components(separatedBy: " -> ").first ?? path
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }
}
