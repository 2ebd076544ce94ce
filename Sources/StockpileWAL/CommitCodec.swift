// The payload encodings of wal/FORMAT.md §3: a `Commit`, a `KeyUse` and every value inside them, field by
// field in the order of the tables there. It keeps true: `decode(encode(x)) == x` for every value, and
// every byte string that decodes re-encodes to exactly the same bytes (varints are minimal, bools and
// presence bytes are 0 or 1, enums are the numbered codes of §3.7, durations canonical), so there is
// one encoding per value and a damaged payload can only fail to decode or decode to itself.

import StockpileCore

/// Encodes and decodes the payloads of `commit` and `keyUse` records.
public enum CommitCodec {
    /// Appends the encoding of `commit`. Cost: linear in its size; no allocation once `writer` has room.
    public static func encode(_ commit: Commit, into writer: inout ByteWriter) {
        writer.write(commit)
    }

    /// Reads one commit.
    /// - Throws: `WALDecodingError` with the offset of the first field that is not as §3 describes, or
    ///   when the fields do not make a whole (`Commit.reply()` could not be formed).
    public static func decode(from reader: inout ByteReader) throws(WALDecodingError) -> Commit {
        try reader.readCommit()
    }

    /// Appends the encoding of `keyUse`.
    public static func encode(_ keyUse: KeyUse, into writer: inout ByteWriter) {
        writer.write(keyUse)
    }

    /// Reads one key use.
    /// - Throws: `WALDecodingError` as `decode(from:)`, and when the command carries no key.
    public static func decodeKeyUse(from reader: inout ByteReader) throws(WALDecodingError) -> KeyUse {
        try reader.readKeyUse()
    }

    /// The encoding of `commit` in a new array (tests and tools; the writer reuses one buffer instead).
    public static func encode(_ commit: Commit) -> [UInt8] {
        var w = ByteWriter()
        w.write(commit)
        return w.bytes
    }

    /// Decodes `bytes` as exactly one commit.
    /// - Throws: `WALDecodingError`, including `trailingBytes` when the commit ends before the bytes do.
    public static func decodeCommit(_ bytes: [UInt8]) throws(WALDecodingError) -> Commit {
        try ByteReader.withReader(over: bytes) { (r: inout ByteReader) throws(WALDecodingError) -> Commit in
            let c = try r.readCommit()
            try r.expectEnd()
            return c
        }
    }
}

// MARK: - Code tables (wal/FORMAT.md §3.7). Never renumber; a new case takes the next free number.

extension EntryType {
    var walCode: UInt8 {
        switch self {
        case .reserve: 1
        case .release: 2
        case .expire: 3
        case .fulfill: 4
        case .adjust: 5
        case .set: 6
        case .count: 7
        case .transfer: 8
        case .return: 9
        case .extend: 10
        case .confirm: 11
        case .warehouse: 12
        case .policy: 13
        case .import: 14
        case .reset: 15
        }
    }

    init?(walCode: UInt8) {
        switch walCode {
        case 1: self = .reserve
        case 2: self = .release
        case 3: self = .expire
        case 4: self = .fulfill
        case 5: self = .adjust
        case 6: self = .set
        case 7: self = .count
        case 8: self = .transfer
        case 9: self = .return
        case 10: self = .extend
        case 11: self = .confirm
        case 12: self = .warehouse
        case 13: self = .policy
        case 14: self = .import
        case 15: self = .reset
        default: return nil
        }
    }
}

extension ReasonCode {
    var walCode: UInt8 {
        switch self {
        case .received: 1
        case .returned: 2
        case .damaged: 3
        case .lost: 4
        case .found: 5
        case .correction: 6
        case .count: 7
        case .transfer: 8
        case .import: 9
        case .expired: 10
        case .cancelled: 11
        case .other: 12
        }
    }

    init?(walCode: UInt8) {
        switch walCode {
        case 1: self = .received
        case 2: self = .returned
        case 3: self = .damaged
        case 4: self = .lost
        case 5: self = .found
        case 6: self = .correction
        case 7: self = .count
        case 8: self = .transfer
        case 9: self = .import
        case 10: self = .expired
        case 11: self = .cancelled
        case 12: self = .other
        default: return nil
        }
    }
}

