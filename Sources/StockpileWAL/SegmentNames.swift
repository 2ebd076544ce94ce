// The names a segment has numbered, and the compact `reservation` record that refers to them
// (wal/FORMAT.md §3.8, version 3). A new one-line reservation is most of what a flash sale logs; its
// generic commit spells the line out three times (the entry, the reservation's line, the fingerprint)
// with the names in full, about 120 bytes of payload. This record writes each fact once and a cell or
// an actor by number after the segment has named it: about 20 bytes plus the id.
//
// It keeps true: a commit is written this way only when decoding the record gives back exactly that
// commit (the writer builds the decoded value and compares), so the record is never a lossy summary;
// and writer and reader number names the same way, in record order, from 0 in every segment.

import CStockpileLinux
import Glibc
@_spi(Tables) import StockpileCore

/// Where the engine keeps a cell, for a writer that numbers it (`SegmentNames`): its shard, its position
/// in the shard's cell table, and that table's generation. A table keeps a cell at one position until
/// it is emptied, and an emptied table takes a generation no table had before, so the three name one
/// cell for good. With them, the cell's `CellKey.tableHash`: the writer checks that the number it
/// remembered for the place is of a cell with that hash, so that a place that broke the rule (a
/// table's old copy put back in a shard, say) costs a lookup by name instead of the wrong cell.
public struct CellPlace: Sendable, Equatable {
    public var shard: Int
    public var position: Int
    public var generation: UInt64
    public var tableHash: UInt64

    public init(shard: Int, position: Int, generation: UInt64, tableHash: UInt64) {
        self.shard = shard
        self.position = position
        self.generation = generation
        self.tableHash = tableHash
    }
}

/// The cells and actors one segment has named, in the order it named them. The writer keeps one for the
/// segment it appends to; a reader builds one as it reads a segment from its first record.
///
/// The writer is also told where the engine keeps a record's cell (`CellPlace`), when the engine knows:
/// the number the segment gave the cell is then found in a flat array by the cell's place, where the
/// index of numbers by hash (`cellIndex`) hashed both names and compared them, a cache miss or two
/// each among many cells, once per record. The table by hash stays what decides: the array only
/// remembers its answers.
public struct SegmentNames: Hashable, Sendable {
    /// The segment header's created-at: `reservation` records store their time relative to it.
    public let createdAt: Timestamp
    private(set) var cells: [CellKey] = []
    /// Each named cell's `CellKey.stableHash`, computed once per segment rather than once per record.
    private(set) var cellHashes: [UInt64] = []
    private(set) var actors: [String] = []
    /// Each named cell's number, filed by its `CellKey.tableHash` (`CellTable`'s, whose index this is
    /// too): a `[CellKey: Int]` hashed both names with SipHash to look a cell up, again to add it, and
    /// every cell again each time it grew, and after a rotation every cell a flash sale touches is new
    /// to the segment. The index is rebuilt from its own slots when it grows, reading no name.
    private var cellIndex = TaggedIndex()
    private var actorNumbers: [String: Int] = [:]
    /// The numbers of cells by their place: by shard, the generation of the shard's table the numbers
    /// were learned under and each position's number with its cell's `CellKey.tableHash` beside it,
    /// so that checking the number reads one line, not a second one of `cellHashes`.
    private var placeNumbers: [(generation: UInt64, numbers: [PlaceNumber])] = []

    /// A number learned for a place, with the table hash of the cell it numbers (number -1: none yet).
    private struct PlaceNumber {
        var tableHash: UInt64
        var number: Int32

        static let unknown = PlaceNumber(tableHash: 0, number: -1)
    }
    /// The last actor numbered: a run of records comes from one connection.
    private var lastActor: (name: String, number: Int)?

