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

    /// Appends `fields`, numbered `lsn` (its entry `seq`), with `place`, to `staged`.
    static func stage(_ fields: borrowing CompactReservation, seq: UInt64, lsn: UInt64, place: CellPlace?, into staged: inout [UInt8]) {
        stage(
            id: fields.id, time: fields.time, seq: seq, cell: fields.cell, actor: fields.actor, hold: fields.hold,
            onHandAfter: fields.onHandAfter, reservedAfter: fields.reservedAfter, customer: fields.customer, lsn: lsn, place: place, into: &staged)
    }

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
        // Built on the stack, then appended at once: one append, not one per field.
        let start = staged.count
        let used = withUnsafeTemporaryAllocation(byteCount: room, alignment: 8) { room -> Int in
            let p = room.baseAddress!
            var c = RawCursor(p + headerByteCount)
            c.put(cell.variant)
            let variantCount = c.offset(from: p) - headerByteCount
            c.put(cell.warehouse)
            let warehouseCount = c.offset(from: p) - headerByteCount - variantCount
            c.put(actor)
            let actorCount = c.offset(from: p) - headerByteCount - variantCount - warehouseCount
            let tailStart = c.offset(from: p)
            c.putSigned(hold.quantity.units)
            if hold.backordered != .zero { c.putSigned(hold.backordered.units) }
            c.putSigned(onHandAfter.units)
            c.putSigned(reservedAfter.units)
            if let ttl = hold.ttl { c.put(ttl) }
            if let customer { c.putCounted(customer) }
            c.putCounted(id)
            let tailCount = c.offset(from: p) - tailStart
            let total = (c.offset(from: p) + 7) & ~7
            p.storeBytes(of: lsn.littleEndian, toByteOffset: 0, as: UInt64.self)
            p.storeBytes(of: time.milliseconds.littleEndian, toByteOffset: 8, as: Int64.self)
            p.storeBytes(of: seq.littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: (place?.generation ?? 0).littleEndian, toByteOffset: 24, as: UInt64.self)
            p.storeBytes(of: (place?.tableHash ?? 0).littleEndian, toByteOffset: 32, as: UInt64.self)
            p.storeBytes(of: Int32(truncatingIfNeeded: place?.shard ?? -1).littleEndian, toByteOffset: 40, as: Int32.self)
            p.storeBytes(of: Int32(truncatingIfNeeded: place?.position ?? -1).littleEndian, toByteOffset: 44, as: Int32.self)
            p.storeBytes(of: UInt32(total).littleEndian, toByteOffset: 48, as: UInt32.self)
            p.storeBytes(of: UInt32(variantCount).littleEndian, toByteOffset: 52, as: UInt32.self)
            p.storeBytes(of: UInt32(warehouseCount).littleEndian, toByteOffset: 56, as: UInt32.self)
            p.storeBytes(of: UInt32(actorCount).littleEndian, toByteOffset: 60, as: UInt32.self)
            p.storeBytes(of: UInt32(tailCount).littleEndian, toByteOffset: 64, as: UInt32.self)
            p.storeBytes(of: hold.flags(customer: customer != nil, cellNamed: false, actorNamed: false), toByteOffset: 68, as: UInt8.self)
            p.storeBytes(of: 0, toByteOffset: 69, as: UInt8.self)
            p.storeBytes(of: 0, toByteOffset: 70, as: UInt16.self)
            // The padding, zero.
            (p + c.offset(from: p)).initializeMemory(as: UInt8.self, repeating: 0, count: total - c.offset(from: p))
            staged.append(contentsOf: UnsafeRawBufferPointer(start: p, count: total))
            return total
        }
        assert(
            {
                // The tail as the record's encoder writes it.
                var w = ByteWriter()
                w.write(hold.quantity)
                if hold.backordered != .zero { w.write(hold.backordered) }
                w.write(onHandAfter)
                w.write(reservedAfter)
                if let ttl = hold.ttl { w.write(ttl) }
                if let customer { w.writeString(customer) }
                w.writeString(id)
                return staged.withUnsafeBytes { all in
                    let v = View(all.baseAddress! + start)
                    return Array(v.tail) == w.bytes && v.lsn == lsn && v.seq == seq && v.place == place && v.byteCount == used
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
        // Header, flags, time, seq, the cell's and the actor's numbers or names, the tail.
        let room = WALRecord.headerByteCount + 1 + 3 * 10 + 2 * 5 + variant.count + warehouse.count + 5 + actor.count + tail.count
        let start = writer.count
        // Framed on the stack, then appended at once.
        let used = withUnsafeTemporaryAllocation(byteCount: room, alignment: 8) { buffer -> Int in
            let p = buffer.baseAddress!
            var c = RawCursor(p + WALRecord.headerByteCount)
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
            let end = c.offset(from: p)
            let payloadByteCount = end - WALRecord.headerByteCount
            precondition(
                payloadByteCount <= WALRecord.payloadByteCountMax,
                "a record payload of \(payloadByteCount) bytes is outside 1...\(WALRecord.payloadByteCountMax)")
            p.storeBytes(of: UInt32(payloadByteCount).littleEndian, toByteOffset: 4, as: UInt32.self)
            p.storeBytes(of: v.lsn.littleEndian, toByteOffset: 8, as: UInt64.self)
            p.storeBytes(of: salt.littleEndian, toByteOffset: 16, as: UInt32.self)
            p.storeBytes(of: WALRecordType.reservation.rawValue, toByteOffset: 20, as: UInt8.self)
            p.storeBytes(of: 0, toByteOffset: 21, as: UInt8.self)
            p.storeBytes(of: 0, toByteOffset: 22, as: UInt16.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: p + 4, count: end - 4))
            p.storeBytes(of: crc.littleEndian, toByteOffset: 0, as: UInt32.self)
            writer.writeBytes(UnsafeRawBufferPointer(start: p, count: end))
            return end
        }
        if actorNumber == nil { names.name(actor: String(decoding: actor, as: UTF8.self)) }
        assert(
            writer.bytes.withUnsafeBytes { RecordCodec.decodeRecord($0, at: start, salt: salt, expectedLSN: v.lsn) }
                == .valid(WALRecord(lsn: v.lsn, type: .reservation, offset: start, payloadByteCount: used - WALRecord.headerByteCount)))
    }

}