extension ReservationStatus {
    var walCode: UInt8 {
        switch self {
        case .active: 1
        case .partiallyFulfilled: 2
        case .fulfilled: 3
        case .released: 4
        case .expired: 5
        }
    }

    init?(walCode: UInt8) {
        switch walCode {
        case 1: self = .active
        case 2: self = .partiallyFulfilled
        case 3: self = .fulfilled
        case 4: self = .released
        case 5: self = .expired
        default: return nil
        }
    }

    /// The code of a reservation that reads `fulfilled` but ended by expiry (something shipped before
    /// the hold expired). A code of its own rather than a new field keeps every existing log and
    /// snapshot readable: they hold only codes 1-5, and 3 still means a fulfilled reservation that did
    /// not end by expiry.
    static let fulfilledEndedByExpiryWALCode: UInt8 = 6

    /// A reservation's stored status: its status, and whether it ended by expiry (always so for code 5).
    static func stored(walCode: UInt8) -> (status: ReservationStatus, endedByExpiry: Bool)? {
        if walCode == fulfilledEndedByExpiryWALCode { return (.fulfilled, true) }
        return ReservationStatus(walCode: walCode).map { ($0, $0 == .expired) }
    }
}

extension PlacementStrategy {
    var walCode: UInt8 {
        switch self {
        case .priority: 1
        case .most: 2
        case .split: 3
        }
    }

    init?(walCode: UInt8) {
        switch walCode {
        case 1: self = .priority
        case 2: self = .most
        case 3: self = .split
        default: return nil
        }
    }
}

extension ReturnDisposition {
    var walCode: UInt8 {
        switch self {
        case .restock: 1
        case .damaged: 2
        }
    }

    init?(walCode: UInt8) {
        switch walCode {
        case 1: self = .restock
        case 2: self = .damaged
        default: return nil
        }
    }
}

/// The codes of `ReplyShape` and `Reply` (one table: the shape names the kind of reply), and of
/// `Command`. Their cases carry values, so the tables are plain constants and exhaustive switches.
enum WALCode {
    static let replyReservation: UInt8 = 1
    static let replyCell: UInt8 = 2
    static let replyTransfer: UInt8 = 3
    static let replyWarehouse: UInt8 = 4
    static let replyPolicy: UInt8 = 5

    static let commandReserve: UInt8 = 1
    static let commandExtend: UInt8 = 2
    static let commandConfirm: UInt8 = 3
    static let commandRelease: UInt8 = 4
    static let commandFulfill: UInt8 = 5
    static let commandAdjust: UInt8 = 6
    static let commandSetQuantity: UInt8 = 7
    static let commandCount: UInt8 = 8
    static let commandTransfer: UInt8 = 9
    static let commandReturnStock: UInt8 = 10
    static let commandSetWarehouse: UInt8 = 11
    static let commandSetPolicy: UInt8 = 12
    static let commandImportStock: UInt8 = 13
}

// MARK: - Writing

extension ByteWriter {
    mutating func writeOptional<T>(_ value: T?, _ write: (inout ByteWriter, T) -> Void) {
        if let value {
            writePresence(true)
            write(&self, value)
        } else {
            writePresence(false)
        }
    }

    mutating func write(_ t: Timestamp) { writeSignedVarint(t.milliseconds) }
    mutating func write(_ q: Quantity) { writeSignedVarint(q.units) }

    mutating func write(_ d: Duration) {
        let (seconds, attoseconds) = d.components
        writeSignedVarint(seconds)
        writeSignedVarint(attoseconds)
    }

    mutating func write(_ c: Commit) {
        write(c.time)
        writeVarint(UInt64(c.entries.count))
        for e in c.entries { write(e) }
        writeOptional(c.reservation) { $0.write($1) }
        writeOptional(c.warehouse) { $0.write($1) }
        writeOptional(c.policy) { $0.write($1) }
        switch c.replyShape {
        case .reservation: writeUInt8(WALCode.replyReservation)
        case .cell(let variance):
            writeUInt8(WALCode.replyCell)
            writeOptional(variance) { $0.write($1) }
        case .transfer: writeUInt8(WALCode.replyTransfer)
        case .warehouse: writeUInt8(WALCode.replyWarehouse)
        case .policy: writeUInt8(WALCode.replyPolicy)
        }
        writeOptional(c.keyedCommand) { $0.write($1) }
    }

