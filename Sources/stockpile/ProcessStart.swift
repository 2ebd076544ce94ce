// How long this process has been running, for `serve`'s ready line. It is measured from the moment the
// kernel created the process (/proc/self/stat, field 22: clock ticks since boot), not from a clock our
// code starts: so it includes exec, the dynamic loader and the Swift runtime's start, and everything
// `serve` does before the listener accepts (reading the seed file among it), which is what a harness
// waiting for the server sees. The kernel rounds the start down to a tick (1/100 s), so the figure
// can exceed the truth by less than a tick, and never falls short of it.

import Glibc

enum ProcessStart {
    /// The time since the process started, by the kernel's record; when that cannot be read, the time
    /// since `fallback` (the first instant of `main`).
    static func elapsed(orSince fallback: ContinuousClock.Instant) -> Duration {
        guard let started = startSinceBoot() else { return fallback.duration(to: .now) }
        var now = timespec()
        guard clock_gettime(CLOCK_BOOTTIME, &now) == 0 else { return fallback.duration(to: .now) }
        return .seconds(Int64(now.tv_sec)) + .nanoseconds(Int64(now.tv_nsec)) - started
    }

    /// When the process started, as time since boot (the clock CLOCK_BOOTTIME reads), or nil.
    private static func startSinceBoot() -> Duration? {
        guard let stat = readProcSelfStat() else { return nil }
        // Field 2, the command name, is in parentheses and may hold spaces: count fields after the
        // last ')'. The first field after it is field 3, so field 22 is the 20th.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 20, let ticks = Int64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
        guard ticksPerSecond > 0 else { return nil }
        return .seconds(ticks / ticksPerSecond) + .nanoseconds((ticks % ticksPerSecond) * 1_000_000_000 / ticksPerSecond)
    }

    /// The bytes of /proc/self/stat (a few hundred; its size reads as 0, so it is read to the end).
    private static func readProcSelfStat() -> [UInt8]? {
        let descriptor = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return bytes }
            bytes += buffer[..<n]
        }
    }
}
