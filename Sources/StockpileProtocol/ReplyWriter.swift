// Writes the replies of the hot commands straight into an output buffer, as Redis's networking.c
// appends to a client's reply buffer: reservation records (RESERVE, EXTEND, CONFIRM, RELEASE,
// FULFILL, RESERVATION), cell receipts (ADJUST, SETQTY, COUNT, RETURN), both sides of a TRANSFER, cell
// records (STOCK) and refusals. Building the same reply as a `ReplyFrame` costs a tree of indirect
// enum cases, field arrays and strings (about nineteen allocations for a one-line reservation); here
// a reply costs none once the buffer has room. Each reply is formed through a pointer in scratch room
// sized for an upper bound of it (no capacity or uniqueness check of the array per byte), then
// copied to the buffer at once; the cursor checks every write against the room (kept in release
// builds), so a bound that is too small stops the process instead of writing past it.
//
// It keeps true: for every value, in RESP2 and RESP3, the bytes are exactly those that
// `ReplyEncoder.encode(ReplyFrame(value), …)` writes (ReplyWriterTests compares the two over every
// shape of record); the field names and their order are the ones ReplyFrame+Records.swift spells, and
// a change to either file must be made to both. Rare replies (warehouse and policy records, lists)
// stay frames.

import StockpileCore

public enum ReplyWriter {
    /// Appends the reply of a mutation, or its refusal. O(size of the reply).
    public static func append(_ outcome: Outcome<Reply>, version: RESPVersion, into out: inout [UInt8]) {
        switch outcome {
        case .ok(let reply): append(reply, version: version, into: &out)
        case .refused(let refusal): append(refusal, into: &out)
        }
    }

    /// Appends the reply of a successful mutation (SPEC §5, §7.2).
    public static func append(_ reply: Reply, version: RESPVersion, into out: inout [UInt8]) {
        switch reply {
        case .reservation(let record):
            append(reservation: record, version: version, into: &out)
        case .cell(let receipt):
            write(upTo: receiptByteCountMax(receipt.cell), into: &out) { cursor in
                writeReceipt(receipt, version: version, to: &cursor)
            }
        case .transfer(let receipt):
            // The two entries of a transfer are consecutive, source first (SPEC §1).
            let bound = 4 + receiptByteCountMax(receipt.from) + receiptByteCountMax(receipt.to)
            write(upTo: bound, into: &out) { cursor in
                cursor.put("*2\r\n")
                writeTransferSide(receipt.from, seq: receipt.seq, replayed: receipt.replayed, version: version, to: &cursor)
                writeTransferSide(receipt.to, seq: receipt.seq + 1, replayed: receipt.replayed, version: version, to: &cursor)
            }
        case .warehouse, .policy:
            // Administrative and rare: not worth a second spelling of their records.
            ReplyEncoder.encode(ReplyFrame(reply), version: version, into: &out)
        }
    }

    /// `-CODE message` (SPEC §5, §7.8), with any CR or LF of the message written as a space, so that
    /// it cannot end the line early.
    public static func append(_ refusal: Refusal, into out: inout [UInt8]) {
        let code = refusal.code.name
        let message = refusal.message
        write(upTo: code.utf8.count + message.utf8.count + 4, into: &out) { cursor in
            cursor.put(UInt8(ascii: "-"))
            cursor.putOneLine(code)
            cursor.put(UInt8(ascii: " "))
            cursor.putOneLine(message)
            cursor.putCRLF()
        }
    }

    /// A reservation: `id status expires_at_ms customer created_at_ms fully_shipped lines`, and
    /// `replayed 1` on a replay; each line `variant warehouse quantity fulfilled released backordered
    /// remaining`. A missing expiry is 0 and a missing customer empty text (SPEC §7.1).
    public static func append(reservation record: ReservationRecord, version: RESPVersion, into out: inout [UInt8]) {
        // A one-line reservation carried without a line array is written from its fields: building
        // the general value would allocate its array.
        if let r = record.oneLine {
            append(
                id: r.id, status: r.status, expiresAt: r.expiresAt, customer: r.customer, createdAt: r.createdAt, lines: CollectionOfOne(r.line),
                replayed: record.replayed, version: version, into: &out)
        } else {
            let r = record.reservation
            append(
                id: r.id, status: r.status, expiresAt: r.expiresAt, customer: r.customer, createdAt: r.createdAt, lines: r.lines,
                replayed: record.replayed, version: version, into: &out)
        }
    }