/// Writes through a pointer into room made beforehand: the encodings of `ByteWriter` (LEB128 varints,
/// strings as a varint count and their UTF-8), without an array's checks per field.
struct RawCursor {
    private(set) var at: UnsafeMutableRawPointer

    init(_ at: UnsafeMutableRawPointer) { self.at = at }

    func offset(from base: UnsafeMutableRawPointer) -> Int { at - base }

    @inline(__always)
    mutating func putByte(_ byte: UInt8) {
        at.storeBytes(of: byte, as: UInt8.self)
        at += 1
    }

    @inline(__always)
    mutating func putVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            putByte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        putByte(UInt8(truncatingIfNeeded: v))
    }

    /// ZigZag, then LEB128 (`ByteWriter.writeSignedVarint`).
    @inline(__always)
    mutating func putSigned(_ value: Int64) {
        putVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// A duration as `ByteWriter.write(_: Duration)` writes it: seconds, then attoseconds.
    @inline(__always)
    mutating func put(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        putSigned(seconds)
        putSigned(attoseconds)
    }

    /// A presence byte, then the value when present (`ByteWriter.writeOptional`).
    @inline(__always)
    mutating func putOptional<T>(_ value: T?, _ put: (inout RawCursor, T) -> Void) {
        if let value {
            putByte(1)
            put(&self, value)
        } else {
            putByte(0)
        }
    }

    @inline(__always)
    mutating func putBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        at.copyMemory(from: source, byteCount: bytes.count)
        at += bytes.count
    }

    /// `text`'s UTF-8, read in place when the string keeps it contiguous.
    @inline(__always)
    mutating func put(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ putBytes(UnsafeRawBufferPointer($0)) }) == nil {
            var text = text
            text.withUTF8 { putBytes(UnsafeRawBufferPointer($0)) }
        }
    }

    @inline(__always)
    mutating func putCounted(_ bytes: UnsafeRawBufferPointer) {
        putVarint(UInt64(bytes.count))
        putBytes(bytes)
    }

    /// `text` as `ByteWriter.writeString` writes it.
    @inline(__always)
    mutating func putCounted(_ text: String) {
        putVarint(UInt64(text.utf8.count))
        put(text)
    }
}
