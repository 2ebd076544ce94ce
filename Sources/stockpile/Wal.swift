// `stockpile wal verify|dump|repair <dir>`: the operator's tools for a data directory's log.
//   verify  reads the whole log and the snapshot start-up would load, and says whether start-up will accept it (exit 0) or
//           refuse it (exit 1, naming the file, the offset and what to run);
//   dump    one human-readable line per record, then the verdict;
//   repair  cuts the log at the first record that is not valid, after a synced backup of every file
//           it changes or removes; with nothing to cut it ends with verify's verdict, since start-up
//           may still refuse the directory for a reason no cut mends (a snapshot the log does not reach).
// repair takes the directory's lock (a running server holds it, so repair refuses); verify and dump
// only read, but what they read is only stable while no server writes.

import Foundation
import StockpileCore
import StockpileWAL

let walUsage = """
    usage: stockpile wal verify <data-dir>
           stockpile wal dump <data-dir>
           stockpile wal repair <data-dir> [--yes]

      verify   check every segment and record as start-up does; exit 0 when start-up will accept the log
      dump     print one line per record (LSN, time, what changed), then what verify says
      repair   cut the log at the first damaged record; every changed or removed segment is first copied
               into <data-dir>.backup-<UTC time>/. Without --yes it only says what it would do.
    Stop the server first: these read the files while no one writes them.

    """

func wal(_ arguments: [String]) -> Never {
    guard arguments.count >= 2, ["verify", "dump", "repair"].contains(arguments[0]) else {
        if arguments.first == "-h" || arguments.first == "--help" {
            print(walUsage, terminator: "")
            exit(0)
        }
        fail("wal needs a command and a data directory\n\n\(walUsage)")
    }
    let directory = arguments[1]
    let extra = arguments.dropFirst(2)
    guard extra.isEmpty || (arguments[0] == "repair" && Array(extra) == ["--yes"]) else {
        fail("unexpected arguments \(extra.joined(separator: " "))\n\n\(walUsage)")
    }
    guard FileManager.default.fileExists(atPath: directory) else { fail("\(directory) does not exist") }
    switch arguments[0] {
    case "verify":
        exit(verify(directory: directory))
    case "dump":
        exit(verify(directory: directory) { print(WALDump.line($0)) })
    default:
        exit(repair(directory: directory, confirmed: extra.contains("--yes")))
    }
}

/// Reads the log a batch at a time (a log of millions of records is read in little memory), hands
/// each record to `each`, then prints the verdict; returns the exit status (0: start-up will accept it).
private func verify(directory: String, each: (RecoveredRecord) -> Void = { _ in }) -> Int32 {
    var count = 0
    var first: UInt64?
    var last: UInt64 = 0
    let read = LogRecovery.readValidPrefix(directory: directory) { batch in
        for k in 0..<batch.count { each(batch.record(at: k)) }
        count += batch.count
        if first == nil && !batch.isEmpty { first = batch.firstLSN }
        last = batch.lastLSN ?? last
        return true
    }
    let r = read.result
    let range = first.map { "LSN \($0)–\(last)" } ?? "no records"
    if let error = read.error {
        print("damaged: \(error)")
        print("read before the damage: \(count) record(s), \(range)")
        return 1
    }
    for w in r.warnings { print("warning: \(w) (start-up cuts it)") }
    // The snapshot start-up would load, and whether the log covers what follows it (rows 9–11).
    let snapshot: (fileName: String, contents: SnapshotContents)?
    do {
        snapshot = try SnapshotStore.loadNewestValid(directory: directory) { print("warning: \($0) (start-up uses an older one)") }
    } catch {
        print("cannot read the snapshots: \(error)")
        return 1
    }
    if let snapshot {
        let lsn = snapshot.contents.lsn
        print("snapshot: \(snapshot.fileName), LSN \(lsn), \(snapshot.contents.cells.count) cells, \(snapshot.contents.reservations.count) reservations")
        let firstLSN = first ?? r.nextLSN
        if lsn > 0, firstLSN > lsn + 1 {
            print("damaged: the log starts at LSN \(firstLSN) but the snapshot needs LSN \(lsn + 1) on: records are missing")
            return 1
        }
        if r.nextLSN - 1 < lsn {
            print("damaged: the log ends at LSN \(r.nextLSN - 1), before the snapshot's LSN \(lsn): files were lost")
            return 1
        }
        print("start-up loads it and replays \(r.nextLSN - 1 - lsn) record(s)")
    }
    print("ok: \(count) record(s) in \(r.segmentFileNames.count) segment(s), \(range)")
    return 0
}