    mutating func write(_ e: LedgerEntry) {
        writeVarint(e.seq)
        write(e.time)
        writeUInt8(e.type.walCode)
        writeString(e.variant)
        writeString(e.warehouse)
        write(e.deltaOnHand)
        write(e.deltaReserved)
        write(e.onHand)
        write(e.reserved)
        writeOptional(e.reason) { $0.writeUInt8($1.walCode) }
        writeString(e.note)
        writeString(e.reference)
        writeString(e.reservation)
        writeString(e.actor)
    }

    mutating func write(_ r: Reservation) {
        writeString(r.id)
        writeVarint(UInt64(r.lines.count))
        for line in r.lines { write(line) }
        writeReservationState(
            status: r.status, endedByExpiry: r.endedByExpiry, expiresAt: r.expiresAt, customer: r.customer, createdAt: r.createdAt, closedAt: r.closedAt)
        write(r.fingerprint)
    }

    /// The bytes `write(_: Reservation)` writes for the reservation `r` makes (`r.reservation`), read
    /// from its fields: one line, and a fingerprint of that line (its request named it). Written
    /// through a cursor and appended at once (a snapshot writes millions of these); debug builds compare
    /// it with `write(_: Reservation)`.
    mutating func write(_ r: SnapshotOneLineReservation) {
        let start = count
        let variant = r.variant
        let customerCount = r.customer?.utf8.count ?? 0
        // Counts 5 bytes at most, varints 10, a TTL 20; the fixed bytes under 16.
        let room = 5 + r.id.count + 2 * (10 + variant.count + r.warehouse.utf8.count) + 2 * (5 + customerCount) + 9 * 10 + 20 + 16
        write(upTo: room) { c in
            c.putCounted(r.id)
            c.putVarint(1)
            c.putCounted(variant)
            c.putCounted(r.warehouse)
            c.putSigned(r.quantity.units)
            c.putSigned(r.fulfilled.units)
            c.putSigned(r.released.units)
            c.putSigned(0)
            c.putByte(r.tracked ? 1 : 0)
            c.putByte(r.status == .fulfilled && r.endedByExpiry ? ReservationStatus.fulfilledEndedByExpiryWALCode : r.status.walCode)
            c.putOptional(r.expiresAt) { $0.putSigned($1.milliseconds) }
            c.putOptional(r.customer) { $0.putCounted($1) }
            c.putSigned(r.createdAt.milliseconds)
            c.putOptional(r.closedAt) { $0.putSigned($1.milliseconds) }
            // The fingerprint: its one line as the request named it, then its terms.
            c.putVarint(1)
            c.putCounted(variant)
            c.putCounted(r.warehouse)
            c.putSigned(r.quantity.units)
            c.putOptional(r.requestTTL) { $0.put($1) }
            c.putOptional(r.customer) { $0.putCounted($1) }
            c.putByte(r.strategy.walCode)
        }
        assert(
            {
                var reference = ByteWriter()
                reference.write(r.reservation)
                return withUnsafeBytes(in: start..<count) { Array($0) } == reference.bytes
            }(), "a snapshot reservation written otherwise than the reservation it makes")
    }

    /// A reservation's fields between its lines and its fingerprint.
    private mutating func writeReservationState(
        status: ReservationStatus, endedByExpiry: Bool, expiresAt: Timestamp?, customer: String?, createdAt: Timestamp, closedAt: Timestamp?
    ) {
        writeUInt8(status == .fulfilled && endedByExpiry ? ReservationStatus.fulfilledEndedByExpiryWALCode : status.walCode)
        writeOptional(expiresAt) { $0.write($1) }
        writeOptional(customer) { $0.writeString($1) }
        write(createdAt)
        writeOptional(closedAt) { $0.write($1) }
    }

    mutating func write(_ line: ReservationLine) {
        writeString(line.variant)
        writeString(line.warehouse)
        write(line.quantity)
        write(line.fulfilled)
        write(line.released)
        write(line.backordered)
        writeBool(line.tracked)
    }

