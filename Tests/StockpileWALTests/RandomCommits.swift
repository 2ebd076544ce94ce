// Seeded random values of every type the log encodes, for round-trip and fuzz tests. The same seed
// gives the same values on every run and machine (SplitMix64, no system randomness), so a failure
// printed with its seed can be replayed. Values reach the edges on purpose: extreme integers, empty
// and multi-byte strings, absent and present optionals, every enum case.

import Foundation
import StockpileCore
@testable import StockpileWAL

struct RandomCommits {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// The seed tests use unless `STOCKPILE_SEED` names another.
    static func seed(default value: UInt64) -> UInt64 {
        guard let text = ProcessInfo.processInfo.environment["STOCKPILE_SEED"], let seed = UInt64(text) else { return value }
        return seed
    }

    /// How many random cases a test runs: `STOCKPILE_FUZZ_COUNT`, or `value`.
    static func count(default value: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment["STOCKPILE_FUZZ_COUNT"], let n = Int(text), n > 0 else { return value }
        return n
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { rng.next() & 1 == 1 }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }

    mutating func int64() -> Int64 {
        switch int(0...5) {
        case 0: return 0
        case 1: return Int64(int(-200...200))
        case 2: return pick([Int64.min, Int64.max, Int64.min + 1, Int64.max - 1, -1, 1])
        case 3: return Int64(int(0...1_000_000_000_000))
        default: return Int64(bitPattern: rng.next())
        }
    }

    mutating func uint64() -> UInt64 {
        bool() ? UInt64(int(0...100_000)) : pick([0, 1, 127, 128, 16383, 16384, UInt64.max, rng.next()])
    }

    mutating func quantity() -> Quantity { Quantity(int64()) }
    mutating func time() -> Timestamp { Timestamp(milliseconds: bool() ? 1_700_000_000_000 + Int64(int(0...1_000_000)) : int64()) }

    mutating func string() -> String {
        let pieces = ["a", "Z", "0", "-", "_", ":", "/", ".", " ", "\t", "é", "ß", "東", "🚚", "\u{301}", "\"", "\\", "\0"]
        var s = ""
        let n = int(0...10) == 0 ? int(100...300) : int(0...12)
        for _ in 0..<n { s += pick(pieces) }
        return s
    }

    mutating func optional<T>(_ make: (inout RandomCommits) -> T) -> T? { bool() ? make(&self) : nil }

    mutating func duration() -> Duration {
        switch int(0...3) {
        case 0: return .seconds(int(1...2_592_000))
        case 1: return .milliseconds(int(-5000...5000))
        case 2: return Duration(secondsComponent: int64(), attosecondsComponent: 0)
        default:
            // Canonical components: |attoseconds| < 10^18, with the sign of the seconds.
            let seconds = Int64(int(-1_000_000...1_000_000))
            let magnitude = Int64.random(in: 0..<1_000_000_000_000_000_000, using: &rng)
            let attoseconds = seconds < 0 || (seconds == 0 && bool()) ? -magnitude : magnitude
            return Duration(secondsComponent: seconds, attosecondsComponent: attoseconds)
        }
    }

    mutating func entry() -> LedgerEntry {
        LedgerEntry(
            seq: uint64(), time: time(), type: pick(EntryType.allCases), variant: string(), warehouse: string(),
            deltaOnHand: quantity(), deltaReserved: quantity(), onHand: quantity(), reserved: quantity(),
            reason: optional { $0.pick(ReasonCode.allCases) }, note: string(), reference: string(), reservation: string(),
            actor: string())
    }

    mutating func reserveLine() -> ReserveLine { ReserveLine(variant: string(), warehouse: string(), quantity: quantity()) }

    mutating func reserveRequest() -> ReserveRequest {
        ReserveRequest(
            id: string(), lines: (0..<int(0...4)).map { _ in reserveLine() }, ttl: optional { $0.duration() },
            customer: optional { $0.string() }, strategy: optional { $0.pick(PlacementStrategy.allCases) })
    }

    mutating func reservation() -> Reservation {
        var fingerprint = ReserveFingerprint(reserveRequest(), strategy: pick(PlacementStrategy.allCases))
        if bool() { fingerprint.lines.reverse() }  // any stored order must survive, sorted or not
        let lines = (0..<int(0...5)).map { _ in
            ReservationLine(
                variant: string(), warehouse: string(), quantity: quantity(), fulfilled: quantity(), released: quantity(),
                backordered: quantity(), tracked: bool())
        }
        return Reservation(
            id: string(), lines: lines, status: pick(ReservationStatus.allCases), expiresAt: optional { $0.time() },
            customer: optional { $0.string() }, createdAt: time(), closedAt: optional { $0.time() }, endedByExpiry: bool(),
            fingerprint: fingerprint)
    }

