// The snapshot file of wal/FORMAT.md §4: the whole state after one LSN, so that start-up replays
// only the log after it. It keeps true: the encoder sorts every list as the format states, so two
// snapshots of one state are byte-identical; the decoder accepts a file only when every rule of
// "a snapshot is valid if and only if" holds (header, seven sections (versions 1 and 2) or eight
// (version 3) in kind order each with its CRC
// and exact length, trailer with the file's size and CRC); and a file reaches its final name only
// complete and synced (temporary name, sync, rename, directory sync).

import CStockpileLinux
import StockpileCore

/// A cell as a snapshot keeps it.
public struct SnapshotCell: Hashable, Sendable {
    public var variant: String
    public var warehouse: String
    public var state: CellState
    /// Available may be below zero for a reason invariant 3 allows (a physical loss or a backorder).
    public var belowZeroAllowed: Bool

    public init(variant: String, warehouse: String, state: CellState, belowZeroAllowed: Bool) {
        self.variant = variant
        self.warehouse = warehouse
        self.state = state
        self.belowZeroAllowed = belowZeroAllowed
    }
}

/// A KEY an engine with a log keeps as the LSN of the record that used it (FORMAT.md §4.2, kind 8).
public struct LoggedKey: Hashable, Sendable {
    public var key: String
    /// When it was used: its retention window runs from here.
    public var usedAt: Timestamp
    /// The record that used it: a `commit` carrying the keyed command, or a `keyUse`.
    public var lsn: UInt64

    /// The times a logged key's use may have: within 2^55 ms of 1970 (about a million years).
    public static let usedAtRange = -(Int64(1) << 55)..<(Int64(1) << 55)

    public init(key: String, usedAt: Timestamp, lsn: UInt64) {
        precondition(lsn >= 1, "LSNs start at 1")
        self.key = key
        self.usedAt = usedAt
        self.lsn = lsn
    }
}

/// Everything a snapshot holds: the state after record `lsn`.
public struct SnapshotContents: Equatable, Sendable {
    public var lsn: UInt64
    public var createdAt: Timestamp
    /// The sequence number the next ledger entry gets.
    public var nextSeq: UInt64
    public var warehouses: [Warehouse]
    /// Only policies that differ from the defaults.
    public var policies: [VariantPolicy]
    public var cells: [SnapshotCell]
    /// Open reservations and closed ones still remembered.
    public var reservations: [Reservation]
    /// Every idempotency key still remembered whose command and reply the engine keeps.
    public var keys: [KeyUse]
    /// Every idempotency key still remembered that the engine keeps as the LSN of its record
    /// (version 3; none in older snapshots). No key is in both lists.
    public var loggedKeys: [LoggedKey]
    public var counters: StockCounters
    /// The most recent ledger entries, oldest first, consecutive and ending at `nextSeq - 1`.
    public var recentEntries: [LedgerEntry]

    public init(
        lsn: UInt64, createdAt: Timestamp, nextSeq: UInt64, warehouses: [Warehouse], policies: [VariantPolicy], cells: [SnapshotCell],
        reservations: [Reservation], keys: [KeyUse], loggedKeys: [LoggedKey] = [], counters: StockCounters, recentEntries: [LedgerEntry]
    ) {
        self.lsn = lsn
        self.createdAt = createdAt
        self.nextSeq = nextSeq
        self.warehouses = warehouses
        self.policies = policies
        self.cells = cells
        self.reservations = reservations
        self.keys = keys
        self.loggedKeys = loggedKeys
        self.counters = counters
        self.recentEntries = recentEntries
    }
}

/// Why a snapshot file is not valid (FORMAT.md §4.3). Start-up warns and tries an older one (row 9).
public struct SnapshotDamage: Error, Hashable, Sendable, CustomStringConvertible {
    public var fileName: String
    public var offset: Int
    public var reason: String

    public var description: String { "snapshot \(fileName) is not valid at offset \(offset): \(reason)" }
}

/// The two long lists of a snapshot, cells and reservations, handed to the encoder one value at a
/// time in the order FORMAT.md §4.2 states (cells by variant then warehouse, reservations by id), so
/// that neither is gathered into a list of its own first: at millions of cells the lists, their sort
/// and the file's bytes took as much memory again as the state itself.
public protocol SnapshotLists {
    var cellCount: Int { get }
    var reservationCount: Int { get }
    /// Calls `body` with each of the `cellCount` cells, by variant then warehouse. (Typed by the one
    /// error the encoder's output throws, not generic over it: a generic error left the merge of a
    /// capture's shards unspecialized, at four times the cost.)
    func forEachCell(_ body: (SnapshotCell) throws(WALIOError) -> Void) throws(WALIOError)
    /// Calls `body` with each of the `reservationCount` reservations, by id.
    func forEachReservation(_ body: (SnapshotReservation) throws(WALIOError) -> Void) throws(WALIOError)
}