    mutating func write(_ f: ReserveFingerprint) {
        writeVarint(UInt64(f.lines.count))
        for line in f.lines { write(line) }
        writeFingerprintTerms(ttl: f.ttl, customer: f.customer, strategy: f.strategy)
    }

    /// What a fingerprint writes after its lines.
    private mutating func writeFingerprintTerms(ttl: Duration?, customer: String?, strategy: PlacementStrategy) {
        writeOptional(ttl) { $0.write($1) }
        writeOptional(customer) { $0.writeString($1) }
        writeUInt8(strategy.walCode)
    }

    mutating func write(_ line: ReserveLine) {
        writeString(line.variant)
        writeString(line.warehouse)
        write(line.quantity)
    }

    mutating func write(_ line: LineSelector) {
        writeString(line.variant)
        writeString(line.warehouse)
        write(line.quantity)
    }

    mutating func write(_ w: Warehouse) {
        writeString(w.code)
        writeString(w.name)
        writeString(w.address)
        writeSignedVarint(w.priority)
        writeBool(w.active)
    }

    mutating func write(_ p: VariantPolicy) {
        writeString(p.variant)
        writeBool(p.backorder)
        writeBool(p.unlimited)
        write(p.lowStock)
    }

    mutating func write(_ change: WarehouseChange) {
        writeString(change.code)
        writeOptional(change.name) { $0.writeString($1) }
        writeOptional(change.address) { $0.writeString($1) }
        writeOptional(change.priority) { $0.writeSignedVarint($1) }
        writeOptional(change.active) { $0.writeBool($1) }
    }

    mutating func write(_ change: PolicyChange) {
        writeString(change.variant)
        writeOptional(change.backorder) { $0.writeBool($1) }
        writeOptional(change.unlimited) { $0.writeBool($1) }
        writeOptional(change.lowStock) { $0.write($1) }
    }

    mutating func write(_ command: Command) {
        switch command {
        case .reserve(let r):
            writeUInt8(WALCode.commandReserve)
            writeString(r.id)
            writeVarint(UInt64(r.lines.count))
            for line in r.lines { write(line) }
            writeOptional(r.ttl) { $0.write($1) }
            writeOptional(r.customer) { $0.writeString($1) }
            writeOptional(r.strategy) { $0.writeUInt8($1.walCode) }
        case .extend(let id, let ttl, let key):
            writeUInt8(WALCode.commandExtend)
            writeString(id)
            write(ttl)
            writeOptional(key) { $0.writeString($1) }
        case .confirm(let id, let key):
            writeUInt8(WALCode.commandConfirm)
            writeString(id)
            writeOptional(key) { $0.writeString($1) }
        case .release(let id, let line, let reason, let key):
            writeUInt8(WALCode.commandRelease)
            writeString(id)
            writeOptional(line) { $0.write($1) }
            writeOptional(reason) { $0.writeUInt8($1.walCode) }
            writeOptional(key) { $0.writeString($1) }
        case .fulfill(let id, let line, let key):
            writeUInt8(WALCode.commandFulfill)
            writeString(id)
            writeOptional(line) { $0.write($1) }
            writeOptional(key) { $0.writeString($1) }
        case .adjust(let variant, let warehouse, let delta, let reason, let note, let reference, let key):
            writeUInt8(WALCode.commandAdjust)
            writeString(variant)
            writeString(warehouse)
            write(delta)
            writeUInt8(reason.walCode)
            writeOptional(note) { $0.writeString($1) }
            writeOptional(reference) { $0.writeString($1) }
            writeOptional(key) { $0.writeString($1) }
        case .setQuantity(let variant, let warehouse, let quantity, let reason, let ifOnHand, let key):
            writeUInt8(WALCode.commandSetQuantity)
            writeString(variant)
            writeString(warehouse)
            write(quantity)
            writeUInt8(reason.walCode)
            writeOptional(ifOnHand) { $0.write($1) }
            writeOptional(key) { $0.writeString($1) }
        case .count(let variant, let warehouse, let counted, let note, let key):
            writeUInt8(WALCode.commandCount)
            writeString(variant)
            writeString(warehouse)
            write(counted)
            writeOptional(note) { $0.writeString($1) }
            writeOptional(key) { $0.writeString($1) }
        case .transfer(let variant, let from, let to, let quantity, let note, let key):
            writeUInt8(WALCode.commandTransfer)
            writeString(variant)
            writeString(from)
            writeString(to)
            write(quantity)
            writeOptional(note) { $0.writeString($1) }
            writeOptional(key) { $0.writeString($1) }
        case .returnStock(let variant, let warehouse, let quantity, let disposition, let reference, let key):
            writeUInt8(WALCode.commandReturnStock)
            writeString(variant)
            writeString(warehouse)
            write(quantity)
            writeUInt8(disposition.walCode)
            writeOptional(reference) { $0.writeString($1) }
            writeOptional(key) { $0.writeString($1) }
        case .setWarehouse(let change, let key):
            writeUInt8(WALCode.commandSetWarehouse)
            write(change)
            writeOptional(key) { $0.writeString($1) }
        case .setPolicy(let change, let key):
            writeUInt8(WALCode.commandSetPolicy)
            write(change)
            writeOptional(key) { $0.writeString($1) }
        case .importStock(let variant, let warehouse, let onHand):
            writeUInt8(WALCode.commandImportStock)
            writeString(variant)
            writeString(warehouse)
            write(onHand)
        }
    }