    /// `cellCapacity`: how many cells the segment is expected to name (a writer gives the count of the
    /// segment before), so that its table of numbers does not grow while the segment starts; at most
    /// `cellCapacityMax` are made room for at once (room is filled in as it is made, and a rotation
    /// that filled room for ten million cells held the log's thread for a quarter of a second).
    public init(createdAt: Timestamp, cellCapacity: Int = 0) {
        self.createdAt = createdAt
        let room = Swift.min(Swift.max(cellCapacity, 0), Self.cellCapacityMax)
        cellIndex.resize(to: TaggedIndex.slotCount(holding: room))
        if room > 0 {
            cells.reserveCapacity(room)
            cellHashes.reserveCapacity(room)
        }
    }

    /// The most cells `init(createdAt:cellCapacity:)` makes room for: 65,536, an index of 1 MiB.
    public static let cellCapacityMax = 1 << 16

    /// How many cells the segment has named.
    public var cellCount: Int { cells.count }

    public static func == (a: SegmentNames, b: SegmentNames) -> Bool {
        a.createdAt == b.createdAt && a.cells == b.cells && a.actors == b.actors
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(createdAt)
        hasher.combine(cells)
        hasher.combine(actors)
    }

    /// The number of `cell`, which the engine keeps at `place` (nil: unknown), remembering it by place;
    /// nil when the segment had not named the cell, which it then names (the caller writes its names).
    fileprivate mutating func numberOrName(_ cell: CellKey, at place: CellPlace?) -> Int? {
        numberOrName(at: place) { cell }
    }

    /// `numberOrName(_:at:)` for the cell `cell` makes, which it asks for only when `place` does not
    /// give the cell's number (and in debug builds, to check that it does).
    private mutating func numberOrName(at place: CellPlace?, _ cell: () -> CellKey) -> Int? {
        if let place, let known = knownNumber(at: place) {
            assert(cells[known] == cell(), "a place names one cell")
            assert(CellKey.tableHash(stable: cellHashes[known]) == place.tableHash, "the hash kept is the cell's")
            return known
        }
        let (number, named) = numberNamingIfNew(cell())
        assert(place == nil || place!.tableHash == CellKey.tableHash(stable: cellHashes[number]), "a place's hash is its cell's")
        if let place { remember(number, at: place) }
        return named ? nil : number
    }

    /// The number of `cell`, naming it when the segment had not (`named`). Hashed from the names, not
    /// taken from a place: a wrong hash would name the cell a second time, which a reader refuses.
    private mutating func numberNamingIfNew(_ cell: CellKey) -> (number: Int, named: Bool) {
        let stable = cell.stableHash
        let hash = CellKey.tableHash(stable: stable)
        // The index has slots from `init` on, and stays at most half full.
        let (slot, found) = cellIndex.probe(hash: hash) { cells[$0] == cell }
        if found { return (TaggedIndex.position(cellIndex[slot]), false) }
        if 2 * (cells.count + 1) > cellIndex.count { cellIndex.resize(to: cellIndex.count * 2) }
        cellIndex.place(position: cells.count, hash: hash)
        cells.append(cell)
        cellHashes.append(stable)
        return (cells.count - 1, true)
    }

    /// Asks for the line that keeps the number of the cell at `place`: a writer does it a few records
    /// ahead, since among many cells the number is a cache miss (2.6% of `spread --fsync always`).
    func prefetchNumber(at place: CellPlace) {
        let s = place.shard, p = place.position
        guard s >= 0, s < placeNumbers.count, p >= 0, p < placeNumbers[s].numbers.count else { return }
        placeNumbers[s].numbers.withUnsafeBufferPointer { stockpile_prefetch_read($0.baseAddress! + p) }
    }