/// A reservation as a snapshot's list hands it to the encoder.
public enum SnapshotReservation {
    /// Any reservation, whole.
    case whole(Reservation)
    /// A one-line reservation by its fields, for a list that keeps it so: the encoder writes the bytes
    /// of the reservation they make, without that reservation (and its arrays of lines) being made and
    /// freed, once for each of millions.
    case oneLine(SnapshotOneLineReservation)

    /// The reservation, built (for a list gathered into `SnapshotContents`).
    public var reservation: Reservation {
        switch self {
        case .whole(let r): return r
        case .oneLine(let r): return r.reservation
        }
    }
}

/// A one-line reservation whose request named its line (variant, warehouse, quantity) and its
/// customer, nothing of it backordered: the fields of `Reservation` it needs. The two names are
/// bytes (a name's UTF-8), valid only during the call they are handed to: a list reads them where it
/// keeps them.
public struct SnapshotOneLineReservation {
    public var id: UnsafeRawBufferPointer
    public var variant: UnsafeRawBufferPointer
    public var warehouse: String
    public var quantity: Quantity
    public var fulfilled: Quantity
    public var released: Quantity
    public var tracked: Bool
    public var status: ReservationStatus
    public var endedByExpiry: Bool
    public var expiresAt: Timestamp?
    public var customer: String?
    public var createdAt: Timestamp
    public var closedAt: Timestamp?
    public var requestTTL: Duration?
    public var strategy: PlacementStrategy

    @inlinable public init(
        id: UnsafeRawBufferPointer, variant: UnsafeRawBufferPointer, warehouse: String, quantity: Quantity, fulfilled: Quantity, released: Quantity,
        tracked: Bool, status: ReservationStatus, endedByExpiry: Bool, expiresAt: Timestamp?, customer: String?, createdAt: Timestamp,
        closedAt: Timestamp?, requestTTL: Duration?, strategy: PlacementStrategy
    ) {
        self.id = id
        self.variant = variant
        self.warehouse = warehouse
        self.quantity = quantity
        self.fulfilled = fulfilled
        self.released = released
        self.tracked = tracked
        self.status = status
        self.endedByExpiry = endedByExpiry
        self.expiresAt = expiresAt
        self.customer = customer
        self.createdAt = createdAt
        self.closedAt = closedAt
        self.requestTTL = requestTTL
        self.strategy = strategy
    }

    /// The reservation these fields make.
    public var reservation: Reservation {
        let line = ReservationLine(
            variant: String(decoding: variant, as: UTF8.self), warehouse: warehouse, quantity: quantity, fulfilled: fulfilled, released: released,
            tracked: tracked)
        return Reservation(
            id: String(decoding: id, as: UTF8.self), lines: [line], status: status, expiresAt: expiresAt, customer: customer, createdAt: createdAt,
            closedAt: closedAt, endedByExpiry: endedByExpiry, requestTTL: requestTTL, requestCustomer: customer, strategy: strategy)
    }
}

/// Where an encoder's bytes go, each piece at its offset in the file: a section's payload is handed
/// over as it is encoded, and its header, which states the payload's length and CRC, afterwards, at
/// the room left for it.
public protocol SnapshotOutput {
    mutating func write(_ bytes: [UInt8], at offset: Int) throws(WALIOError)
}

/// A snapshot's bytes in memory.
struct SnapshotMemoryOutput: SnapshotOutput {
    var bytes: [UInt8] = []

    /// Writes `piece` at `offset`, the bytes between the end and `offset` zero until written.
    mutating func write(_ piece: [UInt8], at offset: Int) {
        if offset + piece.count > bytes.count { bytes += repeatElement(0, count: offset + piece.count - bytes.count) }
        bytes.replaceSubrange(offset..<offset + piece.count, with: piece)
    }
}

