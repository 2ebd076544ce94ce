// A new one-line reservation's `reservation` record (wal/FORMAT.md §3.8) as its lane's owner hands it
// to the committer: bytes, written once by the thread that decided the reservation, read once by the
// committer's thread. The record's tail (quantity to id) does not depend on the segment and is staged
// exactly as the record writes it; what does (the time relative to the segment's created-at, the cell
// and the actor by number or by name) is staged as plain facts and framed by the committer's thread,
// which alone keeps the segment's names. Handed over as a value, the record (`CompactReservation`,
// inside an enum the size of the largest commit, 384 bytes) was moved about five times between the
// shard and the segment, and its names, retained by one thread, were released by the other.
//
// It keeps true: the framed record is byte for byte what `RecordCodec.appendReservation` writes for
// the same fields, place and names (the tail checked against the record's encoder at every staging in
// debug builds, every framed record judged valid there, and the whole record compared by the tests).

import StockpileCore

/// The layout of a staged record: a fixed header, then the variant's, the warehouse's and the actor's
/// UTF-8 and the record's tail, padded to a multiple of 8 bytes.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | LSN |
/// | 8 | 8 | time, ms |
/// | 16 | 8 | seq |
/// | 24 | 8 | the place's table generation |
/// | 32 | 8 | the place's table hash |
/// | 40 | 4 | the place's shard (-1: no place) |
/// | 44 | 4 | the place's position |
/// | 48 | 4 | the staged record's byte count, padded |
/// | 52 | 4 | variant byte count |
/// | 56 | 4 | warehouse byte count |
/// | 60 | 4 | actor byte count |
/// | 64 | 4 | tail byte count |
/// | 68 | 1 | the record's flags but for bits 4 and 5 (the cell and the actor named here) |
/// | 69 | 3 | zero |
enum StagedReservation {
    static let headerByteCount = 72

    /// Appends the record of reservation `id`, made at `time` by `actor` with `hold` on `cell`, which it
    /// left at `onHandAfter` and `reservedAfter`, its entry numbered `seq`, numbered `lsn`, with `place`,
    /// to `staged`. Its names are read where they lie: nothing here retains them.
    static func stage(
        id: String, time: Timestamp, seq: UInt64, cell: CellKey, actor: String, hold: ReservationHold, onHandAfter: Quantity,
        reservedAfter: Quantity, customer: String?, lsn: UInt64, place: CellPlace?, into staged: inout [UInt8]
    ) {
        precondition(hold.isCarried, "a hold the reservation record does not carry")
        // A place the header cannot hold (none the engine makes) is left out: the writer then finds
        // the cell by its names.
        let place = place.flatMap { p in (0...Int(Int32.max)).contains(p.shard) && (0...Int(Int32.max)).contains(p.position) ? p : nil }
        // Quantities and times are at most 10 bytes as varints, a TTL 20, a count 5; then the padding.
        let room = headerByteCount + cell.variant.utf8.count + cell.warehouse.utf8.count + actor.utf8.count + 4 * 10 + 20 + 5
            + (customer?.utf8.count ?? 0) + 5 + id.utf8.count + 7
        let start = staged.count
        let used = RawCursor.write(upTo: room, into: &staged) { c in
            c.skip(headerByteCount)
            c.put(cell.variant)
            let variantCount = c.count - headerByteCount
            c.put(cell.warehouse)
            let warehouseCount = c.count - headerByteCount - variantCount
            c.put(actor)
            let actorCount = c.count - headerByteCount - variantCount - warehouseCount
            let tailStart = c.count
            c.putSigned(hold.quantity.units)
            if hold.backordered != .zero { c.putSigned(hold.backordered.units) }
            c.putSigned(onHandAfter.units)
            c.putSigned(reservedAfter.units)
            if let ttl = hold.ttl { c.put(ttl) }
            if let customer { c.putCounted(customer) }
            c.putCounted(id)
            let tailCount = c.count - tailStart
            c.putZeros(((c.count + 7) & ~7) - c.count)
            c.store(lsn, at: 0)
            c.store(time.milliseconds, at: 8)
            c.store(seq, at: 16)
            c.store(place?.generation ?? 0, at: 24)
            c.store(place?.tableHash ?? 0, at: 32)
            c.store(Int32(place?.shard ?? -1), at: 40)
            c.store(Int32(place?.position ?? -1), at: 44)
            c.store(UInt32(c.count), at: 48)
            c.store(UInt32(variantCount), at: 52)
            c.store(UInt32(warehouseCount), at: 56)
            c.store(UInt32(actorCount), at: 60)
            c.store(UInt32(tailCount), at: 64)
            // The flags, and the three zero bytes after them.
            c.store(UInt32(hold.flags(customer: customer != nil, cellNamed: false, actorNamed: false)), at: 68)
        }
        assert(
            {
                // The tail as the record's encoder writes it: the end of its payload.
                var names = SegmentNames(createdAt: time)
                var payload = ByteWriter()
                CompactReservation(
                    reservation: id, time: time, seq: seq, cell: cell, actor: actor, quantity: hold.quantity, tracked: hold.tracked,
                    backordered: hold.backordered, onHandAfter: onHandAfter, reservedAfter: reservedAfter, ttl: hold.ttl, customer: customer,
                    strategy: hold.strategy)!.encode(into: &payload, names: &names)
                return staged.withUnsafeBytes { all in
                    let v = View(all.baseAddress! + start)
                    return payload.bytes.suffix(v.tail.count).elementsEqual(v.tail) && v.lsn == lsn && v.seq == seq && v.place == place && v.byteCount == used
                }
            }(), "a staged record whose tail is not the record's")
    }

