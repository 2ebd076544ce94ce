// What reads show once the log has failed. A failed write or sync stops every change (READONLY), but
// memory may already hold the effects of records the log never made durable: they were applied when
// handed over, before the failure was known. A read must not reveal them (SPEC §4), and reads go on,
// so from the failure on they are answered from a durable view: a second engine, in memory, loaded
// from the newest snapshot and the log up to the last LSN the log acknowledged — exactly what a
// restart would bring back. It is built once, at the first read after the failure, and never changes
// (not even by expiry: an expiry is a change, and changes are stopped).

import Foundation
import StockpileCore
import StockpileWAL

extension Engine {
    /// The durable view of a failed log, built at the first call. Readers that come meanwhile wait for
    /// the one build (a read of the snapshot and the log: seconds at millions of records, once).
    func durableView(after failure: WALIOError) -> Engine {
        durableViewSlot.withLock { slot in
            if let view = slot { return view }
            let view = buildDurableView(after: failure)
            slot = view
            return view
        }
    }

    private func buildDurableView(after failure: WALIOError) -> Engine {
        guard let directory = directoryLock?.directory, let log = ledger.log else {
            preconditionFailure("only a durable engine's log can fail")
        }
        // Everything up to here was acknowledged under the policy; nothing after it will ever be.
        let bound = log.progress.acknowledgedLSN
        let view = Engine(configuration: configuration, clock: clock, directoryLock: nil, fileSystem: fileSystem, durableViewOf: directory)
        do throws(EngineOpenError) {
            _ = try view.loadDurableState(from: directory, through: bound, warn: { _ in })
        } catch {
            // The log can be neither written nor read back: no read can be answered truthfully, and
            // nothing acknowledged is lost by stopping (the log on disk is what a restart recovers).
            fatalError("the log could not be written (\(failure)) and cannot be read back (\(error)); restart to recover")
        }
        FileHandle.standardError.write(Data(("stockpile: writes are stopped (\(failure)); reads now show the state "
            + "as the log holds it, through LSN \(bound)\n").utf8))
        return view
    }
}