private func repair(directory: String, confirmed: Bool) -> Int32 {
    let plan: LogRepair.Plan?
    do {
        plan = try LogRepair.plan(directory: directory)
    } catch {
        print("cannot read the log: \(error)")
        return 1
    }
    guard let plan else {
        // Every record is valid, but start-up may still refuse the directory: a snapshot the log does
        // not reach (FORMAT.md §5 rows 10 and 11) is no cut to make. Say what verify says rather than
        // promise a start.
        print("nothing to cut: every record of the log is valid")
        return verify(directory: directory)
    }
    print("damaged: \(plan.damage.fileName) offset \(plan.damage.offset): \(plan.damage.reasonDescription)")
    if let name = plan.cutFileName { print("cut \(name) at offset \(plan.cutOffset) (zeros from there on)") }
    for name in plan.removedFileNames { print("remove \(name)") }
    for name in plan.removedSnapshotFileNames { print("remove \(name) (a snapshot past the cut)") }
    print("the log will end at LSN \(plan.lastKeptLSN); later records are dropped")
    guard confirmed else {
        print("nothing changed: run again with --yes to repair")
        return 1
    }
    // Held until the process exits: no server may start on the directory while it is cut.
    let lock: DirectoryLock
    do {
        lock = try DirectoryLock(directory: directory)
    } catch {
        print("cannot repair: \(error)")
        return 1
    }
    defer { withExtendedLifetime(lock) {} }
    let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
    let trimmed = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    let backupDirectory = "\(trimmed).backup-\(stamp)"
    do {
        try FileManager.default.createDirectory(atPath: backupDirectory, withIntermediateDirectories: false)
    } catch {
        print("cannot create the backup directory \(backupDirectory): \(error.localizedDescription)")
        return 1
    }
    do {
        let backups = try LogRepair.apply(plan, directory: directory, backupDirectory: backupDirectory)
        for b in backups { print("backup \(b)") }
    } catch {
        print("repair failed: \(error)")
        return 1
    }
    return verify(directory: directory)
}

/// One line per record, for `wal dump`.
enum WALDump {
    static func line(_ record: RecoveredRecord) -> String {
        switch record.body {
        case .commit(let c):
            var parts = ["lsn \(record.lsn)", record.type == .reservation ? "reservation" : "commit", "time_ms \(c.time.milliseconds)"]
            for e in c.entries {
                var entry = "[seq \(e.seq) \(e.type.rawValue)"
                if e.touchesCell { entry += " \(e.variant)/\(e.warehouse) Δon_hand \(e.deltaOnHand) Δreserved \(e.deltaReserved)" }
                if let reason = e.reason { entry += " reason \(reason.rawValue)" }
                if !e.reservation.isEmpty { entry += " reservation \(e.reservation)" }
                if !e.actor.isEmpty { entry += " actor \(e.actor)" }
                parts.append(entry + "]")
            }
            if let r = c.reservation { parts.append("reservation \(r.id) \(r.status.rawValue)") }
            if let w = c.warehouse { parts.append("warehouse \(w.code) priority \(w.priority) active \(w.active ? 1 : 0)") }
            if let p = c.policy { parts.append("policy \(p.variant) backorder \(p.backorder ? 1 : 0) unlimited \(p.unlimited ? 1 : 0) low_stock \(p.lowStock)") }
            if let k = c.keyedCommand?.key { parts.append("key \(k)") }
            return parts.joined(separator: "  ")
        case .keyUse(let use):
            return "lsn \(record.lsn)  key-use  time_ms \(use.time.milliseconds)  key \(use.key)"
        }
    }
}
