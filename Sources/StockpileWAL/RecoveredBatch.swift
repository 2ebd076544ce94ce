// Records as recovery hands them over to start-up, a batch at a time. A `reservation` record, most of
// a busy log, is kept as its fields in an array of their own rather than as the payload of a
// `RecoveredRecord`: a reader of an enum's payload gets a copy of it (some 170 bytes and five names
// retained), where a reader of an array's element reads the fields it needs in place. Replay reads
// each record's fields twice (the part common to all shards, then its shard's part), so each copy
// it does not make is two.

import StockpileCore

/// Consecutive records of the log, in LSN order: `count` records from `firstLSN`, a `reservation`
/// record's fields in `reservations` (with their hashes in `hashes`, at the same index), any other
/// record in `others`. Build the `RecoveredRecord` of one with `record(at:)`.
public struct RecoveredBatch: Sendable {
    /// A reservation record's id hashed as `String.hashValue` hashes it (in this process), its
    /// cell's `CellKey.stableHash`, and the number its segment gave the cell (FORMAT.md §3.8): what
    /// replay finds the reservation and its cell by, computed on the thread that reads the log. The
    /// number names the cell within the segment (`segment`) as an integer handle: an applier that
    /// found the cell once keeps its place by that number.
    public struct ReservationHashes: Sendable {
        public var id: Int
        public var cell: UInt64
        public var cellNumber: Int32
    }

    /// Where one record of the batch is.
    public struct Item: Sendable {
        /// `i` for `reservations[i]`, `~i` for `others[i]`.
        private let raw: Int32

        init(reservation i: Int) { raw = Int32(i) }
        init(other i: Int) { raw = ~Int32(i) }

        /// The index of its fields in `reservations`, when it is a `reservation` record.
        @inlinable public var reservation: Int? { isReservation ? Int(rawValue) : nil }
        /// Its index in `others`, when it is any other record.
        @inlinable public var other: Int? { isReservation ? nil : Int(~rawValue) }

        @usableFromInline var rawValue: Int32 { raw }
        @usableFromInline var isReservation: Bool { raw >= 0 }
    }

    /// The LSN of the first record (0 for an empty batch).
    public private(set) var firstLSN: UInt64 = 0
    /// The first LSN of the segment the records are from (a batch never spans two): the segment its
    /// reservations' cell numbers belong to.
    public let segment: UInt64
    /// By record, in LSN order: where it is.
    public private(set) var items: [Item] = []
    /// The fields of the `reservation` records, in LSN order.
    public private(set) var reservations: [CompactReservation] = []
    /// The hashes of each of `reservations`, at the same index.
    public private(set) var hashes: [ReservationHashes] = []
    /// The other records, in LSN order.
    public private(set) var others: [RecoveredRecord] = []
    /// The bytes its records took in the log, framing included, as far as the reader counted them: a
    /// measure of what the batch holds, for bounding how much of the log waits between replay's stages.
    public internal(set) var logByteCount = 0

    /// An empty batch, with room for `capacity` records, reserved for the fields of reservations too
    /// (a busy log's records are mostly those).
    init(segment: UInt64, capacity: Int = 0) {
        self.segment = segment
        items.reserveCapacity(capacity)
        reservations.reserveCapacity(capacity)
        hashes.reserveCapacity(capacity)
    }

    public var count: Int { items.count }
    public var isEmpty: Bool { items.isEmpty }

    /// The LSN of the last record (nil for an empty batch).
    public var lastLSN: UInt64? { isEmpty ? nil : endLSN - 1 }

    /// The LSN of the next record after the batch.
    var endLSN: UInt64 { firstLSN + UInt64(items.count) }

    /// Appends the fields of `reservation` record `lsn`, the next after the batch's; `cellHash` is its
    /// cell's `stableHash`, which the segment's names keep, and `cellNumber` the number they gave it.
    /// Consumed: the decoder's fields move into the batch, where a copy retained each of its names
    /// and the decoder's copy then released them.
    mutating func append(reservation fields: consuming CompactReservation, lsn: UInt64, cellHash: UInt64, cellNumber: Int) {
        assert(cellHash == fields.cell.stableHash, "the cell's own hash")
        follow(lsn)
        items.append(Item(reservation: reservations.count))
        hashes.append(ReservationHashes(id: fields.id.hashValue, cell: cellHash, cellNumber: Int32(cellNumber)))
        reservations.append(consume fields)
    }

    /// Appends `record`, the next after the batch's.
    mutating func append(_ record: RecoveredRecord) {
        follow(record.lsn)
        items.append(Item(other: others.count))
        others.append(record)
    }

    private mutating func follow(_ lsn: UInt64) {
        if items.isEmpty { firstLSN = lsn }
        precondition(lsn == endLSN, "a batch's records are in a row")
    }

    /// Record `k` (its LSN is `firstLSN + k`), built as `RecoveredRecord`.
    public func record(at k: Int) -> RecoveredRecord {
        let lsn = firstLSN + UInt64(k)
        if let i = items[k].reservation {
            return RecoveredRecord(lsn: lsn, reservation: reservations[i])
        }
        return others[items[k].other!]
    }

    /// Every record, built as `RecoveredRecord`.
    public var records: [RecoveredRecord] { items.indices.map(record(at:)) }

    /// The records with an LSN up to `lsn`.
    public func prefix(through lsn: UInt64) -> RecoveredBatch {
        guard lsn < endLSN else { return self }
        var kept = RecoveredBatch(segment: segment)
        let count = lsn < firstLSN ? 0 : Int(lsn - firstLSN) + 1
        kept.logByteCount = items.isEmpty ? 0 : logByteCount * count / items.count
        for (k, item) in items[..<count].enumerated() {
            if let i = item.reservation {
                kept.append(reservation: reservations[i], lsn: firstLSN + UInt64(k), cellHash: hashes[i].cell, cellNumber: Int(hashes[i].cellNumber))
            } else {
                kept.append(others[item.other!])
            }
        }
        return kept
    }
}