    /// The reply to RESERVE `command` (of one line naming its warehouse), new, made with `facts`:
    /// byte for byte what `append(reservation: facts.record(of: command), …)` writes (checked in debug
    /// builds), without making the reservation and its record first.
    public static func append(newReservation command: borrowing Command, facts: NewOneLineFacts, version: RESPVersion, into out: inout [UInt8]) {
        switch command {
        case .reserve(let request):
            // As `OneLineReservation(new:held:strategy:at:)` makes it: active, expiring at its first deadline.
            let start = out.count
            append(
                id: request.id, status: .active, expiresAt: Reservation.firstDeadline(createdAt: facts.createdAt, ttl: request.ttl),
                customer: request.customer, createdAt: facts.createdAt, lines: CollectionOfOne(facts.line(of: request)), replayed: false,
                version: version, into: &out)
            assert(
                {
                    var made: [UInt8] = []
                    append(reservation: ReservationRecord(facts.reservation(of: request)), version: version, into: &made)
                    return made[...] == out[start...]
                }(), "a new reservation's reply that is not its record's")
        default:
            preconditionFailure("a reservation's facts with another command")
        }
    }

    private static func append(
        id: String, status: ReservationStatus, expiresAt: Timestamp?, customer: String?, createdAt: Timestamp, lines: some Collection<ReservationLine>,
        replayed: Bool, version: RESPVersion, into out: inout [UInt8]
    ) {
        let customer = customer ?? ""
        // Names and framing: 119 bytes at the top and 104 a line; values: a header or an integer at
        // most 23 bytes, a bulk string its length plus 25.
        var bound = 512 + id.utf8.count + customer.utf8.count
        for line in lines { bound += 384 + line.variant.utf8.count + line.warehouse.utf8.count }
        write(upTo: bound, into: &out) { cursor in
            cursor.putRecordHeader(fieldCount: replayed ? 8 : 7, version: version)
            cursor.put("$2\r\nid\r\n")
            cursor.putBulk(id)
            cursor.put("$6\r\nstatus\r\n")
            cursor.putStatus(status)
            cursor.put("$13\r\nexpires_at_ms\r\n")
            cursor.putInteger(expiresAt?.milliseconds ?? 0)
            cursor.put("$8\r\ncustomer\r\n")
            cursor.putBulk(customer)
            cursor.put("$13\r\ncreated_at_ms\r\n")
            cursor.putInteger(createdAt.milliseconds)
            cursor.put("$13\r\nfully_shipped\r\n")
            // As `Reservation.isFullyShipped`.
            cursor.put(status == .fulfilled ? ":1\r\n" : ":0\r\n")
            cursor.put("$5\r\nlines\r\n")
            cursor.put(UInt8(ascii: "*"))
            cursor.putDecimal(Int64(lines.count))
            cursor.putCRLF()
            for line in lines {
                cursor.putRecordHeader(fieldCount: 7, version: version)
                cursor.put("$7\r\nvariant\r\n")
                cursor.putBulk(line.variant)
                cursor.put("$9\r\nwarehouse\r\n")
                cursor.putBulk(line.warehouse)
                cursor.put("$8\r\nquantity\r\n")
                cursor.putInteger(line.quantity.units)
                cursor.put("$9\r\nfulfilled\r\n")
                cursor.putInteger(line.fulfilled.units)
                cursor.put("$8\r\nreleased\r\n")
                cursor.putInteger(line.released.units)
                cursor.put("$11\r\nbackordered\r\n")
                cursor.putInteger(line.backordered.units)
                cursor.put("$9\r\nremaining\r\n")
                cursor.putInteger(line.remaining.units)
            }
            if replayed { cursor.put("$8\r\nreplayed\r\n:1\r\n") }
        }
    }

