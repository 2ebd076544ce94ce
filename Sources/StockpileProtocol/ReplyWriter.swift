// Writes the replies of the hot commands straight into an output buffer, as Redis's networking.c
// appends to a client's reply buffer: reservation records (RESERVE, EXTEND, CONFIRM, RELEASE,
// FULFILL, RESERVATION), cell receipts (ADJUST, SETQTY, COUNT, RETURN), both sides of a TRANSFER, cell
// records (STOCK) and refusals. Building the same reply as a `ReplyFrame` costs a tree of indirect
// enum cases, field arrays and strings (about nineteen allocations for a one-line reservation); here
// a reply costs none once the buffer has room, and the room is made once per reply.
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
            append(receipt, version: version, into: &out)
        case .transfer(let receipt):
            // The two entries of a transfer are consecutive, source first (SPEC §1).
            reserve(cellByteCountBound(receipt.from) + cellByteCountBound(receipt.to) + 4, in: &out)
            appendASCII("*2\r\n", into: &out)
            appendTransferSide(receipt.from, seq: receipt.seq, replayed: receipt.replayed, version: version, into: &out)
            appendTransferSide(receipt.to, seq: receipt.seq + 1, replayed: receipt.replayed, version: version, into: &out)
        case .warehouse, .policy:
            // Administrative and rare: not worth a second spelling of their records.
            ReplyEncoder.encode(ReplyFrame(reply), version: version, into: &out)
        }
    }

    /// `-CODE message` (SPEC §5, §7.8), with any CR or LF of the message written as a space, so that
    /// it cannot end the line early.
    public static func append(_ refusal: Refusal, into out: inout [UInt8]) {
        let code = refusal.code.name.utf8
        let message = refusal.message.utf8
        reserve(code.count + message.count + 4, in: &out)
        out.append(UInt8(ascii: "-"))
        appendOneLine(code, into: &out)
        out.append(UInt8(ascii: " "))
        appendOneLine(message, into: &out)
        appendCRLF(into: &out)
    }

    /// A reservation: `id status expires_at_ms customer created_at_ms fully_shipped lines`, and
    /// `replayed 1` on a replay; each line `variant warehouse quantity fulfilled released backordered
    /// remaining`. A missing expiry is 0 and a missing customer empty text (SPEC §7.1).
    public static func append(reservation record: ReservationRecord, version: RESPVersion, into out: inout [UInt8]) {
        let r = record.reservation
        let customer = r.customer ?? ""
        var bound = 320 + r.id.utf8.count + customer.utf8.count
        for line in r.lines { bound += 256 + line.variant.utf8.count + line.warehouse.utf8.count }
        reserve(bound, in: &out)

        appendRecordHeader(fieldCount: record.replayed ? 8 : 7, version: version, into: &out)
        appendASCII("$2\r\nid\r\n", into: &out)
        appendBulk(r.id, into: &out)
        appendASCII("$6\r\nstatus\r\n", into: &out)
        appendStatus(r.status, into: &out)
        appendASCII("$13\r\nexpires_at_ms\r\n", into: &out)
        appendInteger(r.expiresAt?.milliseconds ?? 0, into: &out)
        appendASCII("$8\r\ncustomer\r\n", into: &out)
        appendBulk(customer, into: &out)
        appendASCII("$13\r\ncreated_at_ms\r\n", into: &out)
        appendInteger(r.createdAt.milliseconds, into: &out)
        appendASCII("$13\r\nfully_shipped\r\n", into: &out)
        appendASCII(r.isFullyShipped ? ":1\r\n" : ":0\r\n", into: &out)
        appendASCII("$5\r\nlines\r\n", into: &out)
        out.append(UInt8(ascii: "*"))
        appendDecimal(Int64(r.lines.count), into: &out)
        appendCRLF(into: &out)
        for line in r.lines {
            appendRecordHeader(fieldCount: 7, version: version, into: &out)
            appendASCII("$7\r\nvariant\r\n", into: &out)
            appendBulk(line.variant, into: &out)
            appendASCII("$9\r\nwarehouse\r\n", into: &out)
            appendBulk(line.warehouse, into: &out)
            appendASCII("$8\r\nquantity\r\n", into: &out)
            appendInteger(line.quantity.units, into: &out)
            appendASCII("$9\r\nfulfilled\r\n", into: &out)
            appendInteger(line.fulfilled.units, into: &out)
            appendASCII("$8\r\nreleased\r\n", into: &out)
            appendInteger(line.released.units, into: &out)
            appendASCII("$11\r\nbackordered\r\n", into: &out)
            appendInteger(line.backordered.units, into: &out)
            appendASCII("$9\r\nremaining\r\n", into: &out)
            appendInteger(line.remaining.units, into: &out)
        }
        if record.replayed { appendASCII("$8\r\nreplayed\r\n:1\r\n", into: &out) }
    }

    /// A cell: `variant warehouse on_hand reserved available` (STOCK variant warehouse).
    public static func append(cell: CellRecord, version: RESPVersion, into out: inout [UInt8]) {
        reserve(cellByteCountBound(cell), in: &out)
        appendRecordHeader(fieldCount: 5, version: version, into: &out)
        appendCellFields(cell, into: &out)
    }

    /// `STOCK variant`: the per-warehouse cells, then the totals (warehouse `*`) (SPEC §7.12).
    public static func append(_ stock: VariantStock, version: RESPVersion, into out: inout [UInt8]) {
        var bound = 8 + cellByteCountBound(stock.totals)
        for cell in stock.cells { bound += cellByteCountBound(cell) }
        reserve(bound, in: &out)
        out.append(UInt8(ascii: "*"))
        appendDecimal(Int64(stock.cells.count + 1), into: &out)
        appendCRLF(into: &out)
        for cell in stock.cells { append(cell: cell, version: version, into: &out) }
        append(cell: stock.totals, version: version, into: &out)
    }

    /// A cell after a physical change: the cell's fields, `seq`, `shortfall`, then `variance` for
    /// COUNT and `replayed 1` on a replay.
    static func append(_ receipt: CellReceipt, version: RESPVersion, into out: inout [UInt8]) {
        reserve(cellByteCountBound(receipt.cell), in: &out)
        var fieldCount = 7
        if receipt.variance != nil { fieldCount += 1 }
        if receipt.replayed { fieldCount += 1 }
        appendRecordHeader(fieldCount: fieldCount, version: version, into: &out)
        appendCellFields(receipt.cell, into: &out)
        appendASCII("$3\r\nseq\r\n", into: &out)
        appendInteger(Int64(clamping: receipt.seq), into: &out)
        appendASCII("$9\r\nshortfall\r\n", into: &out)
        appendInteger(receipt.shortfall.units, into: &out)
        if let variance = receipt.variance {
            appendASCII("$8\r\nvariance\r\n", into: &out)
            appendInteger(variance.units, into: &out)
        }
        if receipt.replayed { appendASCII("$8\r\nreplayed\r\n:1\r\n", into: &out) }
    }

    static func appendTransferSide(_ cell: CellRecord, seq: UInt64, replayed: Bool, version: RESPVersion, into out: inout [UInt8]) {
        appendRecordHeader(fieldCount: replayed ? 8 : 7, version: version, into: &out)
        appendCellFields(cell, into: &out)
        appendASCII("$3\r\nseq\r\n", into: &out)
        appendInteger(Int64(clamping: seq), into: &out)
        appendASCII("$9\r\nshortfall\r\n", into: &out)
        appendInteger((cell.reserved - cell.onHand).clampedAtZero.units, into: &out)
        if replayed { appendASCII("$8\r\nreplayed\r\n:1\r\n", into: &out) }
    }

    // MARK: - Pieces

    @inline(__always)
    static func appendCellFields(_ cell: CellRecord, into out: inout [UInt8]) {
        appendASCII("$7\r\nvariant\r\n", into: &out)
        appendBulk(cell.variant, into: &out)
        appendASCII("$9\r\nwarehouse\r\n", into: &out)
        appendBulk(cell.warehouse, into: &out)
        appendASCII("$7\r\non_hand\r\n", into: &out)
        appendInteger(cell.onHand.units, into: &out)
        appendASCII("$8\r\nreserved\r\n", into: &out)
        appendInteger(cell.reserved.units, into: &out)
        appendASCII("$9\r\navailable\r\n", into: &out)
        appendInteger(cell.available.units, into: &out)
    }

    /// At least the bytes of a cell receipt or transfer side: names and framing about 130 bytes,
    /// five integers of at most 23 bytes, two bulk headers of at most 10.
    static func cellByteCountBound(_ cell: CellRecord) -> Int {
        320 + cell.variant.utf8.count + cell.warehouse.utf8.count
    }

    /// Makes room for `byteCount` more bytes in one step, growing geometrically so that a buffer that
    /// takes many replies is reallocated O(log n) times (a plain `reserveCapacity` grows to the exact
    /// size asked, which would copy the buffer on every reply).
    @inline(__always)
    static func reserve(_ byteCount: Int, in out: inout [UInt8]) {
        let needed = out.count + byteCount
        if needed > out.capacity { out.reserveCapacity(Swift.max(needed, 2 * out.capacity)) }
    }

    /// RESP2 `*2n`, a flat array of name/value pairs; RESP3 `%n`, a map.
    @inline(__always)
    static func appendRecordHeader(fieldCount: Int, version: RESPVersion, into out: inout [UInt8]) {
        switch version {
        case .resp2:
            out.append(UInt8(ascii: "*"))
            appendDecimal(Int64(2 * fieldCount), into: &out)
        case .resp3:
            out.append(UInt8(ascii: "%"))
            appendDecimal(Int64(fieldCount), into: &out)
        }
        appendCRLF(into: &out)
    }

    /// The status as a bulk string, spelled as `ReservationStatus.rawValue` spells it.
    @inline(__always)
    static func appendStatus(_ status: ReservationStatus, into out: inout [UInt8]) {
        switch status {
        case .active: appendASCII("$6\r\nactive\r\n", into: &out)
        case .partiallyFulfilled: appendASCII("$19\r\npartially_fulfilled\r\n", into: &out)
        case .fulfilled: appendASCII("$9\r\nfulfilled\r\n", into: &out)
        case .released: appendASCII("$8\r\nreleased\r\n", into: &out)
        case .expired: appendASCII("$7\r\nexpired\r\n", into: &out)
        }
    }

    @inline(__always)
    static func appendBulk(_ text: String, into out: inout [UInt8]) {
        let utf8 = text.utf8
        out.append(UInt8(ascii: "$"))
        appendDecimal(Int64(utf8.count), into: &out)
        appendCRLF(into: &out)
        out.append(contentsOf: utf8)
        appendCRLF(into: &out)
    }

    @inline(__always)
    static func appendInteger(_ value: Int64, into out: inout [UInt8]) {
        out.append(UInt8(ascii: ":"))
        appendDecimal(value, into: &out)
        appendCRLF(into: &out)
    }

    /// The decimal digits of `value`, formed backwards in a buffer on the stack and copied in once.
    @inline(__always)
    static func appendDecimal(_ value: Int64, into out: inout [UInt8]) {
        if value >= 0 && value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value))
            return
        }
        // 20 digits hold the magnitude of Int64.min; one more for the sign.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { digits in
            var magnitude = value.magnitude
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude != 0
            if value < 0 {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// Bytes with CR and LF written as spaces (what `ReplyFrame.oneLine` and `ReplyEncoder` do to an
    /// error line).
    @inline(__always)
    static func appendOneLine(_ bytes: String.UTF8View, into out: inout [UInt8]) {
        if bytes.contains(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) {
            for byte in bytes { out.append(byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") ? UInt8(ascii: " ") : byte) }
        } else {
            out.append(contentsOf: bytes)
        }
    }

    @inline(__always)
    static func appendCRLF(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\r"))
        out.append(UInt8(ascii: "\n"))
    }

    @inline(__always)
    static func appendASCII(_ text: StaticString, into out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }
}