    mutating func write(_ k: KeyUse) {
        write(k.time)
        write(k.command)
        write(k.reply)
    }

    mutating func write(_ cell: CellRecord) {
        writeString(cell.variant)
        writeString(cell.warehouse)
        write(cell.onHand)
        write(cell.reserved)
    }

    mutating func write(_ reply: Reply) {
        switch reply {
        case .reservation(let record):
            writeUInt8(WALCode.replyReservation)
            write(record.reservation)
            writeBool(record.replayed)
        case .cell(let receipt):
            writeUInt8(WALCode.replyCell)
            write(receipt.cell)
            writeVarint(receipt.seq)
            write(receipt.shortfall)
            writeOptional(receipt.variance) { $0.write($1) }
            writeBool(receipt.replayed)
        case .transfer(let receipt):
            writeUInt8(WALCode.replyTransfer)
            write(receipt.from)
            write(receipt.to)
            writeVarint(receipt.seq)
            writeBool(receipt.replayed)
        // A stored reply is the original one; only a retry marks it replayed, so the flag is not stored.
        case .warehouse(let w, _):
            writeUInt8(WALCode.replyWarehouse)
            write(w)
        case .policy(let p, _):
            writeUInt8(WALCode.replyPolicy)
            write(p)
        }
    }
}

// MARK: - Reading

extension ByteReader {
    /// A one-byte code of the table named `table`, or an error at the code's offset.
    mutating func readCode<T>(_ table: String, _ make: (UInt8) -> T?) throws(WALDecodingError) -> T {
        let start = position
        let code = try readUInt8()
        guard let value = make(code) else { throw failure(.unknownCode(table: table, code: code), at: start) }
        return value
    }

    mutating func readTimestamp() throws(WALDecodingError) -> Timestamp {
        Timestamp(milliseconds: try readSignedVarint())
    }

    mutating func readQuantity() throws(WALDecodingError) -> Quantity {
        Quantity(try readSignedVarint())
    }

    /// A duration in the canonical form `Duration.components` returns. Anything else is refused before
    /// a `Duration` is made of it: a non-canonical pair can overflow `components` (which traps).
    mutating func readDuration() throws(WALDecodingError) -> Duration {
        let start = position
        let seconds = try readSignedVarint()
        let attoseconds = try readSignedVarint()
        let attosecondsPerSecond: Int64 = 1_000_000_000_000_000_000
        guard attoseconds > -attosecondsPerSecond, attoseconds < attosecondsPerSecond,
            attoseconds == 0 || seconds == 0 || (attoseconds < 0) == (seconds < 0)
        else { throw failure(.nonCanonical("duration (\(seconds) s, \(attoseconds) as)"), at: start) }
        return Duration(secondsComponent: seconds, attosecondsComponent: attoseconds)
    }

