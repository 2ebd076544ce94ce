// The threads a server and its log start carry names the kernel shows (`top -H`, `perf`,
// /proc/PID/task/TID/comm): Foundation's `Thread.name` alone is not passed on to the kernel on Linux.

import Foundation
import Stockpile
import Testing

@Suite("Thread names")
struct ThreadNameTests {
    /// The names of this process's threads, as the kernel has them.
    static func threadNames() throws -> Set<String> {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        return Set(tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .newlines) })
    }

    @Test("a server's event loops and its log's thread are named")
    func loopsAndLogNamed() async throws {
        let directory = NSTemporaryDirectory() + "stockpile-thread-names-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = try Engine.open(dataDirectory: directory, durability: .always, warn: { _ in })
        try await withServer(engine: engine, configure: { $0.eventLoopCount = 2 }) { _ in
            // A thread names itself as it starts: looked at again for a while until all are.
            let wanted: Set = ["sp-loop-0", "sp-loop-1", "sp-wal"]
            var names = try Self.threadNames()
            for _ in 0..<200 where !wanted.isSubset(of: names) {
                try await Task.sleep(for: .milliseconds(10))
                names = try Self.threadNames()
            }
            #expect(names.contains("sp-loop-0"), "threads: \(names.sorted())")
            #expect(names.contains("sp-loop-1"))
            #expect(names.contains("sp-wal"))
        }
        try engine.close()
    }
}
