// Builds segment bytes and reads them back the way recovery will: header, then records until the first
// answer that is not `valid`. The reading half is deliberately plain so that the tests judge the codec,
// not a second implementation of it.

import StockpileCore
@testable import StockpileWAL

enum TestSegments {
    static let salt: UInt32 = 0x5A17_5EED
    static let createdAt = Timestamp(milliseconds: 1_700_000_000_000)

    /// A record body to write.
    enum Item: Hashable {
        case commit(Commit)
        case keyUse(KeyUse)

        var body: WALRecord.Body {
            switch self {
            case .commit(let c): .commit(c)
            case .keyUse(let k): .keyUse(k)
            }
        }
    }

    /// A segment: header, the items as records from `firstLSN` on, then `zeros` bytes of preallocated space.
    static func segment(
        firstLSN: UInt64 = 1, salt: UInt32 = salt, items: [Item], zeros: Int = 0, version: UInt16 = SegmentHeader.formatVersion
    ) -> [UInt8] {
        var w = ByteWriter(capacity: 4096)
        SegmentHeader(salt: salt, firstLSN: firstLSN, createdAt: createdAt, version: version).encode(into: &w)
        // As the writer does: new one-line reservations as `reservation` records (version 3 on).
        var names = SegmentNames(createdAt: createdAt)
        for (i, item) in items.enumerated() {
            let lsn = firstLSN + UInt64(i)
            switch item {
            case .commit(let c) where version >= 3: RecordCodec.appendCommit(c, lsn: lsn, salt: salt, names: &names, into: &w)
            case .commit(let c): RecordCodec.appendCommit(c, lsn: lsn, salt: salt, into: &w)
            case .keyUse(let k): RecordCodec.appendKeyUse(k, lsn: lsn, salt: salt, into: &w)
            }
        }
        w.writeZeros(zeros)
        return w.bytes
    }

    struct Scan {
        var header: SegmentHeader
        var records: [WALRecord]
        var bodies: [WALRecord.Body]
        /// The first answer that was not a record whose payload decodes (`valid` here means the framing
        /// was valid but the payload was not).
        var end: RecordDecoding
        var endOffset: Int
        var payloadError: WALDecodingError?
    }

    enum ScanFailure: Error {
        case header(SegmentHeaderDamage)
    }

    /// Reads a segment front to back.
    static func scan(_ bytes: [UInt8]) throws(ScanFailure) -> Scan {
        let header: SegmentHeader
        do { header = try SegmentHeader.decode(bytes) } catch { throw .header(error) }
        var scan = Scan(header: header, records: [], bodies: [], end: .zero, endOffset: SegmentHeader.byteCount)
        var offset = SegmentHeader.byteCount
        var lsn = header.firstLSN
        var names = SegmentNames(createdAt: header.createdAt)
        while true {
            let answer = RecordCodec.decodeRecord(bytes, at: offset, salt: header.salt, expectedLSN: lsn)
            guard case .valid(let record) = answer else {
                scan.end = answer
                scan.endOffset = offset
                return scan
            }
            do throws(WALDecodingError) {
                scan.bodies.append(try RecordCodec.decodeBody(of: record, in: bytes, names: &names))
            } catch {
                scan.end = answer
                scan.endOffset = offset
                scan.payloadError = error
                return scan
            }
            scan.records.append(record)
            offset = record.endOffset
            lsn += 1
        }
    }

    /// Whether any record that passes the framing rules (LSN aside) starts after `offset`: what recovery
    /// asks to tell a torn tail from damage in the middle (FORMAT.md §5).
    static func anyValidRecord(in bytes: [UInt8], after offset: Int, salt: UInt32) -> Bool {
        var o = offset + 1
        while o < bytes.count {
            if case .valid = RecordCodec.decodeRecord(bytes, at: o, salt: salt, expectedLSN: nil) { return true }
            o += 1
        }
        return false
    }
}