    private mutating func remember(_ number: Int, at place: CellPlace) {
        let s = place.shard, p = place.position
        guard s >= 0, p >= 0, number <= Int(Int32.max) else { return }
        if s >= placeNumbers.count { placeNumbers.append(contentsOf: repeatElement((generation: place.generation, numbers: [PlaceNumber]()), count: s + 1 - placeNumbers.count)) }
        if placeNumbers[s].generation != place.generation {
            placeNumbers[s].generation = place.generation
            placeNumbers[s].numbers.removeAll(keepingCapacity: true)
        }
        if p >= placeNumbers[s].numbers.count {
            let grown = Swift.max(p + 1, placeNumbers[s].numbers.count * 2)
            placeNumbers[s].numbers.append(contentsOf: repeatElement(.unknown, count: grown - placeNumbers[s].numbers.count))
        }
        placeNumbers[s].numbers[p] = PlaceNumber(tableHash: CellKey.tableHash(stable: cellHashes[number]), number: Int32(number))
    }

    /// `numberOrName(_:at:)` for a cell given by its names' UTF-8: builds the cell's names only when
    /// its place does not give its number (the cell is new to the segment, or its place is unknown).
    mutating func numberOrName(variant: UnsafeRawBufferPointer, warehouse: UnsafeRawBufferPointer, at place: CellPlace?) -> Int? {
        numberOrName(at: place) { CellKey(variant: String(decoding: variant, as: UTF8.self), warehouse: String(decoding: warehouse, as: UTF8.self)) }
    }

    /// The number remembered for the cell at `place`, if one is.
    private func knownNumber(at place: CellPlace) -> Int? {
        let s = place.shard, p = place.position
        guard s >= 0, p >= 0, s < placeNumbers.count, placeNumbers[s].generation == place.generation, p < placeNumbers[s].numbers.count else {
            return nil
        }
        let known = placeNumbers[s].numbers[p]
        guard known.number >= 0 && known.tableHash == place.tableHash else { return nil }
        return Int(known.number)
    }

    /// `number(ofActor:)` for an actor given by its UTF-8: compared with the last actor numbered in
    /// place, made a `String` only to look it up among the others.
    mutating func number(ofActor actor: UnsafeRawBufferPointer) -> Int? {
        if let last = lastActor, utf8(of: last.name, equals: actor) { return last.number }
        return number(ofActor: String(decoding: actor, as: UTF8.self))
    }

    fileprivate mutating func number(ofActor actor: String) -> Int? {
        if let last = lastActor, last.name == actor { return last.number }
        guard let n = actorNumbers[actor] else { return nil }
        lastActor = (actor, n)
        return n
    }

    /// Names `cell` as a reader meets it; false, naming nothing, when the segment had named it already.
    fileprivate mutating func nameIfNew(_ cell: CellKey) -> Bool { numberNamingIfNew(cell).named }

    mutating func name(actor: String) {
        actorNumbers[actor] = actors.count
        lastActor = (actor, actors.count)
        actors.append(actor)
    }
}

/// A new one-line reservation's hold as its `reservation` record (FORMAT.md §3.8) carries it: how many
/// units it holds, whether they count against the cell, how many are backordered, the request's TTL and
/// the placement strategy. A value without names, for a caller that hands the record over from its
/// parts (`GroupCommitter.submit(reservation:time:seq:cell:actor:hold:…)`).
public struct ReservationHold: Hashable, Sendable {
    public var quantity: Quantity
    public var tracked: Bool
    public var backordered: Quantity
    public var ttl: Duration?
    public var strategy: PlacementStrategy

    public init(quantity: Quantity, tracked: Bool, backordered: Quantity, ttl: Duration?, strategy: PlacementStrategy) {
        self.quantity = quantity
        self.tracked = tracked
        self.backordered = backordered
        self.ttl = ttl
        self.strategy = strategy
    }

    /// Whether the record carries this hold: a quantity of at least 1 and a TTL the engine takes (a
    /// reservation with another is logged as its commit).
    public var isCarried: Bool { quantity.units >= 1 && (ttl.map(CompactReservation.acceptsTTL) ?? true) }