    mutating func readCommit() throws(WALDecodingError) -> Commit {
        let start = position
        let time = try readTimestamp()
        let entryCount = try readCount()
        var entries: [LedgerEntry] = []
        entries.reserveCapacity(entryCount)
        for _ in 0..<entryCount { entries.append(try readLedgerEntry()) }
        let reservation = try readPresence() ? try readReservation() : nil
        let warehouse = try readPresence() ? try readWarehouse() : nil
        let policy = try readPresence() ? try readPolicy() : nil
        let shapeStart = position
        let shape: ReplyShape
        switch try readUInt8() {
        case WALCode.replyReservation: shape = .reservation
        case WALCode.replyCell: shape = .cell(variance: try readPresence() ? try readQuantity() : nil)
        case WALCode.replyTransfer: shape = .transfer
        case WALCode.replyWarehouse: shape = .warehouse
        case WALCode.replyPolicy: shape = .policy
        case let code: throw failure(.unknownCode(table: "ReplyShape", code: code), at: shapeStart)
        }
        let keyedCommand = try readPresence() ? try readCommand() : nil
        // The commit must be able to form its reply (`Commit.reply()` unwraps these) and its keyed command
        // must carry the key it is remembered under: checked here so that no decoded commit can trap later.
        let complete: Bool
        switch shape {
        case .reservation: complete = reservation != nil
        case .cell: complete = !entries.isEmpty
        case .transfer: complete = entries.count >= 2
        case .warehouse: complete = warehouse != nil
        case .policy: complete = policy != nil
        }
        guard complete else { throw failure(.inconsistent("reply shape \(shape) without what it replies with"), at: start) }
        if let keyedCommand, keyedCommand.key == nil {
            throw failure(.inconsistent("a keyed command without a key"), at: start)
        }
        return Commit(
            time: time, entries: entries, reservation: reservation, warehouse: warehouse, policy: policy,
            replyShape: shape, keyedCommand: keyedCommand)
    }

    mutating func readLedgerEntry() throws(WALDecodingError) -> LedgerEntry {
        let seq = try readVarint()
        let time = try readTimestamp()
        let type = try readCode("EntryType", EntryType.init(walCode:))
        let variant = try readString()
        let warehouse = try readString()
        let deltaOnHand = try readQuantity()
        let deltaReserved = try readQuantity()
        let onHand = try readQuantity()
        let reserved = try readQuantity()
        let reason = try readPresence() ? try readCode("ReasonCode", ReasonCode.init(walCode:)) : nil
        let note = try readString()
        let reference = try readString()
        let reservation = try readString()
        let actor = try readString()
        return LedgerEntry(
            seq: seq, time: time, type: type, variant: variant, warehouse: warehouse, deltaOnHand: deltaOnHand,
            deltaReserved: deltaReserved, onHand: onHand, reserved: reserved, reason: reason, note: note,
            reference: reference, reservation: reservation, actor: actor)
    }

    mutating func readReservation() throws(WALDecodingError) -> Reservation {
        let id = try readString()
        let lineCount = try readCount()
        var lines: [ReservationLine] = []
        lines.reserveCapacity(lineCount)
        for _ in 0..<lineCount { lines.append(try readReservationLine()) }
        let (status, endedByExpiry) = try readCode("ReservationStatus", ReservationStatus.stored(walCode:))
        let expiresAt = try readPresence() ? try readTimestamp() : nil
        let customer = try readPresence() ? try readString() : nil
        let createdAt = try readTimestamp()
        let closedAt = try readPresence() ? try readTimestamp() : nil
        let fingerprint = try readFingerprint()
        return Reservation(
            id: id, lines: lines, status: status, expiresAt: expiresAt, customer: customer, createdAt: createdAt,
            closedAt: closedAt, endedByExpiry: endedByExpiry, fingerprint: fingerprint)
    }

    mutating func readReservationLine() throws(WALDecodingError) -> ReservationLine {
        let variant = try readString()
        let warehouse = try readString()
        let quantity = try readQuantity()
        let fulfilled = try readQuantity()
        let released = try readQuantity()
        let backordered = try readQuantity()
        let tracked = try readBool()
        return ReservationLine(
            variant: variant, warehouse: warehouse, quantity: quantity, fulfilled: fulfilled, released: released,
            backordered: backordered, tracked: tracked)
    }