public enum SnapshotCodec {
    public static let magic: [UInt8] = [0x89, 0x53, 0x50, 0x53, 0x4E, 0x41, 0x50, 0x0A]  // \x89SPSNAP\n
    public static let trailerMagic: [UInt8] = [0x53, 0x50, 0x53, 0x4E, 0x45, 0x4E, 0x44, 0x0A]  // SPSNEND\n
    /// The version written; version 1 snapshots are version 2 snapshots too, and a version 2 snapshot
    /// is a version 3 snapshot without logged keys (FORMAT.md, "Versions").
    public static let version: UInt16 = 3
    public static let readableVersions: ClosedRange<UInt16> = 1...3
    public static let headerByteCount = 40
    public static let sectionHeaderByteCount = 16
    public static let trailerByteCount = 24
    public static var sectionCount: Int { sectionCount(version: version) }

    /// The sections of a snapshot of `version`: kinds 1–7, and 8 from version 3 on.
    static func sectionCount(version: UInt16) -> Int { version >= 3 ? 8 : 7 }

    enum Section: UInt8, CaseIterable {
        case sequence = 1, catalog, cells, reservations, keys, counters, recentEntries, loggedKeys
    }

    // MARK: File names

    /// `snapshot-<LSN as 16 lower-case hex digits>.snap`.
    public static func fileName(lsn: UInt64) -> String {
        let hex = String(lsn, radix: 16)
        return "snapshot-" + String(repeating: "0", count: 16 - hex.count) + hex + ".snap"
    }

