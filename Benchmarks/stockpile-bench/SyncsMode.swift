// `stockpile-bench syncs`: what the disk under the data directory does with the log's kind of write,
// the ceiling of `--fsync always`. A 64 MiB file is zero-filled and synced first, as the log makes
// its segments, so that each sync below writes data blocks already allocated; then 256-byte appends,
// each followed by `fdatasync`:
// - from 1, 2 and 4 threads at once, each appending and syncing in turn for --duration / 4 seconds:
//   whether the disk overlaps syncs (the total rate grows with the writers) or takes them one after
//   the other (it stays, and each writer waits longer);
// - from one thread that pauses 1 ms between syncs, as a quiet log does: a sync that finds the disk
//   idle may take longer than one that follows another at once.
// Each line gives the syncs per second and a sync's latency (the write and the `fdatasync`).

import Foundation
import Glibc
import Stockpile
import StockpileWAL
import Synchronization

func runSyncsBenchmark(_ options: Options) -> Int32 {
    let directory = options.dataDirectory ?? NSTemporaryDirectory()
    let path = URL(fileURLWithPath: directory).appendingPathComponent("stockpile-bench-syncs-\(getpid())").path
    func fail(_ what: String) -> Int32 {
        FileHandle.standardError.write(Data("stockpile-bench: \(what) \(path): \(String(cString: strerror(errno)))\n".utf8))
        return 1
    }
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return fail("cannot create") }
    defer {
        close(fd)
        unlink(path)
    }
    let fileSize = 64 << 20
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    for offset in stride(from: 0, to: fileSize, by: zeros.count) {
        guard zeros.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }) == zeros.count else { return fail("cannot zero-fill") }
    }
    guard fdatasync(fd) == 0 else { return fail("cannot sync") }

    let recordSize = 256
    let nextOffset = Atomic<Int>(0)
    let failed = Atomic<Bool>(false)
    /// `writers` threads append and sync until `seconds` pass (pausing `pauseMicroseconds` after each
    /// sync); returns the syncs made, the time taken and their latencies.
    func run(writers: Int, seconds: Double, pauseMicroseconds: UInt32 = 0) -> (syncs: UInt64, elapsed: Double, latencies: LatencyHistogram) {
        let results = Mutex<[LatencyHistogram]>([])
        let done = DispatchGroup()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(seconds * 1e9)
        for w in 0..<writers {
            done.enter()
            startThread(named: "syncs-\(w)") {
                var latencies = LatencyHistogram()
                let record = [UInt8](repeating: UInt8(truncatingIfNeeded: w &+ 1), count: recordSize)
                while monotonicNanoseconds() < deadline {
                    let offset = nextOffset.wrappingAdd(recordSize, ordering: .relaxed).oldValue % (fileSize - recordSize)
                    let began = monotonicNanoseconds()
                    let wrote = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
                    guard wrote == recordSize, fdatasync(fd) == 0 else {
                        failed.store(true, ordering: .relaxed)
                        break
                    }
                    latencies.record(monotonicNanoseconds() &- began)
                    if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
                }
                results.withLock { $0.append(latencies) }
                done.leave()
            }
        }
        done.wait()
        var all = LatencyHistogram()
        for h in results.withLock({ $0 }) { all.merge(h) }
        return (all.count, Double(monotonicNanoseconds() &- start) / 1e9, all)
    }

    let share = max(options.duration / 4, 0.5)
    var rows: [(label: String, writers: Int, pause: UInt32, syncs: UInt64, perSecond: Double, latencies: LatencyHistogram)] = []
    for (writers, pause) in [(1, UInt32(0)), (2, 0), (4, 0), (1, 1000)] {
        let r = run(writers: writers, seconds: share, pauseMicroseconds: pause)
        if failed.load(ordering: .relaxed) { return fail("a write or sync failed on") }
        let label = pause > 0 ? "1 writer, 1 ms between syncs" : "\(writers) writer\(writers == 1 ? "" : "s") at once"
        rows.append((label, writers, pause, r.syncs, Double(r.syncs) / r.elapsed, r.latencies))
    }
    func us(_ h: LatencyHistogram, _ q: Double) -> Double { Double(h.value(atQuantile: q)) / 1000 }
    if options.json {
        let list = rows.map {
            String(format: #"{"writers":%d,"pause_us":%d,"syncs":%llu,"syncs_per_s":%.0f,"p50_us":%.1f,"p99_us":%.1f}"#, $0.writers, Int($0.pause), $0.syncs, $0.perSecond, us($0.latencies, 0.5), us($0.latencies, 0.99))
        }
        print(#"{"scenario":"syncs","directory":"\#(directory)","runs":[\#(list.joined(separator: ","))]}"#)
    } else {
        print("syncs: \(recordSize)-byte appends, each followed by fdatasync, in a zero-filled 64 MiB file in \(directory)")
        for r in rows {
            let line = String(format: "%8.0f syncs/s; a sync p50 %.0f us, p99 %.0f us", r.perSecond, us(r.latencies, 0.5), us(r.latencies, 0.99))
            print("  \(r.label.padding(toLength: 30, withPad: " ", startingAt: 0)) \(line)")
        }
    }
    return 0
}