    mutating func readFingerprint() throws(WALDecodingError) -> ReserveFingerprint {
        let lines = try readReserveLines()
        let ttl = try readPresence() ? try readDuration() : nil
        let customer = try readPresence() ? try readString() : nil
        let strategy = try readCode("PlacementStrategy", PlacementStrategy.init(walCode:))
        // As written, in the stored order, so a fingerprint decodes to exactly the value encoded.
        return ReserveFingerprint(lines: lines, ttl: ttl, customer: customer, strategy: strategy)
    }

    mutating func readReserveLines() throws(WALDecodingError) -> [ReserveLine] {
        let count = try readCount()
        var lines: [ReserveLine] = []
        lines.reserveCapacity(count)
        for _ in 0..<count {
            let variant = try readString()
            let warehouse = try readString()
            let quantity = try readQuantity()
            lines.append(ReserveLine(variant: variant, warehouse: warehouse, quantity: quantity))
        }
        return lines
    }

    mutating func readLineSelector() throws(WALDecodingError) -> LineSelector {
        let variant = try readString()
        let warehouse = try readString()
        let quantity = try readQuantity()
        return LineSelector(variant: variant, warehouse: warehouse, quantity: quantity)
    }

    mutating func readWarehouse() throws(WALDecodingError) -> Warehouse {
        let code = try readString()
        let name = try readString()
        let address = try readString()
        let priority = try readSignedVarint()
        let active = try readBool()
        return Warehouse(code: code, name: name, address: address, priority: priority, active: active)
    }

    mutating func readPolicy() throws(WALDecodingError) -> VariantPolicy {
        let variant = try readString()
        let backorder = try readBool()
        let unlimited = try readBool()
        let lowStock = try readQuantity()
        return VariantPolicy(variant: variant, backorder: backorder, unlimited: unlimited, lowStock: lowStock)
    }

    mutating func readOptionalString() throws(WALDecodingError) -> String? {
        try readPresence() ? try readString() : nil
    }