    mutating func warehouse() -> Warehouse {
        Warehouse(code: string(), name: string(), address: string(), priority: int64(), active: bool())
    }

    mutating func policy() -> VariantPolicy {
        VariantPolicy(variant: string(), backorder: bool(), unlimited: bool(), lowStock: quantity())
    }

    mutating func selector() -> LineSelector { LineSelector(variant: string(), warehouse: string(), quantity: quantity()) }

    /// A command of any case; with `keyed`, one of the cases that take a key, carrying one.
    mutating func command(keyed: Bool) -> Command {
        let key: String? = keyed ? "k" + string() : optional { $0.string() }
        switch int(keyed ? 3...9 : 0...12) {
        case 0: return .reserve(reserveRequest())
        case 1: return .extend(id: string(), ttl: duration())
        case 2: return .confirm(id: string())
        case 3: return .release(id: string(), line: optional { $0.selector() }, reason: optional { $0.pick(ReasonCode.allCases) }, key: key)
        case 4: return .fulfill(id: string(), line: optional { $0.selector() }, key: key)
        case 5:
            return .adjust(
                variant: string(), warehouse: string(), delta: quantity(), reason: pick(ReasonCode.allCases),
                note: optional { $0.string() }, reference: optional { $0.string() }, key: key)
        case 6:
            return .setQuantity(
                variant: string(), warehouse: string(), quantity: quantity(), reason: pick(ReasonCode.allCases),
                ifOnHand: optional { $0.quantity() }, key: key)
        case 7: return .count(variant: string(), warehouse: string(), counted: quantity(), note: optional { $0.string() }, key: key)
        case 8:
            return .transfer(
                variant: string(), from: string(), to: string(), quantity: quantity(), note: optional { $0.string() }, key: key)
        case 9:
            return .returnStock(
                variant: string(), warehouse: string(), quantity: quantity(), disposition: pick([.restock, .damaged]),
                reference: optional { $0.string() }, key: key)
        case 10:
            return .setWarehouse(WarehouseChange(
                code: string(), name: optional { $0.string() }, address: optional { $0.string() },
                priority: optional { $0.int64() }, active: optional { $0.bool() }))
        case 11:
            return .importStock(variant: string(), warehouse: string(), onHand: quantity())
        default:
            return .setPolicy(PolicyChange(
                variant: string(), backorder: optional { $0.bool() }, unlimited: optional { $0.bool() },
                lowStock: optional { $0.quantity() }))
        }
    }

    mutating func cellRecord() -> CellRecord {
        CellRecord(variant: string(), warehouse: string(), onHand: quantity(), reserved: quantity())
    }

    mutating func reply() -> Reply {
        switch int(0...4) {
        case 0: return .reservation(ReservationRecord(reservation(), replayed: bool()))
        case 1:
            return .cell(CellReceipt(
                cell: cellRecord(), seq: uint64(), shortfall: quantity(), variance: optional { $0.quantity() }, replayed: bool()))
        case 2: return .transfer(TransferReceipt(from: cellRecord(), to: cellRecord(), seq: uint64(), replayed: bool()))
        case 3: return .warehouse(warehouse())
        default: return .policy(policy())
        }
    }

    /// A commit whose reply shape has what it needs (as every commit the engine makes has).
    mutating func commit() -> Commit {
        let shape: ReplyShape = pick([.reservation, .cell(variance: optional { $0.quantity() }), .transfer, .warehouse, .policy])
        var entryCount = int(0...4)
        if case .cell = shape { entryCount = max(entryCount, 1) }
        if shape == .transfer { entryCount = max(entryCount, 2) }
        let entries = (0..<entryCount).map { _ in entry() }
        let reservation = shape == .reservation || bool() ? reservation() : nil
        let warehouse = shape == .warehouse || bool() ? warehouse() : nil
        let policy = shape == .policy || bool() ? policy() : nil
        let keyedCommand = bool() ? command(keyed: true) : nil
        return Commit(
            time: time(), entries: entries, reservation: reservation, warehouse: warehouse, policy: policy,
            replyShape: shape, keyedCommand: keyedCommand)
    }

    mutating func keyUse() -> KeyUse {
        KeyUse(time: time(), command: command(keyed: true), reply: reply())
    }
}
