// `stockpile serve`: opens the engine in the data directory (replaying its log), listens for Redis
// clients, and on SIGINT or SIGTERM stops accepting, answers what it has received, makes the log
// durable and exits 0. The line that says it listens is written once the listener accepts, and its
// "ready in" figure counts from the process's start, so a harness can trust it as the start-up time.

import CStockpileLinux
import Dispatch
import Foundation
import Stockpile
import StockpileServer
import StockpileWAL

let serveUsage = """
    usage: stockpile serve [options]

      --host ADDR          address to listen on (default 127.0.0.1). A non-loopback address needs
                           --auth-file, or --insecure to serve without authentication.
      --port N             TCP port (default 7379)
      --data-dir DIR       where the write-ahead log lives (default ./stockpile-data)
      --fsync POLICY       always (default): a reply waits until its change is on disk (fdatasync);
                           interval=<ms>: a reply waits for write(), the disk is synced every <ms>
                           (a crash of the process loses nothing, a power loss at most <ms>);
                           none: no log at all, everything is lost at exit (load tests)
      --auth-file FILE     tokens and roles, one `token role[,role…]` per line (# comments); roles:
                           read, checkout, fulfillment, inventory, admin. Clients then must AUTH.
      --insecure           allow a non-loopback --host without --auth-file
      --seed FILE          load stock at start from a CSV file with the header `variant,warehouse,on_hand`:
                           each listed cell's on_hand becomes its figure (logged as `import`), at every
                           start; a bad file stops the start and names every bad line
      --shards N           shards the cells are spread over, 1-64 (default: eight per core, a power
                           of two from 16 to 64)
      --replay-threads N   threads that apply the log at start-up, each to the shards it owns, 1-64
                           (default: one per core, at most 4)
      --segment-mib N      size of each log segment file, zero-filled ahead of use (default 64)
      --log-retention-mib N   after each snapshot, remove the oldest log segments that both kept
                           snapshots cover while the log is over N MiB (default: keep every segment);
                           a segment holding a still remembered KEY's record stays, with all after it
      --snapshot-every N   write a snapshot after every N log records, 0 for only on SNAPSHOT
                           (default 1000000); start-up loads the newest and replays what follows
      --retention SECONDS  how long ids and KEYs of finished work are remembered (default 86400)
      --max-clients N      open connections allowed (default 10000)
      --loops N            event loops, each a thread serving its share of the connections, 1-64
                           (default: one fewer than the cores, at least one)
      --max-lines N        lines one reservation may have, 1-256 (default 256)
      --max-quantity N     largest quantity a request may name, 1-10^12 (default 10^12)
      --max-request-bytes N   largest request accepted, framing included (default 65536)
      --max-arguments N    most words in one request (default 1024)
      --subscriber-backlog-bytes N   bytes queued for a subscriber before it is disconnected
                           (default 8388608)
      --metrics-port N     serve Prometheus metrics (text format 0.0.4) on plain HTTP at
                           GET http://<metrics-host>:N/metrics (default: off)
      --metrics-host ADDR  address for --metrics-port (default 127.0.0.1). The metrics are read-only
                           totals with no authentication; another address exposes them to whoever
                           can reach it, and the server says so at start.
      --allow-reset        let RESET (admin role) empty the engine: for test deployments
      -h, --help           this text

    """