    /// A staged record's fields, read where it lies.
    struct View {
        let base: UnsafeRawPointer

        init(_ base: UnsafeRawPointer) { self.base = base }

        private func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        private func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        private func i32(_ at: Int) -> Int { Int(Int32(littleEndian: base.loadUnaligned(fromByteOffset: at, as: Int32.self))) }

        var lsn: UInt64 { u64(0) }
        var timeMilliseconds: Int64 { Int64(bitPattern: u64(8)) }
        var seq: UInt64 { u64(16) }
        var place: CellPlace? {
            let shard = i32(40)
            guard shard >= 0 else { return nil }
            return CellPlace(shard: shard, position: i32(44), generation: u64(24), tableHash: u64(32))
        }
        /// The staged record's byte count: where the next one starts.
        var byteCount: Int { u32(48) }
        var flags: UInt8 { base.load(fromByteOffset: 68, as: UInt8.self) }
        var variant: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + StagedReservation.headerByteCount, count: u32(52)) }
        var warehouse: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + StagedReservation.headerByteCount + u32(52), count: u32(56))
        }
        var actor: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + StagedReservation.headerByteCount + u32(52) + u32(56), count: u32(60))
        }
        var tail: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + StagedReservation.headerByteCount + u32(52) + u32(56) + u32(60), count: u32(64))
        }
    }

    /// Appends the staged record at `staged` to `writer` as a segment's writer frames it, naming its cell
    /// and actor in `names` when the segment has not: what `RecordCodec.appendReservation` writes for
    /// its fields.
    static func frame(_ staged: UnsafeRawPointer, salt: UInt32, names: inout SegmentNames, into writer: inout ByteWriter) {
        let v = View(staged)
        let variant = v.variant, warehouse = v.warehouse, actor = v.actor, tail = v.tail
        let cellNumber = names.numberOrName(variant: variant, warehouse: warehouse, at: v.place)
        let actorNumber = names.number(ofActor: actor)
        var flags = v.flags
        if cellNumber == nil { flags |= CompactReservation.Flag.cellNamed }
        if actorNumber == nil { flags |= CompactReservation.Flag.actorNamed }
        // Flags, time, seq, the cell's and the actor's numbers or names, the tail.
        let room = 1 + 3 * 10 + 2 * 5 + variant.count + warehouse.count + 5 + actor.count + tail.count
        RecordCodec.appendRecord(lsn: v.lsn, type: .reservation, salt: salt, into: &writer, payloadUpTo: room) { c in
            c.putByte(flags)
            c.putSigned(v.timeMilliseconds &- names.createdAt.milliseconds)
            c.putVarint(v.seq)
            if let cellNumber {
                c.putVarint(UInt64(cellNumber))
            } else {
                c.putCounted(variant)
                c.putCounted(warehouse)
            }
            if let actorNumber {
                c.putVarint(UInt64(actorNumber))
            } else {
                c.putCounted(actor)
            }
            c.putBytes(tail)
        }
        if actorNumber == nil { names.name(actor: String(decoding: actor, as: UTF8.self)) }
    }
}