    mutating func readCommand() throws(WALDecodingError) -> Command {
        let start = position
        switch try readUInt8() {
        case WALCode.commandReserve:
            let id = try readString()
            let lines = try readReserveLines()
            let ttl = try readPresence() ? try readDuration() : nil
            let customer = try readOptionalString()
            let strategy = try readPresence() ? try readCode("PlacementStrategy", PlacementStrategy.init(walCode:)) : nil
            return .reserve(ReserveRequest(id: id, lines: lines, ttl: ttl, customer: customer, strategy: strategy))
        // Extend, confirm, setWarehouse and setPolicy carry a key from version 2 on; version 1 logged
        // none of them (only keyed commands reach the log), so one layout serves both versions.
        case WALCode.commandExtend:
            let id = try readString()
            let ttl = try readDuration()
            return .extend(id: id, ttl: ttl, key: try readOptionalString())
        case WALCode.commandConfirm:
            let id = try readString()
            return .confirm(id: id, key: try readOptionalString())
        case WALCode.commandRelease:
            let id = try readString()
            let line = try readPresence() ? try readLineSelector() : nil
            let reason = try readPresence() ? try readCode("ReasonCode", ReasonCode.init(walCode:)) : nil
            let key = try readOptionalString()
            return .release(id: id, line: line, reason: reason, key: key)
        case WALCode.commandFulfill:
            let id = try readString()
            let line = try readPresence() ? try readLineSelector() : nil
            let key = try readOptionalString()
            return .fulfill(id: id, line: line, key: key)
        case WALCode.commandAdjust:
            let variant = try readString()
            let warehouse = try readString()
            let delta = try readQuantity()
            let reason = try readCode("ReasonCode", ReasonCode.init(walCode:))
            let note = try readOptionalString()
            let reference = try readOptionalString()
            let key = try readOptionalString()
            return .adjust(
                variant: variant, warehouse: warehouse, delta: delta, reason: reason, note: note, reference: reference,
                key: key)
        case WALCode.commandSetQuantity:
            let variant = try readString()
            let warehouse = try readString()
            let quantity = try readQuantity()
            let reason = try readCode("ReasonCode", ReasonCode.init(walCode:))
            let ifOnHand = try readPresence() ? try readQuantity() : nil
            let key = try readOptionalString()
            return .setQuantity(
                variant: variant, warehouse: warehouse, quantity: quantity, reason: reason, ifOnHand: ifOnHand, key: key)
        case WALCode.commandCount:
            let variant = try readString()
            let warehouse = try readString()
            let counted = try readQuantity()
            let note = try readOptionalString()
            let key = try readOptionalString()
            return .count(variant: variant, warehouse: warehouse, counted: counted, note: note, key: key)
        case WALCode.commandTransfer:
            let variant = try readString()
            let from = try readString()
            let to = try readString()
            let quantity = try readQuantity()
            let note = try readOptionalString()
            let key = try readOptionalString()
            return .transfer(variant: variant, from: from, to: to, quantity: quantity, note: note, key: key)
        case WALCode.commandReturnStock:
            let variant = try readString()
            let warehouse = try readString()
            let quantity = try readQuantity()
            let disposition = try readCode("ReturnDisposition", ReturnDisposition.init(walCode:))
            let reference = try readOptionalString()
            let key = try readOptionalString()
            return .returnStock(
                variant: variant, warehouse: warehouse, quantity: quantity, disposition: disposition,
                reference: reference, key: key)
        case WALCode.commandSetWarehouse:
            let code = try readString()
            let name = try readOptionalString()
            let address = try readOptionalString()
            let priority = try readPresence() ? try readSignedVarint() : nil
            let active = try readPresence() ? try readBool() : nil
            let change = WarehouseChange(code: code, name: name, address: address, priority: priority, active: active)
            return .setWarehouse(change, key: try readOptionalString())
        case WALCode.commandSetPolicy:
            let variant = try readString()
            let backorder = try readPresence() ? try readBool() : nil
            let unlimited = try readPresence() ? try readBool() : nil
            let lowStock = try readPresence() ? try readQuantity() : nil
            let change = PolicyChange(variant: variant, backorder: backorder, unlimited: unlimited, lowStock: lowStock)
            return .setPolicy(change, key: try readOptionalString())
        case WALCode.commandImportStock:
            let variant = try readString()
            let warehouse = try readString()
            let onHand = try readQuantity()
            return .importStock(variant: variant, warehouse: warehouse, onHand: onHand)
        case let code:
            throw failure(.unknownCode(table: "Command", code: code), at: start)
        }
    }

    mutating func readKeyUse() throws(WALDecodingError) -> KeyUse {
        let start = position
        let time = try readTimestamp()
        let command = try readCommand()
        let reply = try readReply()
        guard command.key != nil else { throw failure(.inconsistent("a key use whose command carries no key"), at: start) }
        return KeyUse(time: time, command: command, reply: reply)
    }

    mutating func readCellRecord() throws(WALDecodingError) -> CellRecord {
        let variant = try readString()
        let warehouse = try readString()
        let onHand = try readQuantity()
        let reserved = try readQuantity()
        return CellRecord(variant: variant, warehouse: warehouse, onHand: onHand, reserved: reserved)
    }

    mutating func readReply() throws(WALDecodingError) -> Reply {
        let start = position
        switch try readUInt8() {
        case WALCode.replyReservation:
            let reservation = try readReservation()
            return .reservation(ReservationRecord(reservation, replayed: try readBool()))
        case WALCode.replyCell:
            let cell = try readCellRecord()
            let seq = try readVarint()
            let shortfall = try readQuantity()
            let variance = try readPresence() ? try readQuantity() : nil
            let replayed = try readBool()
            return .cell(CellReceipt(cell: cell, seq: seq, shortfall: shortfall, variance: variance, replayed: replayed))
        case WALCode.replyTransfer:
            let from = try readCellRecord()
            let to = try readCellRecord()
            let seq = try readVarint()
            let replayed = try readBool()
            return .transfer(TransferReceipt(from: from, to: to, seq: seq, replayed: replayed))
        case WALCode.replyWarehouse:
            return .warehouse(try readWarehouse())
        case WALCode.replyPolicy:
            return .policy(try readPolicy())
        case let code:
            throw failure(.unknownCode(table: "Reply", code: code), at: start)
        }
    }
}