    /// The LSN a snapshot's file name states, or nil for any other name.
    public static func lsn(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".snap"), name.utf8.count == 9 + 16 + 5 else { return nil }
        let hex = name.dropFirst(9).prefix(16)
        guard hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return UInt64(hex, radix: 16)
    }

    // MARK: Encoding

    /// `contents` with every list in the order FORMAT.md §4.2 states: what decoding gives back. The
    /// short lists are sorted as values (`sortingCatalog`), the long ones put in `CanonicalOrder`.
    public static func canonical(_ contents: SnapshotContents) -> SnapshotContents {
        var c = sortingCatalog(contents)
        let order = CanonicalOrder(of: c)
        c.cells = order.cells.map { contents.cells[Int($0)] }
        c.reservations = order.reservations.map { contents.reservations[Int($0)] }
        c.keys = order.keys.map { contents.keys[Int($0)] }
        c.loggedKeys = order.loggedKeys.map { contents.loggedKeys[Int($0)] }
        return c
    }

    /// `contents` with its warehouses sorted by code and its policies by variant.
    private static func sortingCatalog(_ contents: SnapshotContents) -> SnapshotContents {
        var c = contents
        c.warehouses.sort { $0.code < $1.code }
        c.policies.sort { $0.variant < $1.variant }
        return c
    }

    /// The positions of a snapshot's long lists in the order FORMAT.md §4.2 states: cells by variant
    /// then warehouse, reservations by id, keys by key. The encoder writes through them; sorting the
    /// positions moves 4-byte integers where sorting the lists moved their values (a reservation is
    /// 137 bytes, and each copy of one retains its names and lines). Swift's sort is stable, so values
    /// that tie keep the order they were gathered in.
    struct CanonicalOrder {
        var cells: [Int32]
        var reservations: [Int32]
        var keys: [Int32]
        var loggedKeys: [Int32]

        init(of c: SnapshotContents) {
            cells = Self.cells(of: c)
            reservations = Self.reservations(of: c)
            keys = Self.keys(of: c)
            loggedKeys = Self.loggedKeys(of: c)
        }

        static func cells(of c: SnapshotContents) -> [Int32] { sortedPositions(c.cells.count) { CellName(c.cells[$0].variant, c.cells[$0].warehouse) } }
        static func reservations(of c: SnapshotContents) -> [Int32] { sortedPositions(c.reservations.count) { c.reservations[$0].id } }
        static func keys(of c: SnapshotContents) -> [Int32] { sortedPositions(c.keys.count) { c.keys[$0].key } }
        static func loggedKeys(of c: SnapshotContents) -> [Int32] { sortedPositions(c.loggedKeys.count) { c.loggedKeys[$0].key } }
    }

    /// The positions `0..<count` sorted by `name`: the order of a list the format sorts (by
    /// `CellName` for cells, by the id or key for the others), which an engine that hands the encoder
    /// its lists (`SnapshotLists`) sorts by too. What is compared is sorted beside each position, so
    /// that the sort's merges read and write in order: sorting positions alone compared names at
    /// random places, a cache miss each in lists of millions.
    @inlinable public static func sortedPositions<Name: Comparable>(_ count: Int, name: (Int) -> Name) -> [Int32] {
        precondition(count <= Int(Int32.max), "a snapshot list holds fewer than 2^31 values")
        var named = (0..<count).map { (name: name($0), position: Int32($0)) }
        named.sort { $0.name < $1.name }
        return named.map(\.position)
    }

    /// A cell's names as the format orders cells: variant first, then warehouse.
    public struct CellName: Comparable {
        public let variant: String
        public let warehouse: String
        @inlinable public init(_ variant: String, _ warehouse: String) {
            self.variant = variant
            self.warehouse = warehouse
        }
        @inlinable public static func < (a: CellName, b: CellName) -> Bool { (a.variant, a.warehouse) < (b.variant, b.warehouse) }
    }

    /// The long lists of a `SnapshotContents`, read through their canonical order.
    struct OrderedLists: SnapshotLists {
        let contents: SnapshotContents
        let cells: [Int32]
        let reservations: [Int32]

        init(_ contents: SnapshotContents) {
            self.contents = contents
            cells = CanonicalOrder.cells(of: contents)
            reservations = CanonicalOrder.reservations(of: contents)
        }

        var cellCount: Int { contents.cells.count }
        var reservationCount: Int { contents.reservations.count }

        func forEachCell(_ body: (SnapshotCell) throws(WALIOError) -> Void) throws(WALIOError) {
            for i in cells { try body(contents.cells[Int(i)]) }
        }

        func forEachReservation(_ body: (SnapshotReservation) throws(WALIOError) -> Void) throws(WALIOError) {
            // In sorted order, so at random places: a reservation 16 ahead is asked for, and its
            // lines 8 ahead, so that their cache misses overlap instead of each waiting in turn.
            let order = reservations
            try contents.reservations.withUnsafeBufferPointer { rs throws(WALIOError) in
                for k in order.indices {
                    if k + 16 < order.count { stockpile_prefetch_read(rs.baseAddress! + Int(order[k + 16])) }
                    if k + 8 < order.count { rs[Int(order[k + 8])].lines.withUnsafeBufferPointer { stockpile_prefetch_read($0.baseAddress) } }
                    try body(.whole(rs[Int(order[k])]))
                }
            }
        }
    }

    /// The file's bytes, of the canonical order, so equal states encode equally.
    public static func encode(_ contents: SnapshotContents) -> [UInt8] {
        var output = SnapshotMemoryOutput()
        output.bytes.reserveCapacity(64 + contents.cells.count * 32 + contents.reservations.count * 96 + contents.recentEntries.count * 64)
        do {
            _ = try encode(contents, lists: OrderedLists(contents), to: &output)
        } catch {
            preconditionFailure("memory takes every write")
        }
        return output.bytes
    }

    /// Encodes the snapshot of `contents` to `output`, about `chunkByteCount` bytes at a time, and
    /// returns the file's byte count: its cells and reservations from `lists` (the lists of `contents`
    /// are not read), everything else from `contents`, sorted here. The bytes are the same as
    /// `encode(_:)` gives for the same state; what is held at once is a chunk, not the file.
    public static func encode<Output: SnapshotOutput>(
        _ contents: SnapshotContents, lists: some SnapshotLists, to output: inout Output, chunkByteCount: Int = 1 << 20
    ) throws(WALIOError) -> Int {
        precondition(chunkByteCount > 0)
        let c = sortingCatalog(contents)
        let keys = CanonicalOrder.keys(of: c)
        let loggedKeys = CanonicalOrder.loggedKeys(of: c)

        var w = ByteWriter(capacity: chunkByteCount + 4096)
        w.writeBytes(magic)
        w.writeUInt16(version)
        w.writeUInt16(UInt16(headerByteCount))
        w.writeUInt32(UInt32(sectionCount))
        w.writeUInt64(c.lsn)
        w.writeInt64(c.createdAt.milliseconds)
        w.writeUInt32(0)
        w.writeUInt32(w.bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<36])) })
        try output.write(w.bytes, at: 0)
        // The CRC of the file so far: each section's header is folded in once its payload is written.
        var fileCRC = CRC32C.checksum(w.bytes)
        var offset = w.count

        for section in Section.allCases {
            w.reset()
            let headerOffset = offset
            offset += sectionHeaderByteCount
            var payloadCRC: UInt32 = 0
            var payloadCount = 0
            // Hands the payload's bytes in `w` to the output, after those handed before.
            func flush(_ w: inout ByteWriter) throws(WALIOError) {
                guard w.count > 0 else { return }
                try output.write(w.bytes, at: offset)
                payloadCRC = CRC32C.update(payloadCRC, w.bytes)
                payloadCount += w.count
                offset += w.count
                w.reset()
            }
            try writePayload(section, of: c, lists: lists, keys: keys, loggedKeys: loggedKeys, into: &w) { (w: inout ByteWriter) throws(WALIOError) in
                if w.count >= chunkByteCount { try flush(&w) }
            }
            try flush(&w)
            var header = ByteWriter(capacity: sectionHeaderByteCount)
            header.writeUInt8(section.rawValue)
            header.writeZeros(3)
            header.writeUInt32(payloadCRC)
            header.writeUInt32(UInt32(truncatingIfNeeded: payloadCount))
            header.writeUInt32(UInt32(truncatingIfNeeded: UInt64(payloadCount) >> 32))
            try output.write(header.bytes, at: headerOffset)
            fileCRC = CRC32C.combine(CRC32C.update(fileCRC, header.bytes), payloadCRC, byteCountOfB: payloadCount)
        }

        w.reset()
        w.writeBytes(trailerMagic)
        w.writeUInt64(UInt64(offset + trailerByteCount))
        fileCRC = CRC32C.update(fileCRC, w.bytes)
        w.writeUInt32(fileCRC)
        w.writeUInt32(0)
        try output.write(w.bytes, at: offset)
        return offset + trailerByteCount
    }

    /// Writes a section's payload into `w`, calling `wrote` after each value of a list (where the
    /// encoder may hand `w`'s bytes on).
    private static func writePayload(
        _ section: Section, of c: SnapshotContents, lists: some SnapshotLists, keys: [Int32], loggedKeys: [Int32], into w: inout ByteWriter,
        wrote: (inout ByteWriter) throws(WALIOError) -> Void
    ) throws(WALIOError) {
        switch section {
        case .sequence:
            w.writeVarint(c.nextSeq)
            w.writeVarint(c.lsn)
        case .catalog:
            w.writeVarint(UInt64(c.warehouses.count))
            for x in c.warehouses { w.write(x) }
            w.writeVarint(UInt64(c.policies.count))
            for x in c.policies { w.write(x) }
        case .cells:
            w.writeVarint(UInt64(lists.cellCount))
            var written = 0
            try lists.forEachCell { (x: SnapshotCell) throws(WALIOError) in
                w.writeString(x.variant)
                w.writeString(x.warehouse)
                w.write(x.state.onHand)
                w.write(x.state.reserved)
                w.writeBool(x.belowZeroAllowed)
                written += 1
                try wrote(&w)
            }
            precondition(written == lists.cellCount, "the cells counted are the cells written")
        case .reservations:
            w.writeVarint(UInt64(lists.reservationCount))
            var written = 0
            try lists.forEachReservation { (x: SnapshotReservation) throws(WALIOError) in
                switch x {
                case .whole(let r): w.write(r)
                case .oneLine(let r): w.write(r)
                }
                written += 1
                try wrote(&w)
            }
            precondition(written == lists.reservationCount, "the reservations counted are the reservations written")
        case .keys:
            w.writeVarint(UInt64(c.keys.count))
            try c.keys.withUnsafeBufferPointer { ks throws(WALIOError) in
                for i in keys {
                    w.write(ks[Int(i)])
                    try wrote(&w)
                }
            }
        case .counters:
            let k = c.counters
            w.write(k.unitsReserved)
            w.write(k.unitsFulfilled)
            w.write(k.unitsReleased)
            w.write(k.unitsExpired)
            w.writeVarint(UInt64(k.stockouts))
            w.write(k.shrinkage)
            w.writeVarint(UInt64(k.cycleCounts))
            w.writeVarint(UInt64(k.cycleCountsWithoutVariance))
            let byReason = k.adjustedByReason.sorted { $0.key.walCode < $1.key.walCode }
            w.writeVarint(UInt64(byReason.count))
            for (code, q) in byReason {
                w.writeUInt8(code.walCode)
                w.write(q)
            }
        case .recentEntries:
            w.writeVarint(UInt64(c.recentEntries.count))
            for x in c.recentEntries {
                w.write(x)
                try wrote(&w)
            }
        case .loggedKeys:
            w.writeVarint(UInt64(c.loggedKeys.count))
            for i in loggedKeys {
                let k = c.loggedKeys[Int(i)]
                w.writeString(k.key)
                w.writeSignedVarint(k.usedAt.milliseconds)
                w.writeVarint(k.lsn)
                try wrote(&w)
            }
        }
    }

    // MARK: Decoding

    /// Decodes and checks a whole snapshot file.
    /// - Parameter expectedLSN: the LSN its file name states; the header must agree.
    /// - Throws: `SnapshotDamage` naming the first rule that fails.
    public static func decode(_ bytes: [UInt8], fileName: String, expectedLSN: UInt64?) throws(SnapshotDamage) -> SnapshotContents {
        let gathered = GatheredLists()
        var c = try decode(
            bytes, fileName: fileName, expectedLSN: expectedLSN, checkingListsFirst: false, cells: gathered.takeCells, reservations: gathered.takeReservations)
        gathered.fill(&c)
        return c
    }

    /// Gathers the cells and reservations a decoder hands over into the lists `SnapshotContents` holds.
    final class GatheredLists {
        private var cells: [SnapshotCell] = []
        private var reservations: [Reservation] = []

        func takeCells(_ count: Int) -> (SnapshotCell) -> Void {
            cells.reserveCapacity(count)
            return { self.cells.append($0) }
        }

        func takeReservations(_ count: Int) -> (Reservation) -> Void {
            reservations.reserveCapacity(count)
            return { self.reservations.append($0) }
        }

        /// Puts the lists into `contents`.
        func fill(_ contents: inout SnapshotContents) {
            contents.cells = cells
            contents.reservations = reservations
        }
    }

    /// `decode(_:fileName:expectedLSN:)` with the cells and the reservations handed, one at a time,
    /// to the functions `cells` and `reservations` return (given their count) instead of gathered
    /// into the contents, whose `cells` and `reservations` stay empty: a start-up restores them into
    /// its shards as they are read, without lists of them as large as the shards' own tables. Nothing
    /// is handed over unless the whole file is valid: every other section is decoded first, and each
    /// of the two is read through once without being handed over before it is read again for its
    /// function (`checkingListsFirst`; a caller that only gathers them may skip that). The cells are
    /// handed over before the reservations.
    public static func decode(
        _ bytes: [UInt8], fileName: String, expectedLSN: UInt64?, checkingListsFirst: Bool = true,
        cells: (_ count: Int) -> (SnapshotCell) -> Void, reservations: (_ count: Int) -> (Reservation) -> Void
    ) throws(SnapshotDamage) -> SnapshotContents {
        func damage(_ offset: Int, _ reason: String) -> SnapshotDamage { SnapshotDamage(fileName: fileName, offset: offset, reason: reason) }
        guard bytes.count >= headerByteCount + trailerByteCount else { throw damage(0, "the file is too short (\(bytes.count) bytes)") }
        // Trailer first: it says whether the file is whole.
        let trailer = bytes.count - trailerByteCount
        guard Array(bytes[trailer..<trailer + 8]) == trailerMagic else { throw damage(trailer, "no trailer at the end of the file") }
        let header: (lsn: UInt64, createdAt: Int64, version: UInt16)
        do {
            header = try ByteReader.withReader(over: bytes) { r throws(WALDecodingError) in
                _ = try r.readBytes(trailer + 8)
                let stated = try r.readUInt64()
                guard stated == UInt64(bytes.count) else { throw r.failure(.inconsistent("the trailer states \(stated) bytes, the file has \(bytes.count)")) }
                let fileCRC = try r.readUInt32()
                guard fileCRC == bytes.withUnsafeBytes({ CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<bytes.count - 8])) }) else {
                    throw r.failure(.inconsistent("the file checksum does not match"))
                }
                guard try r.readUInt32() == 0 else { throw r.failure(.inconsistent("the trailer's reserved bytes are not zero")) }
                return try readHeader(bytes)
            }
        } catch {
            throw damage(error.offset, "\(error.reason)")
        }
        if let expectedLSN, header.lsn != expectedLSN {
            throw damage(16, "the header's LSN \(header.lsn) is not the file name's \(expectedLSN)")
        }
        do {
            // Read where the bytes lie: a copy of the sections was as large as the file.
            return try ByteReader.withReader(over: bytes, range: headerByteCount..<trailer) { r throws(WALDecodingError) in
                var c = SnapshotContents(
                    lsn: header.lsn, createdAt: Timestamp(milliseconds: header.createdAt), nextSeq: 1, warehouses: [], policies: [], cells: [],
                    reservations: [], keys: [], counters: StockCounters(), recentEntries: [])
                // The cells and reservations sections are read last, once all else is known to be valid.
                var cellsPayload: ByteReader?
                var reservationsPayload: ByteReader?
                for section in Section.allCases.prefix(sectionCount(version: header.version)) {
                    let kind = try r.readUInt8()
                    guard kind == section.rawValue else { throw r.failure(.inconsistent("section of kind \(kind) where kind \(section.rawValue) was due")) }
                    for _ in 0..<3 where try r.readUInt8() != 0 { throw r.failure(.inconsistent("a section header's reserved bytes are not zero")) }
                    let crc = try r.readUInt32()
                    let count = try r.readUInt64()
                    guard count <= UInt64(r.remaining) else { throw r.failure(.countTooLarge(count)) }
                    let payload = try r.readBytes(Int(count))
                    guard CRC32C.checksum(payload) == crc else {
                        throw r.failure(.inconsistent("the checksum of section \(section.rawValue) does not match"), at: r.offset - Int(count) - headerByteCount)
                    }
                    let p = ByteReader(payload, baseOffset: r.offset - Int(count))
                    if section == .cells {
                        cellsPayload = p
                        continue
                    }
                    if section == .reservations {
                        reservationsPayload = p
                        continue
                    }
                    var reader = p
                    try readPayload(section, from: &reader, into: &c)
                    try reader.expectEnd()
                }
                try r.expectEnd()
                if !c.loggedKeys.isEmpty {
                    let kept = Set(c.keys.lazy.map(\.key))
                    if let both = c.loggedKeys.first(where: { kept.contains($0.key) }) {
                        throw r.failure(.inconsistent("KEY \(both.key) is both kept and logged"))
                    }
                }
                guard let cellsPayload, let reservationsPayload else { preconditionFailure("every version has cells and reservations sections") }
                if checkingListsFirst {
                    var check = cellsPayload
                    try readCells(from: &check) { _ in { _ in } }
                    check = reservationsPayload
                    try readReservations(from: &check) { _ in { _ in } }
                }
                var reader = cellsPayload
                try readCells(from: &reader, into: cells)
                reader = reservationsPayload
                try readReservations(from: &reader, into: reservations)
                return c
            }
        } catch {
            throw damage(error.offset, "\(error.reason)")
        }
    }

    private static func readHeader(_ bytes: [UInt8]) throws(WALDecodingError) -> (lsn: UInt64, createdAt: Int64, version: UInt16) {
        try ByteReader.withReader(over: Array(bytes[0..<headerByteCount])) { r throws(WALDecodingError) in
            guard Array(try r.readBytes(8)) == magic else { throw r.failure(.inconsistent("not a snapshot file (magic)"), at: 0) }
            let v = try r.readUInt16()
            guard readableVersions.contains(v) else {
                throw r.failure(.inconsistent("format version \(v) is not one this build reads (\(readableVersions.lowerBound) to \(readableVersions.upperBound))"))
            }
            let h = try r.readUInt16()
            guard h == UInt16(headerByteCount) else { throw r.failure(.inconsistent("header byte count \(h)")) }
            let sections = try r.readUInt32()
            guard sections == UInt32(sectionCount(version: v)) else { throw r.failure(.inconsistent("section count \(sections)")) }
            let lsn = try r.readUInt64()
            let createdAt = try r.readInt64()
            guard try r.readUInt32() == 0 else { throw r.failure(.inconsistent("the header's reserved bytes are not zero")) }
            let crc = try r.readUInt32()
            guard crc == CRC32C.checksum(Array(bytes[0..<36])) else { throw r.failure(.inconsistent("the header checksum does not match"), at: 36) }
            return (lsn, createdAt, v)
        }
    }

    /// Reads the cells section's payload to its end, handing each cell to the function `cells` returns.
    private static func readCells(from r: inout ByteReader, into cells: (_ count: Int) -> (SnapshotCell) -> Void) throws(WALDecodingError) {
        let n = try r.readCount()
        let take = cells(n)
        for _ in 0..<n {
            let variant = try r.readString()
            let warehouse = try r.readString()
            let onHand = try r.readQuantity()
            let reserved = try r.readQuantity()
            let allowed = try r.readBool()
            take(SnapshotCell(variant: variant, warehouse: warehouse, state: CellState(onHand: onHand, reserved: reserved), belowZeroAllowed: allowed))
        }
        try r.expectEnd()
    }

    /// Reads the reservations section's payload to its end, handing each reservation to the function
    /// `reservations` returns.
    private static func readReservations(from r: inout ByteReader, into reservations: (_ count: Int) -> (Reservation) -> Void) throws(WALDecodingError) {
        let n = try r.readCount()
        let take = reservations(n)
        for _ in 0..<n { take(try r.readReservation()) }
        try r.expectEnd()
    }

    private static func readPayload(_ section: Section, from r: inout ByteReader, into c: inout SnapshotContents) throws(WALDecodingError) {
        switch section {
        case .sequence:
            c.nextSeq = try r.readVarint()
            let lsn = try r.readVarint()
            guard lsn == c.lsn else { throw r.failure(.inconsistent("the sequence section's LSN \(lsn) is not the header's \(c.lsn)")) }
        case .catalog:
            for _ in 0..<(try r.readCount()) { c.warehouses.append(try r.readWarehouse()) }
            for _ in 0..<(try r.readCount()) { c.policies.append(try r.readPolicy()) }
        case .cells:
            preconditionFailure("the cells section is read by readCells")
        case .reservations:
            preconditionFailure("the reservations section is read by readReservations")
        case .keys:
            let n = try r.readCount()
            c.keys.reserveCapacity(n)
            for _ in 0..<n { c.keys.append(try r.readKeyUse()) }
        case .counters:
            var k = StockCounters()
            k.unitsReserved = try r.readQuantity()
            k.unitsFulfilled = try r.readQuantity()
            k.unitsReleased = try r.readQuantity()
            k.unitsExpired = try r.readQuantity()
            k.stockouts = Int(clamping: try r.readVarint())
            k.shrinkage = try r.readQuantity()
            k.cycleCounts = Int(clamping: try r.readVarint())
            k.cycleCountsWithoutVariance = Int(clamping: try r.readVarint())
            for _ in 0..<(try r.readCount()) {
                let code = try r.readCode("ReasonCode", ReasonCode.init(walCode:))
                k.adjustedByReason[code] = try r.readQuantity()
            }
            c.counters = k
        case .recentEntries:
            let n = try r.readCount()
            guard UInt64(n) < c.nextSeq else { throw r.failure(.inconsistent("\(n) recent entries before seq \(c.nextSeq)")) }
            c.recentEntries.reserveCapacity(n)
            for _ in 0..<n { c.recentEntries.append(try r.readLedgerEntry()) }
            for (i, e) in c.recentEntries.enumerated() where e.seq != c.nextSeq - UInt64(n) + UInt64(i) {
                throw r.failure(.inconsistent("recent entry \(i) has seq \(e.seq), not consecutive up to \(c.nextSeq - 1)"))
            }
        case .loggedKeys:
            let n = try r.readCount()
            c.loggedKeys.reserveCapacity(n)
            for _ in 0..<n {
                let key = try r.readString()
                let usedAt = Timestamp(milliseconds: try r.readSignedVarint())
                let lsn = try r.readVarint()
                guard lsn >= 1 else { throw r.failure(.inconsistent("KEY \(key) is logged at LSN 0")) }
                guard LoggedKey.usedAtRange.contains(usedAt.milliseconds) else {
                    throw r.failure(.inconsistent("KEY \(key) was used at \(usedAt.milliseconds) ms, beyond 2^55 ms of 1970"))
                }
                c.loggedKeys.append(LoggedKey(key: key, usedAt: usedAt, lsn: lsn))
            }
        }
    }
}

#if DEBUG
extension SnapshotCodec {
    /// For tests: `bytes`, a snapshot file, with the last byte of section `kind`'s payload made 0xFF,
    /// which no value may end in (a bool, a presence byte, the end of a varint or of a UTF-8 string),
    /// and the section's and the file's checksums made right again: a file only decoding finds
    /// invalid.
    static func damagingLastValue(ofSection kind: Section.RawValue, in bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        // Each section header is kind, 3 zero bytes, CRC, length.
        func length(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(bytes[at + 8 + $1]) << (8 * $1) } }
        var at = headerByteCount
        while bytes[at] != kind { at += sectionHeaderByteCount + length(at) }
        let payload = at + sectionHeaderByteCount
        let end = payload + length(at)
        bytes[end - 1] = 0xFF
        func put(_ value: UInt32, at offset: Int) { for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) } }
        put(CRC32C.checksum(Array(bytes[payload..<end])), at: at + 4)
        put(CRC32C.checksum(Array(bytes[0..<bytes.count - 8])), at: bytes.count - 8)
        return bytes
    }
}
#endif