    /// A cell: `variant warehouse on_hand reserved available` (STOCK variant warehouse).
    public static func append(cell: CellRecord, version: RESPVersion, into out: inout [UInt8]) {
        write(upTo: receiptByteCountMax(cell), into: &out) { cursor in
            cursor.putRecordHeader(fieldCount: 5, version: version)
            writeCellFields(cell, to: &cursor)
        }
    }

    /// `STOCK variant`: the per-warehouse cells, then the totals (warehouse `*`) (SPEC §7.12).
    public static func append(_ stock: VariantStock, version: RESPVersion, into out: inout [UInt8]) {
        var bound = 23 + receiptByteCountMax(stock.totals)
        for cell in stock.cells { bound += receiptByteCountMax(cell) }
        write(upTo: bound, into: &out) { cursor in
            cursor.put(UInt8(ascii: "*"))
            cursor.putDecimal(Int64(stock.cells.count + 1))
            cursor.putCRLF()
            for cell in stock.cells {
                cursor.putRecordHeader(fieldCount: 5, version: version)
                writeCellFields(cell, to: &cursor)
            }
            cursor.putRecordHeader(fieldCount: 5, version: version)
            writeCellFields(stock.totals, to: &cursor)
        }
    }

    // MARK: - Records

    /// A cell after a physical change: the cell's fields, `seq`, `shortfall`, then `variance` for
    /// COUNT and `replayed 1` on a replay.
    static func writeReceipt(_ receipt: CellReceipt, version: RESPVersion, to cursor: inout Cursor) {
        var fieldCount = 7
        if receipt.variance != nil { fieldCount += 1 }
        if receipt.replayed { fieldCount += 1 }
        cursor.putRecordHeader(fieldCount: fieldCount, version: version)
        writeCellFields(receipt.cell, to: &cursor)
        cursor.put("$3\r\nseq\r\n")
        cursor.putInteger(Int64(clamping: receipt.seq))
        cursor.put("$9\r\nshortfall\r\n")
        cursor.putInteger(receipt.shortfall.units)
        if let variance = receipt.variance {
            cursor.put("$8\r\nvariance\r\n")
            cursor.putInteger(variance.units)
        }
        if receipt.replayed { cursor.put("$8\r\nreplayed\r\n:1\r\n") }
    }

    /// One side of a TRANSFER: the receipt of that cell, its shortfall as the figures give it.
    static func writeTransferSide(_ cell: CellRecord, seq: UInt64, replayed: Bool, version: RESPVersion, to cursor: inout Cursor) {
        let receipt = CellReceipt(cell: cell, seq: seq, shortfall: cell.shortfall, replayed: replayed)
        writeReceipt(receipt, version: version, to: &cursor)
    }

    @inline(__always)
    static func writeCellFields(_ cell: CellRecord, to cursor: inout Cursor) {
        cursor.put("$7\r\nvariant\r\n")
        cursor.putBulk(cell.variant)
        cursor.put("$9\r\nwarehouse\r\n")
        cursor.putBulk(cell.warehouse)
        cursor.put("$7\r\non_hand\r\n")
        cursor.putInteger(cell.onHand.units)
        cursor.put("$8\r\nreserved\r\n")
        cursor.putInteger(cell.reserved.units)
        cursor.put("$9\r\navailable\r\n")
        cursor.putInteger(cell.available.units)
    }

    /// At least the bytes of a cell record, a cell receipt or one side of a transfer: header, names
    /// and framing under 150 bytes, at most eight integers of 23 bytes, and two bulk strings of their
    /// length plus 25: under 400 bytes besides the two codes.
    static func receiptByteCountMax(_ cell: CellRecord) -> Int {
        512 + cell.variant.utf8.count + cell.warehouse.utf8.count
    }

    // MARK: - Room and the cursor