    /// The payload's flags byte.
    func flags(customer: Bool, cellNamed: Bool, actorNamed: Bool) -> UInt8 {
        typealias Flag = CompactReservation.Flag
        var flags = strategy.walCode << Flag.strategyShift
        if tracked { flags |= Flag.tracked }
        if backordered != .zero { flags |= Flag.backordered }
        if ttl != nil { flags |= Flag.ttl }
        if customer { flags |= Flag.customer }
        if cellNamed { flags |= Flag.cellNamed }
        if actorNamed { flags |= Flag.actorNamed }
        return flags
    }
}

/// The `reservation` record's fields (FORMAT.md §3.8), between a commit and its bytes. Replay applies
/// them as they are; `commit` builds the commit they stand for.
public struct CompactReservation: Hashable, Sendable {
    public internal(set) var time: Timestamp
    /// The sequence number of its one ledger entry (a caller that builds the record before the
    /// ledger numbers the entry sets it then).
    public var seq: UInt64
    public internal(set) var cell: CellKey
    public internal(set) var actor: String
    public internal(set) var quantity: Quantity
    public internal(set) var tracked: Bool
    public internal(set) var backordered: Quantity
    public internal(set) var onHandAfter: Quantity
    public internal(set) var reservedAfter: Quantity
    public internal(set) var ttl: Duration?
    public internal(set) var customer: String?
    public internal(set) var strategy: PlacementStrategy
    public internal(set) var id: String

    enum Flag {
        static let tracked: UInt8 = 1 << 0
        static let backordered: UInt8 = 1 << 1
        static let ttl: UInt8 = 1 << 2
        static let customer: UInt8 = 1 << 3
        static let cellNamed: UInt8 = 1 << 4
        static let actorNamed: UInt8 = 1 << 5
        static let strategyShift: UInt8 = 6
    }

    /// A TTL the engine takes (SPEC limits): the only ones this record carries, so that a decoder can
    /// refuse any other before it computes an expiry from it.
    static func acceptsTTL(_ ttl: Duration) -> Bool {
        ttl >= Limits.ttlMin && ttl <= Limits.ttlMax
    }

    /// The commit's one ledger entry.
    public var entry: LedgerEntry {
        LedgerEntry(
            seq: seq, time: time, type: .reserve, variant: cell.variant, warehouse: cell.warehouse,
            deltaOnHand: .zero, deltaReserved: tracked ? quantity : .zero, onHand: onHandAfter, reserved: reservedAfter,
            reservation: id, actor: actor)
    }

    /// The time its hold expires, nil without a TTL.
    public var expiresAt: Timestamp? { Reservation.firstDeadline(createdAt: time, ttl: ttl) }

    /// The commit the record stands for (FORMAT.md §3.8).
    public var commit: Commit {
        Commit(time: time, entries: [entry], reservation: oneLine.reservation, replyShape: .reservation)
    }

    /// The reservation the record makes, without an array for its line.
    public var oneLine: OneLineReservation {
        let line = ReservationLine(variant: cell.variant, warehouse: cell.warehouse, quantity: quantity, backordered: backordered, tracked: tracked)
        return OneLineReservation(new: id, line: line, ttl: ttl, customer: customer, strategy: strategy, at: time)
    }

    /// The payload's flags byte, with the cell and the actor named in the record or not.
    func flags(cellNamed: Bool, actorNamed: Bool) -> UInt8 {
        hold.flags(customer: customer != nil, cellNamed: cellNamed, actorNamed: actorNamed)
    }

    /// What the record says of the hold itself.
    public var hold: ReservationHold {
        ReservationHold(quantity: quantity, tracked: tracked, backordered: backordered, ttl: ttl, strategy: strategy)
    }