/// `launched` is the first instant of `main`: the start the ready line counts from when the kernel's
/// record of the process start cannot be read.
func serve(_ arguments: [String], launched: ContinuousClock.Instant) async -> Never {
    var flags = Flags(arguments, usage: serveUsage)
    var configuration = ServerConfiguration()
    var engineConfiguration = EngineConfiguration()
    var dataDirectory = "./stockpile-data"
    var durability = DurabilityPolicy.always
    var authFile: String?
    var seedFile: String?
    var segmentByteCount = SegmentWriter.segmentByteCountDefault
    var loops: Int?
    while let flag = flags.next() {
        switch flag {
        case "--host": configuration.host = flags.value(flag)
        case "--port": configuration.port = flags.integer(flag, in: 0...65535)
        case "--data-dir": dataDirectory = flags.value(flag)
        case "--fsync":
            let text = flags.value(flag)
            guard let policy = DurabilityPolicy(parsing: text) else { fail("--fsync takes always, interval=<ms> or none, not '\(text)'") }
            durability = policy
        case "--auth-file": authFile = flags.value(flag)
        case "--insecure": configuration.insecure = true
        case "--seed": seedFile = flags.value(flag)
        case "--shards": engineConfiguration.shardCount = flags.integer(flag, in: 1...64)
        case "--replay-threads": engineConfiguration.replayThreadCount = flags.integer(flag, in: 1...64)
        case "--segment-mib": segmentByteCount = flags.integer(flag, in: 1...4096) << 20
        case "--log-retention-mib": engineConfiguration.logRetentionByteCount = flags.integer(flag, in: 1...(1 << 30)) << 20
        case "--snapshot-every": engineConfiguration.snapshotEveryRecords = UInt64(flags.integer(flag, in: 0...Int(Int64.max)))
        case "--retention": engineConfiguration.retention = .seconds(flags.integer(flag, in: 1...(366 * 86400)))
        case "--max-clients": configuration.clientCountMax = flags.integer(flag, in: 1...1_000_000)
        case "--loops": loops = flags.integer(flag, in: 1...ServerConfiguration.eventLoopCountMax)
        case "--max-lines": engineConfiguration.linesPerReservationMax = flags.integer(flag, in: 1...Limits.linesPerReservationMax)
        case "--max-quantity":
            engineConfiguration.quantityMax = Quantity(Int64(flags.integer(flag, in: 1...Int(Limits.quantityMax.units))))
        case "--max-request-bytes": configuration.protocolLimits.requestByteCountMax = flags.integer(flag, in: 1024...(512 << 20))
        case "--max-arguments": configuration.protocolLimits.argumentCountMax = flags.integer(flag, in: 8...1_000_000)
        case "--subscriber-backlog-bytes": configuration.subscriberBacklogByteCountMax = flags.integer(flag, in: 1024...(1 << 40))
        case "--allow-reset": configuration.allowReset = true
        case "--metrics-port": configuration.metricsPort = flags.integer(flag, in: 0...65535)
        case "--metrics-host": configuration.metricsHost = flags.value(flag)
        case "-h", "--help":
            print(serveUsage, terminator: "")
            exit(0)
        default: fail("unknown option \(flag) for serve\n\n\(serveUsage)")
        }
    }
    configuration.eventLoopCount = loops ?? ServerConfiguration.eventLoopCountDefault(for: durability)
    if let authFile {
        do {
            configuration.auth = try AuthTable.load(path: authFile)
        } catch {
            fail("\(error)")
        }
    }

    // The seed file is read once and checked whole before anything starts, so a bad one changes
    // nothing, and loaded a chunk of rows at a time after: at 10,000,000 rows, holding them all would
    // take more memory than the cells they fill. The bytes of a regular file are given back a chunk
    // at a time as it loads (`StockFile`); a pipe works too (`--seed <(zcat stock.csv.gz)`).
    var seed: (bytes: StockBytes, summary: StockCSV.Summary)?
    if let seedFile {
        let bytes: StockBytes
        do {
            bytes = try StockFile.bytes(at: seedFile)
        } catch {
            fail("cannot read the seed file: \(error)")
        }
        do {
            seed = (bytes, try StockCSV.check(bytes, source: seedFile, parallel: ProcessInfo.processInfo.activeProcessorCount > 1))
        } catch {
            fail("the seed file is not valid, nothing was loaded:\n\(error)")
        }
    }

    let engine: Engine
    do {
        engine = try Engine.open(
            dataDirectory: dataDirectory, durability: durability, configuration: engineConfiguration, segmentByteCount: segmentByteCount)
    } catch {
        fail("cannot open \(dataDirectory): \(error)")
    }
    if let seedFile, let (bytes, seedSummary) = seed.take() {
        // Every warehouse first, so that a file naming an unknown one loads nothing.
        let known = Set(engine.warehouses().map(\.code))
        if let missing = seedSummary.warehouses.subtracting(known).sorted().first {
            fail("the seed file \(seedFile) was not loaded: warehouse \(missing) does not exist")
        }
        // Room for every row's cell at once: each shard's index is sized once, instead of at every
        // doubling, each of which hashed every cell again.
        engine.reserveCapacity(cells: seedSummary.rowCount)
        // A quarter of a million rows at a time: enough for every shard to load runs of thousands at
        // once, and a bounded copy of the rows beside the file (about 15 MB, twice with the chunk read
        // ahead). A million at a time kept about 150 MB more at the peak and ran no faster.
        let (count, refusal) = await engine.importStock(StockCSV.rows(bytes, source: seedFile, chunkRowCount: 1 << 18), actor: "seed")
        if let refusal { fail("the seed file \(seedFile) was not loaded (\(count) rows were): \(refusal)") }
        Server.logToStandardError("seeded \(count) cell(s) from \(seedFile)")
    }
    // The file and its rows are gone: give their memory back before serving.
    _ = stockpile_malloc_trim()
    let server: Server
    do {
        server = try Server(engine: engine, configuration: configuration)
    } catch {
        fail("\(error)")
    }
    // Handlers first, then the line that tells the world the server is up: a signal sent as soon as
    // that line appears must already shut down cleanly.
    onShutdownSignal { name in
        Server.logToStandardError("\(name): shutting down")
        server.shutdown()
    }
    let where_ = durability == .none
        ? "durability off (--fsync none): nothing is written to disk, a restart starts empty"
        : "fsync \(durability.flagText), data in \(dataDirectory)"
    // The listener accepts from here on (connections wait in its backlog until the loop takes them).
    let elapsed = ProcessStart.elapsed(orSince: launched)
    Server.logToStandardError(
        "listening on \(configuration.host):\(server.port) (\(where_); \(engineConfiguration.shardCount) shards; \(configuration.eventLoopCount) event loop(s); "
            + "\(configuration.auth.map { "\($0.tokenCount) token(s)" } ?? "no auth, loopback only")"
            + "\(server.metricsPort.map { "; metrics on http://\(configuration.metricsHost):\($0)/metrics" } ?? "")"
            + "; ready in \(elapsed.formatted(.units(allowed: [.milliseconds]))))")

    await server.stopped()
    do {
        try engine.close()
    } catch {
        Server.logToStandardError("the log could not be closed cleanly: \(error)")
        exit(1)
    }
    Server.logToStandardError(durability == .none ? "stopped" : "stopped; the log is synced")
    exit(0)
}

/// The write end of the pipe the signal handler writes to. Set once, before the handler is installed.
nonisolated(unsafe) private var signalPipeWriteDescriptor: Int32 = -1

/// Calls `body` (on a thread of its own) with the signal's name each time SIGINT or SIGTERM arrives.
/// The handler itself only writes the signal number to a pipe, which is all a signal handler may
/// safely do; the thread reading the pipe does the rest.
func onShutdownSignal(_ body: @escaping @Sendable (String) -> Void) {
    var descriptors: [Int32] = [-1, -1]
    guard pipe(&descriptors) == 0 else { fail("cannot create the signal pipe: errno \(errno)") }
    signalPipeWriteDescriptor = descriptors[1]
    let readDescriptor = descriptors[0]
    for number in [SIGINT, SIGTERM] {
        _ = signal(number) { received in
            var byte = UInt8(truncatingIfNeeded: received)
            _ = write(signalPipeWriteDescriptor, &byte, 1)
        }
    }
    Thread.detachNewThread {
        var byte: UInt8 = 0
        while true {
            let n = read(readDescriptor, &byte, 1)
            if n == 1 { body(Int32(byte) == SIGINT ? "SIGINT" : "SIGTERM") } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }
}
