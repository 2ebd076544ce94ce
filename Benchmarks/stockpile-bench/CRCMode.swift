// `stockpile-bench crc`: how fast the log's checksum runs, with the CPU's CRC32 instruction (what
// the log uses when the CPU has it) and with the slicing-by-8 tables (the fallback). Each is timed
// over a 16 MiB buffer, repeated for --duration seconds in total, and reported in GB/s.

import Foundation
import StockpileCore
import StockpileWAL

func runCRCBenchmark(_ options: Options) -> Int32 {
    var rng = SplitMix64(seed: 0xC3C)
    let buffer = (0..<(16 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    func measure(_ crc: (UnsafeRawBufferPointer) -> UInt32) -> (gigabytesPerSecond: Double, value: UInt32) {
        let clock = ContinuousClock()
        let budget = Duration.seconds(options.duration / 2)
        var bytes = 0
        var value: UInt32 = 0
        let start = clock.now
        while start.duration(to: clock.now) < budget {
            value ^= buffer.withUnsafeBytes { crc($0) }
            bytes += buffer.count
        }
        let elapsed = start.duration(to: clock.now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(bytes) / seconds / 1e9, value)
    }
    let hardware = measure { CRC32C.checksum($0) }
    let tables = measure { CRC32C.updateByTables(0, $0) }
    guard hardware.value == tables.value else {
        FileHandle.standardError.write(Data("stockpile-bench: the instruction and the tables disagree\n".utf8))
        return 1
    }
    let used = CRC32C.usesHardware ? "instruction" : "tables (this CPU has no CRC32 instruction)"
    if options.json {
        print(#"{"scenario":"crc","uses":"\#(CRC32C.usesHardware ? "instruction" : "tables")","checksum_gb_per_s":\#(String(format: "%.2f", hardware.gigabytesPerSecond)),"tables_gb_per_s":\#(String(format: "%.2f", tables.gigabytesPerSecond))}"#)
    } else {
        print(String(format: "crc: CRC32C.checksum %.2f GB/s (%@), slicing-by-8 tables %.2f GB/s", hardware.gigabytesPerSecond, used, tables.gigabytesPerSecond))
    }
    return 0
}