    /// Writes the payload, naming the cell and the actor when the segment has not yet. `place`: where
    /// the engine keeps the cell, when it says.
    func encode(into w: inout ByteWriter, names: inout SegmentNames, place: CellPlace? = nil) {
        let cellNumber = names.numberOrName(cell, at: place)
        let actorNumber = names.number(ofActor: actor)
        w.writeUInt8(flags(cellNamed: cellNumber == nil, actorNamed: actorNumber == nil))
        w.writeSignedVarint(time.milliseconds &- names.createdAt.milliseconds)
        w.writeVarint(seq)
        if let cellNumber {
            w.writeVarint(UInt64(cellNumber))
        } else {
            w.writeString(cell.variant)
            w.writeString(cell.warehouse)
        }
        if let actorNumber {
            w.writeVarint(UInt64(actorNumber))
        } else {
            w.writeString(actor)
            names.name(actor: actor)
        }
        w.write(quantity)
        if backordered != .zero { w.write(backordered) }
        w.write(onHandAfter)
        w.write(reservedAfter)
        if let ttl { w.write(ttl) }
        if let customer { w.writeString(customer) }
        w.writeString(id)
    }

    /// Reads a payload, learning the names it gives, and sets `cellHash` to its cell's
    /// `CellKey.stableHash` (the segment's names keep it). The names are learned even when decoding
    /// fails further on: a reader that stops there reads nothing after it anyway.
    static func decode(
        from r: inout ByteReader, names: inout SegmentNames, cellHash: inout UInt64, cellNumber: inout Int
    ) throws(WALDecodingError) -> CompactReservation {
        let flagsAt = r.position
        let flags = try r.readUInt8()
        guard let strategy = PlacementStrategy(walCode: flags >> Flag.strategyShift) else {
            throw r.failure(.unknownCode(table: "PlacementStrategy", code: flags >> Flag.strategyShift), at: flagsAt)
        }
        let timeAt = r.position
        let (milliseconds, overflow) = names.createdAt.milliseconds.addingReportingOverflow(try r.readSignedVarint())
        guard !overflow else { throw r.failure(.inconsistent("the time overflows"), at: timeAt) }
        let time = Timestamp(milliseconds: milliseconds)
        let seq = try r.readVarint()
        let cell: CellKey
        if flags & Flag.cellNamed != 0 {
            cell = CellKey(variant: try r.readString(), warehouse: try r.readString())
            guard names.nameIfNew(cell) else { throw r.failure(.inconsistent("cell \(cell) is named twice in the segment")) }
            cellNumber = names.cellHashes.count - 1
            cellHash = names.cellHashes[cellNumber]
        } else {
            let at = r.position
            let n = try r.readVarint()
            guard n < UInt64(names.cells.count) else { throw r.failure(.inconsistent("cell number \(n) is not one the segment has given"), at: at) }
            cell = names.cells[Int(n)]
            cellNumber = Int(n)
            cellHash = names.cellHashes[cellNumber]
        }
        let actor: String
        if flags & Flag.actorNamed != 0 {
            actor = try r.readString()
            guard names.number(ofActor: actor) == nil else { throw r.failure(.inconsistent("actor '\(actor)' is named twice in the segment")) }
            names.name(actor: actor)
        } else {
            let at = r.position
            let n = try r.readVarint()
            guard n < UInt64(names.actors.count) else { throw r.failure(.inconsistent("actor number \(n) is not one the segment has given"), at: at) }
            actor = names.actors[Int(n)]
        }
        let quantity = try r.readQuantity()
        guard quantity.units >= 1 else { throw r.failure(.inconsistent("a reservation's quantity must be at least 1")) }
        let backordered = flags & Flag.backordered != 0 ? try r.readQuantity() : .zero
        if flags & Flag.backordered != 0 && backordered == .zero { throw r.failure(.nonCanonical("backordered 0 is written by leaving it out")) }
        let onHandAfter = try r.readQuantity()
        let reservedAfter = try r.readQuantity()
        let ttlAt = r.position
        let ttl = flags & Flag.ttl != 0 ? try r.readDuration() : nil
        if let ttl {
            // What the engine accepts, and so all a writer writes; the expiry must not overflow either.
            guard Self.acceptsTTL(ttl), !time.milliseconds.addingReportingOverflow(ttl.wholeMilliseconds).overflow else {
                throw r.failure(.inconsistent("a TTL of \(ttl) is outside what a reservation takes"), at: ttlAt)
            }
        }
        let customer = flags & Flag.customer != 0 ? try r.readString() : nil
        let id = try r.readString()
        return CompactReservation(
            time: time, seq: seq, cell: cell, actor: actor, quantity: quantity, tracked: flags & Flag.tracked != 0, backordered: backordered,
            onHandAfter: onHandAfter, reservedAfter: reservedAfter, ttl: ttl, customer: customer, strategy: strategy, id: id)
    }
}