    /// Appends what `body` writes, in at most `bound` bytes: formed in scratch room (on the stack
    /// when it fits) and copied to `out` in one step (`append(contentsOf:)` grows `out` geometrically).
    @inline(__always)
    static func write(upTo bound: Int, into out: inout [UInt8], _ body: (inout Cursor) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bound) { room in
            let start = room.baseAddress!
            var cursor = Cursor(start, end: start + bound)
            body(&cursor)
            let written = cursor.next - start
            out.append(contentsOf: UnsafeBufferPointer(start: start, count: written))
        }
    }

    /// Writes forward through uninitialised room; every write is checked against the end of the room.
    struct Cursor {
        fileprivate private(set) var next: UnsafeMutablePointer<UInt8>
        private let end: UnsafeMutablePointer<UInt8>

        fileprivate init(_ start: UnsafeMutablePointer<UInt8>, end: UnsafeMutablePointer<UInt8>) {
            self.next = start
            self.end = end
        }

        @inline(__always)
        private mutating func claim(_ byteCount: Int) -> UnsafeMutablePointer<UInt8> {
            precondition(end - next >= byteCount, "a reply longer than the room made for it")
            defer { next += byteCount }
            return next
        }

        @inline(__always)
        mutating func put(_ byte: UInt8) {
            claim(1).pointee = byte
        }

        @inline(__always)
        mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard let source = bytes.baseAddress else { return }
            claim(bytes.count).initialize(from: source, count: bytes.count)
        }

        @inline(__always)
        mutating func put(_ text: StaticString) {
            text.withUTF8Buffer { put($0) }
        }

        @inline(__always)
        mutating func putCRLF() {
            let at = claim(2)
            at[0] = UInt8(ascii: "\r")
            at[1] = UInt8(ascii: "\n")
        }

        /// The UTF-8 of `text`: copied whole from a native string's contiguous storage.
        @inline(__always)
        mutating func put(_ text: String) {
            let utf8 = text.utf8
            if utf8.withContiguousStorageIfAvailable({ put($0) }) == nil {
                for byte in utf8 { put(byte) }
            }
        }

        /// The decimal digits of `value`, written backwards from the last digit's place: no string,
        /// no buffer in between.
        @inline(__always)
        mutating func putDecimal(_ value: Int64) {
            var magnitude = value.magnitude
            var digitCount = 1
            var rest = magnitude
            while rest >= 10 {
                rest /= 10
                digitCount += 1
            }
            let sign = value < 0 ? 1 : 0
            let at = claim(sign + digitCount)
            if sign == 1 { at[0] = UInt8(ascii: "-") }
            var index = sign + digitCount - 1
            repeat {
                at[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
                index -= 1
            } while magnitude != 0
        }

        @inline(__always)
        mutating func putInteger(_ value: Int64) {
            put(UInt8(ascii: ":"))
            putDecimal(value)
            putCRLF()
        }

        @inline(__always)
        mutating func putBulk(_ text: String) {
            put(UInt8(ascii: "$"))
            putDecimal(Int64(text.utf8.count))
            putCRLF()
            put(text)
            putCRLF()
        }

        /// RESP2 `*2n`, a flat array of name/value pairs; RESP3 `%n`, a map.
        @inline(__always)
        mutating func putRecordHeader(fieldCount: Int, version: RESPVersion) {
            switch version {
            case .resp2:
                put(UInt8(ascii: "*"))
                putDecimal(Int64(2 * fieldCount))
            case .resp3:
                put(UInt8(ascii: "%"))
                putDecimal(Int64(fieldCount))
            }
            putCRLF()
        }

        /// The status as a bulk string, spelled as `ReservationStatus.rawValue` spells it.
        @inline(__always)
        mutating func putStatus(_ status: ReservationStatus) {
            switch status {
            case .active: put("$6\r\nactive\r\n")
            case .partiallyFulfilled: put("$19\r\npartially_fulfilled\r\n")
            case .fulfilled: put("$9\r\nfulfilled\r\n")
            case .released: put("$8\r\nreleased\r\n")
            case .expired: put("$7\r\nexpired\r\n")
            }
        }

        /// Text with CR and LF written as spaces (what `ReplyFrame.oneLine` and `ReplyEncoder` do to
        /// an error line).
        mutating func putOneLine(_ text: String) {
            for byte in text.utf8 {
                put(byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") ? UInt8(ascii: " ") : byte)
            }
        }
    }
}