extension CompactReservation {
    /// The record of a new one-line reservation made at `time` under `id`, whose ledger entry is
    /// numbered `seq` and leaves its cell at `onHandAfter` and `reservedAfter`; nil when a field is not
    /// one the record carries (a quantity below 1, a TTL outside what a reservation takes): then log
    /// the commit. For a caller that decided the reservation without building its commit.
    public init?(
        reservation id: String, time: Timestamp, seq: UInt64, cell: CellKey, actor: String, quantity: Quantity, tracked: Bool,
        backordered: Quantity, onHandAfter: Quantity, reservedAfter: Quantity, ttl: Duration?, customer: String?, strategy: PlacementStrategy
    ) {
        guard quantity.units >= 1, ttl.map(Self.acceptsTTL) ?? true else { return nil }
        self.time = time
        self.seq = seq
        self.cell = cell
        self.actor = actor
        self.quantity = quantity
        self.tracked = tracked
        self.backordered = backordered
        self.onHandAfter = onHandAfter
        self.reservedAfter = reservedAfter
        self.ttl = ttl
        self.customer = customer
        self.strategy = strategy
        self.id = id
    }

    /// The fields of `commit`, when it is a commit this record can carry exactly; nil otherwise.
    ///
    /// Every field of the commit that the record does not store is checked against what `commit`
    /// (below) rebuilds for it, field by field, so that the log's thread builds nothing per record;
    /// debug builds and the tests also rebuild the whole commit and compare.
    public init?(_ commit: Commit) {
        guard commit.entries.count == 1, let r = commit.reservation, r.lines.count == 1, commit.replyShape == .reservation,
            commit.keyedCommand == nil, commit.warehouse == nil, commit.policy == nil
        else { return nil }
        let e = commit.entries[0]
        let line = r.lines[0]
        let time = commit.time
        guard line.quantity.units >= 1, line.fulfilled == .zero, line.released == .zero, r.requestTTL.map(Self.acceptsTTL) ?? true,
            e.time == time, e.type == .reserve, e.variant == line.variant, e.warehouse == line.warehouse, e.deltaOnHand == .zero,
            e.deltaReserved == (line.tracked ? line.quantity : .zero), e.reason == nil, e.note.isEmpty, e.reference.isEmpty,
            e.reservation == r.id,
            r.status == .active, !r.endedByExpiry, r.createdAt == time, r.closedAt == nil, r.customer == r.requestCustomer,
            r.expiresAt == Reservation.firstDeadline(createdAt: time, ttl: r.requestTTL),
            // The request's one line is the reservation's.
            r.fingerprintLinesAreOwnLines
        else { return nil }
        self.init(
            time: time, seq: e.seq, cell: line.cell, actor: e.actor, quantity: line.quantity, tracked: line.tracked,
            backordered: line.backordered, onHandAfter: e.onHand, reservedAfter: e.reserved, ttl: r.requestTTL,
            customer: r.customer, strategy: r.strategy, id: r.id)
        assert(self.commit == commit, "a reservation record that would not decode to its commit")
    }
}
