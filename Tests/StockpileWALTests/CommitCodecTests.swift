// The payload codec and the record framing of wal/FORMAT.md: every value round-trips, every byte string
// that decodes re-encodes to itself, and no damage — truncation, a flipped bit anywhere, garbage — is
// ever accepted as a different valid record or makes a decoder trap.

import StockpileCore
import Testing
@testable import StockpileWAL

@Suite struct CommitCodecTests {
    // MARK: Round trips

    @Test("every sample commit round-trips", arguments: CommitSamples.commits.indices)
    func sampleCommitRoundTrips(index: Int) throws {
        let commit = CommitSamples.commits[index]
        let bytes = CommitCodec.encode(commit)
        #expect(try CommitCodec.decodeCommit(bytes) == commit)
    }

    @Test("every sample key use round-trips", arguments: CommitSamples.keyUses.indices)
    func sampleKeyUseRoundTrips(index: Int) throws {
        let keyUse = CommitSamples.keyUses[index]
        var w = ByteWriter()
        CommitCodec.encode(keyUse, into: &w)
        let decoded = try ByteReader.withReader(over: w.bytes) { (r: inout ByteReader) throws(WALDecodingError) -> KeyUse in
            let k = try CommitCodec.decodeKeyUse(from: &r)
            try r.expectEnd()
            return k
        }
        #expect(decoded == keyUse)
    }

    @Test("every command case round-trips, keyed and unkeyed", arguments: CommitSamples.commands.indices)
    func commandRoundTrips(index: Int) throws {
        let command = CommitSamples.commands[index]
        var w = ByteWriter()
        w.write(command)
        let decoded = try ByteReader.withReader(over: w.bytes) { (r: inout ByteReader) throws(WALDecodingError) -> Command in
            let c = try r.readCommand()
            try r.expectEnd()
            return c
        }
        #expect(decoded == command)
    }

    @Test("the samples use every case of every encoded enum")
    func samplesCoverEveryCase() {
        let commits = CommitSamples.commits
        let entries = commits.flatMap(\.entries)
        #expect(Set(entries.map(\.type)) == Set(EntryType.allCases))
        #expect(Set(entries.compactMap(\.reason)) == Set(ReasonCode.allCases))
        let reservations = commits.compactMap(\.reservation)
        #expect(Set(reservations.map(\.status)) == Set(ReservationStatus.allCases))
        #expect(Set(reservations.map(\.fingerprint.strategy)) == Set(PlacementStrategy.allCases))
        #expect(Set(commits.map { shapeCode($0.replyShape) }) == Set(1...5))
        #expect(commits.contains { $0.replyShape == .cell(variance: nil) } && commits.contains { $0.replyShape == .cell(variance: -3) })
        #expect(Set(CommitSamples.keyUses.map { replyCode($0.reply) }) == Set(1...5))
        let commands = CommitSamples.commands + commits.compactMap(\.keyedCommand)
        #expect(Set(commands.map(commandCode)) == Set(1...13))
        let dispositions = commands.compactMap { c -> ReturnDisposition? in
            if case .returnStock(_, _, _, let d, _, _) = c { return d } else { return nil }
        }
        #expect(Set(dispositions) == [.restock, .damaged])
        #expect(Set(commits.map { $0.keyedCommand != nil }) == [true, false])
    }

    @Test("a reservation that shipped in part and then expired keeps that it ended by expiry; code 3 stays a plain fulfilled")
    func fulfilledEndedByExpiryRoundTrips() throws {
        var reservation = CommitSamples.hold
        reservation.lines[0].fulfilled = 1
        reservation.lines[0].released = 1
        reservation.lines[1].released = 1
        reservation.lines[2].released = 5
        reservation.settleStatus(at: CommitSamples.at(600), byExpiry: true)
        #expect(reservation.status == .fulfilled && reservation.endedByExpiry)

        func encoded(_ r: Reservation) -> [UInt8] {
            var w = ByteWriter()
            w.write(r)
            return w.bytes
        }
        func decoded(_ bytes: [UInt8]) throws -> Reservation {
            try ByteReader.withReader(over: bytes) { (r: inout ByteReader) throws(WALDecodingError) -> Reservation in
                let reservation = try r.readReservation()
                try r.expectEnd()
                return reservation
            }
        }
        // The status code follows the id and the lines; it is the only byte the two encodings differ in.
        var shippedAndReleased = reservation
        shippedAndReleased.settleStatus(at: CommitSamples.at(600), byExpiry: false)
        #expect(!shippedAndReleased.endedByExpiry)
        let byExpiry = encoded(reservation)
        let byRelease = encoded(shippedAndReleased)
        let differing = zip(byExpiry, byRelease).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(byExpiry.count == byRelease.count && differing.count == 1)
        #expect(differing.first.map { [$0.element.0, $0.element.1] } == [6, 3])
        #expect(try decoded(byExpiry) == reservation)
        #expect(try decoded(byRelease) == shippedAndReleased)
        #expect(try decoded(byRelease).endedByExpiry == false)
    }

    @Test("seeded random commits and key uses round-trip")
    func randomRoundTrips() throws {
        let seed = RandomCommits.seed(default: 0x57AC_C0DE)
        var random = RandomCommits(seed: seed)
        var w = ByteWriter(capacity: 1 << 16)
        for round in 0..<RandomCommits.count(default: 3000) {
            let commit = random.commit()
            w.reset()
            CommitCodec.encode(commit, into: &w)
            let decoded = try CommitCodec.decodeCommit(w.bytes)
            #expect(decoded == commit, "seed \(seed) round \(round)")

            let keyUse = random.keyUse()
            w.reset()
            CommitCodec.encode(keyUse, into: &w)
            let decodedKeyUse = try ByteReader.withReader(over: w.bytes) { (r: inout ByteReader) throws(WALDecodingError) -> KeyUse in
                try CommitCodec.decodeKeyUse(from: &r)
            }
            #expect(decodedKeyUse == keyUse, "seed \(seed) round \(round)")
        }
    }

    // MARK: Primitives

    @Test("varints round-trip at every width and are one to ten bytes")
    func varintWidths() throws {
        var values: [UInt64] = [0, 1, UInt64.max, UInt64.max - 1]
        for shift in stride(from: 7, through: 63, by: 7) {
            values += [(1 << UInt64(shift)) - 1, 1 << UInt64(shift), (1 << UInt64(shift)) + 1]
        }
        for v in values {
            var w = ByteWriter()
            w.writeVarint(v)
            let expectedWidth = v == 0 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7
            #expect(w.count == expectedWidth, "\(v)")
            let back = try ByteReader.withReader(over: w.bytes) { (r: inout ByteReader) throws(WALDecodingError) -> UInt64 in
                try r.readVarint()
            }
            #expect(back == v)
        }
        for v: Int64 in [0, 1, -1, 63, -64, 64, -65, .max, .min, .max - 1, .min + 1] {
            var w = ByteWriter()
            w.writeSignedVarint(v)
            let back = try ByteReader.withReader(over: w.bytes) { (r: inout ByteReader) throws(WALDecodingError) -> Int64 in
                try r.readSignedVarint()
            }
            #expect(back == v)
        }
        var w = ByteWriter()
        w.writeSignedVarint(-1)
        #expect(w.bytes == [0x01], "ZigZag maps -1 to 1")
    }

    /// Decodes `bytes` with `read`, expecting the failure `reason` at `offset`.
    func expectFailure<T>(
        _ bytes: [UInt8], at offset: Int, _ reason: WALDecodingError.Reason,
        _ read: (inout ByteReader) throws(WALDecodingError) -> T, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            let value = try ByteReader.withReader(over: bytes, read)
            Issue.record("decoded \(value) from \(bytes)", sourceLocation: sourceLocation)
        } catch {
            #expect(error == WALDecodingError(offset: offset, reason: reason), sourceLocation: sourceLocation)
        }
    }

    @Test("malformed primitives are refused with the offset where they start")
    func malformedPrimitives() {
        // Varints: redundant zero groups, more than 64 bits, cut short.
        expectFailure([0x80, 0x00], at: 0, .varintNotMinimal) { (r: inout ByteReader) throws(WALDecodingError) in try r.readVarint() }
        expectFailure([0xFF, 0x80, 0x00], at: 0, .varintNotMinimal) { (r: inout ByteReader) throws(WALDecodingError) in try r.readVarint() }
        expectFailure([UInt8](repeating: 0xFF, count: 9) + [0x02], at: 0, .varintOverflow) { (r: inout ByteReader) throws(WALDecodingError) in try r.readVarint() }
        expectFailure([UInt8](repeating: 0xFF, count: 10) + [0x01], at: 0, .varintOverflow) { (r: inout ByteReader) throws(WALDecodingError) in try r.readVarint() }
        expectFailure([0x05, 0x80, 0x80], at: 1, .truncated(needed: 3, remaining: 2)) { (r: inout ByteReader) throws(WALDecodingError) in
            _ = try r.readUInt8()
            return try r.readVarint()
        }
        // Bools, presence bytes and codes take only their listed values.
        expectFailure([0x02], at: 0, .invalidBool(2)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readBool() }
        expectFailure([0x01, 0xFF], at: 1, .invalidPresence(0xFF)) { (r: inout ByteReader) throws(WALDecodingError) in
            _ = try r.readPresence()
            return try r.readPresence()
        }
        expectFailure([0x00], at: 0, .unknownCode(table: "EntryType", code: 0)) { (r: inout ByteReader) throws(WALDecodingError) in
            try r.readCode("EntryType", EntryType.init(walCode:))
        }
        expectFailure([14], at: 0, .unknownCode(table: "Command", code: 14)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readCommand() }
        expectFailure([6], at: 0, .unknownCode(table: "Reply", code: 6)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readReply() }
        // Strings: a length past the end is refused before anything is allocated; bytes must be UTF-8.
        expectFailure([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41], at: 0, .countTooLarge(0xFFFF_FFFF)) { (r: inout ByteReader) throws(WALDecodingError) in
            try r.readString()
        }
        expectFailure([0x02, 0xC3, 0x28], at: 0, .invalidUTF8) { (r: inout ByteReader) throws(WALDecodingError) in try r.readString() }
        expectFailure([0x01, 0x80], at: 0, .invalidUTF8) { (r: inout ByteReader) throws(WALDecodingError) in try r.readString() }
        // A huge element count fails the same way, before `reserveCapacity`.
        var huge = ByteWriter()
        huge.writeSignedVarint(0)
        huge.writeVarint(UInt64.max)
        expectFailure(huge.bytes, at: 1, .countTooLarge(UInt64.max)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readCommit() }
        // Fixed widths cut short.
        expectFailure([1, 2, 3], at: 0, .truncated(needed: 4, remaining: 3)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readUInt32() }
        expectFailure([], at: 0, .truncated(needed: 1, remaining: 0)) { (r: inout ByteReader) throws(WALDecodingError) in try r.readUInt8() }
    }

    @Test("a duration not in canonical form is refused instead of trapping in Duration.components")
    func nonCanonicalDurations() {
        func encoded(_ seconds: Int64, _ attoseconds: Int64) -> [UInt8] {
            var w = ByteWriter()
            w.writeSignedVarint(seconds)
            w.writeSignedVarint(attoseconds)
            return w.bytes
        }
        let read = { (r: inout ByteReader) throws(WALDecodingError) -> Duration in try r.readDuration() }
        // (Int64.max s, Int64.max as) overflows the seconds of `components`: a trap if it were made a Duration.
        expectFailure(encoded(.max, .max), at: 0, .nonCanonical("duration (\(Int64.max) s, \(Int64.max) as)"), read)
        expectFailure(encoded(1, -1), at: 0, .nonCanonical("duration (1 s, -1 as)"), read)
        expectFailure(encoded(0, 1_000_000_000_000_000_000), at: 0, .nonCanonical("duration (0 s, 1000000000000000000 as)"), read)
        // The canonical forms of negative and fractional durations pass.
        for d in [Duration.milliseconds(-1500), .nanoseconds(-1), .seconds(Int64.min), Duration(secondsComponent: .max, attosecondsComponent: 999_999_999_999_999_999)] {
            let (s, a) = d.components
            #expect((try? ByteReader.withReader(over: encoded(s, a), read)) == d)
        }
    }

    @Test("a commit that could not form its reply, or a keyed command without a key, is refused")
    func inconsistentCommits() {
        let cases: [(Commit, String)] = [
            (Commit(time: CommitSamples.t0, entries: [], replyShape: .reservation), "reply shape reservation without what it replies with"),
            (Commit(time: CommitSamples.t0, entries: [], replyShape: .cell(variance: nil)), "reply shape cell(variance: nil) without what it replies with"),
            (Commit(time: CommitSamples.t0, entries: [CommitSamples.entry(1, CommitSamples.t0, .transfer)], replyShape: .transfer), "reply shape transfer without what it replies with"),
            (Commit(time: CommitSamples.t0, entries: [], replyShape: .warehouse), "reply shape warehouse without what it replies with"),
            (Commit(time: CommitSamples.t0, entries: [], replyShape: .policy), "reply shape policy without what it replies with"),
            (Commit(time: CommitSamples.t0, entries: [], warehouse: .main, replyShape: .warehouse, keyedCommand: .confirm(id: "x")), "a keyed command without a key"),
        ]
        for (commit, message) in cases {
            do {
                let decoded = try CommitCodec.decodeCommit(CommitCodec.encode(commit))
                Issue.record("accepted \(decoded)")
            } catch {
                #expect(error == WALDecodingError(offset: 0, reason: .inconsistent(message)))
            }
        }
    }

    @Test("bytes after a commit are refused")
    func trailingBytes() {
        let bytes = CommitCodec.encode(CommitSamples.commits[0]) + [0]
        #expect(throws: WALDecodingError(offset: bytes.count - 1, reason: .trailingBytes(1))) { try CommitCodec.decodeCommit(bytes) }
    }

    // MARK: Fuzzing the payload decoder (no CRC in the way)

    @Test("mutated payloads never trap, and whatever decodes re-encodes to the same bytes")
    func mutatedPayloads() {
        let seed = RandomCommits.seed(default: 0xF022)
        var random = RandomCommits(seed: seed)
        var decodedCount = 0
        let rounds = RandomCommits.count(default: 3000) * 4
        for round in 0..<rounds {
            var bytes = CommitCodec.encode(round % 2 == 0 ? random.commit() : CommitSamples.commits[round % CommitSamples.commits.count])
            // A few random edits: overwrite, insert, delete, or cut.
            for _ in 0..<random.int(1...3) {
                guard !bytes.isEmpty else { break }
                let i = random.int(0...bytes.count - 1)
                switch random.int(0...3) {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: random.rng.next())
                case 1: bytes.insert(UInt8(truncatingIfNeeded: random.rng.next()), at: i)
                case 2: bytes.remove(at: i)
                default: bytes.removeLast(random.int(0...bytes.count - i - 1))
                }
            }
            if let commit = try? CommitCodec.decodeCommit(bytes) {
                decodedCount += 1
                #expect(CommitCodec.encode(commit) == bytes, "seed \(seed) round \(round): decoded bytes must be the one encoding of their value")
            }
        }
        // Some edits land in free text or a quantity and still decode; if none did, the canonical check above ran on nothing.
        #expect(decodedCount > 0, "seed \(seed)")
    }

    @Test("random garbage never traps the payload decoders")
    func garbagePayloads() {
        let seed = RandomCommits.seed(default: 0x6A4B)
        var rng = SplitMix64(seed: seed)
        for _ in 0..<RandomCommits.count(default: 3000) * 4 {
            let bytes = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if let commit = try? CommitCodec.decodeCommit(bytes) {
                #expect(CommitCodec.encode(commit) == bytes, "seed \(seed)")
            }
            _ = try? ByteReader.withReader(over: bytes) { (r: inout ByteReader) throws(WALDecodingError) in try r.readKeyUse() }
            _ = try? ByteReader.withReader(over: bytes) { (r: inout ByteReader) throws(WALDecodingError) in try r.readCommand() }
            _ = try? ByteReader.withReader(over: bytes) { (r: inout ByteReader) throws(WALDecodingError) in try r.readReservation() }
        }
    }

    // MARK: Record framing

    static var sampleLog: [UInt8] {
        let items: [TestSegments.Item] = [
            .commit(CommitSamples.commits[0]), .commit(CommitSamples.commits[1]), .keyUse(CommitSamples.keyUses[0]),
            .commit(CommitSamples.commits[24]),
        ]
        return TestSegments.segment(firstLSN: 7, items: items, zeros: 32)
    }

    @Test("a record reads back as written, with its LSN, type, salt and payload")
    func recordRoundTrip() throws {
        let log = Self.sampleLog
        let scan = try TestSegments.scan(log)
        #expect(scan.records.map(\.lsn) == [7, 8, 9, 10])
        #expect(scan.records.map(\.type) == [.commit, .commit, .keyUse, .commit])
        #expect(scan.bodies == [
            .commit(CommitSamples.commits[0]), .commit(CommitSamples.commits[1]), .keyUse(CommitSamples.keyUses[0]),
            .commit(CommitSamples.commits[24]),
        ])
        #expect(scan.end == .zero)
        #expect(scan.endOffset == log.count - 32)
        // The header as FORMAT.md §2.2 lays it out.
        let first = scan.records[0]
        #expect(first.offset == SegmentHeader.byteCount)
        let h = Array(log[first.offset..<first.offset + 24])
        #expect(h[4..<8].elementsEqual(withUnsafeBytes(of: UInt32(first.payloadByteCount).littleEndian, Array.init)))
        #expect(h[8..<16].elementsEqual(withUnsafeBytes(of: UInt64(7).littleEndian, Array.init)))
        #expect(h[16..<20].elementsEqual(withUnsafeBytes(of: TestSegments.salt.littleEndian, Array.init)))
        #expect(h[20] == 1 && h[21] == 0 && h[22] == 0 && h[23] == 0)
        #expect(h[0..<4].elementsEqual(withUnsafeBytes(of: CRC32C.checksum(Array(log[first.offset + 4..<first.endOffset])).littleEndian, Array.init)))
    }

    @Test("every truncation of a record is torn, never valid")
    func truncations() {
        var commitRecord = ByteWriter()
        RecordCodec.appendCommit(CommitSamples.commits[4], lsn: 1, salt: 9, into: &commitRecord)
        var keyUseRecord = ByteWriter()
        RecordCodec.appendKeyUse(CommitSamples.keyUses[2], lsn: 1, salt: 9, into: &keyUseRecord)
        for (record, type) in [(commitRecord.bytes, WALRecordType.commit), (keyUseRecord.bytes, .keyUse)] {
            #expect(RecordCodec.decodeRecord(record, at: 0, salt: 9, expectedLSN: 1) == .valid(WALRecord(lsn: 1, type: type, offset: 0, payloadByteCount: record.count - 24)))
            for length in 0..<record.count {
                let prefix = Array(record[0..<length])
                let answer = RecordCodec.decodeRecord(prefix, at: 0, salt: 9, expectedLSN: 1)
                let expected: RecordDecoding = prefix.allSatisfy { $0 == 0 } ? .zero : .torn
                #expect(answer == expected, "cut at \(length) of \(record.count)")
            }
        }
    }

    @Test("every truncation of a log keeps the whole records before the cut and accepts nothing else")
    func logTruncations() throws {
        let log = Self.sampleLog
        let full = try TestSegments.scan(log)
        for length in SegmentHeader.byteCount..<log.count {
            let scan = try TestSegments.scan(Array(log[0..<length]))
            let whole = full.records.filter { $0.endOffset <= length }
            #expect(scan.records == whole, "cut at \(length)")
            #expect(scan.bodies == Array(full.bodies.prefix(whole.count)))
            #expect(scan.payloadError == nil)
            let cutInsideRecord = full.records.contains { $0.offset < length && length < $0.endOffset }
            #expect(scan.end == (cutInsideRecord ? .torn : .zero), "cut at \(length)")
        }
    }

    @Test("a flipped bit in any byte of a small log is detected, and no record after it is accepted")
    func bitFlips() throws {
        let log = Self.sampleLog
        let full = try TestSegments.scan(log)
        for i in log.indices {
            for bit in 0..<8 {
                var damaged = log
                damaged[i] ^= 1 << bit
                let scan: TestSegments.Scan
                do {
                    scan = try TestSegments.scan(damaged)
                } catch {
                    #expect(i < SegmentHeader.byteCount, "the header was refused for a flip at \(i) outside it")
                    continue
                }
                #expect(i >= SegmentHeader.byteCount, "a flip at \(i) in the header went unnoticed")
                // The records wholly before the flipped byte are read as they were; the one holding it is
                // refused, and so the scan stops there.
                let before = full.records.filter { $0.endOffset <= i }
                #expect(scan.records == before, "flip at byte \(i) bit \(bit)")
                #expect(scan.bodies == Array(full.bodies.prefix(before.count)), "flip at byte \(i) bit \(bit)")
                #expect(scan.payloadError == nil)
                if case .valid = scan.end { Issue.record("a damaged record passed the framing: byte \(i) bit \(bit)") }
                if scan.end == .zero {
                    // Only a flip in the preallocated zeros beyond the next header's 24 bytes looks like the end.
                    #expect(i >= log.count - 32 + WALRecord.headerByteCount, "flip at byte \(i) bit \(bit) read as the end of the log")
                }
                #expect(scan.endOffset == before.last?.endOffset ?? SegmentHeader.byteCount, "flip at byte \(i) bit \(bit)")
            }
        }
    }

    @Test("random garbage is never a valid record, whatever its length, even with a plausible header")
    func garbageRecords() {
        let seed = RandomCommits.seed(default: 0x6A4C)
        var rng = SplitMix64(seed: seed)
        for round in 0..<RandomCommits.count(default: 3000) * 4 {
            var bytes = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0 && bytes.count >= 24 {
                // A header that passes every check but the CRC: length in range, this salt, the due LSN, a known type.
                let length = UInt32(bytes.count - 24)
                bytes.replaceSubrange(4..<24, with: header(length: max(length, 1), lsn: 5, salt: 77, type: 1)[4..<24])
            }
            let answer = RecordCodec.decodeRecord(bytes, at: 0, salt: 77, expectedLSN: 5)
            if case .valid = answer { Issue.record("seed \(seed) round \(round): garbage accepted") }
            if answer == .zero { #expect(bytes.prefix(24).allSatisfy { $0 == 0 }) }
        }
    }

    func header(length: UInt32, lsn: UInt64, salt: UInt32, type: UInt8, reserved: UInt8 = 0) -> [UInt8] {
        var w = ByteWriter()
        w.writeUInt32(0)
        w.writeUInt32(length)
        w.writeUInt64(lsn)
        w.writeUInt32(salt)
        w.writeUInt8(type)
        w.writeUInt8(reserved)
        w.writeUInt16(0)
        return w.bytes
    }

    /// A record with a correct CRC over whatever header fields it is given.
    func sealed(_ header: [UInt8], payload: [UInt8]) -> [UInt8] {
        var bytes = header + payload
        let crc = CRC32C.checksum(Array(bytes[4...]))
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
        return bytes
    }

    @Test("a record whose CRC matches is still corrupt with another salt, LSN, type or reserved bytes")
    func checkedAfterTheCRC() {
        let payload = CommitCodec.encode(CommitSamples.commits[0])
        let n = UInt32(payload.count)
        let good = sealed(header(length: n, lsn: 5, salt: 77, type: 1), payload: payload)
        #expect(RecordCodec.decodeRecord(good, at: 0, salt: 77, expectedLSN: 5) == .valid(WALRecord(lsn: 5, type: .commit, offset: 0, payloadByteCount: payload.count)))
        #expect(RecordCodec.decodeRecord(good, at: 0, salt: 77, expectedLSN: nil) == .valid(WALRecord(lsn: 5, type: .commit, offset: 0, payloadByteCount: payload.count)))
        #expect(RecordCodec.decodeRecord(good, at: 0, salt: 78, expectedLSN: 5) == .corrupt(.saltMismatch(found: 77, expected: 78)))
        #expect(RecordCodec.decodeRecord(good, at: 0, salt: 77, expectedLSN: 6) == .corrupt(.lsnOutOfSequence(found: 5, expected: 6)))
        let type3 = sealed(header(length: n, lsn: 5, salt: 77, type: 3), payload: payload)
        #expect(RecordCodec.decodeRecord(type3, at: 0, salt: 77, expectedLSN: 5) == .corrupt(.unknownType(3)))
        let type0 = sealed(header(length: n, lsn: 5, salt: 77, type: 0), payload: payload)
        #expect(RecordCodec.decodeRecord(type0, at: 0, salt: 77, expectedLSN: 5) == .corrupt(.unknownType(0)))
        let reserved = sealed(header(length: n, lsn: 5, salt: 77, type: 1, reserved: 1), payload: payload)
        #expect(RecordCodec.decodeRecord(reserved, at: 0, salt: 77, expectedLSN: 5) == .corrupt(.reservedNotZero))
        for damage in [RecordDamage.saltMismatch(found: 1, expected: 2), .lsnOutOfSequence(found: 1, expected: 2), .unknownType(3), .reservedNotZero] {
            #expect(!damage.couldBeTornWrite, "\(damage)")
        }
    }

    @Test("lengths outside 1 ... 16 MiB are corrupt; a length past the end of the bytes is torn")
    func lengths() {
        let zeroLength = sealed(header(length: 0, lsn: 1, salt: 1, type: 1), payload: [])
        #expect(RecordCodec.decodeRecord(zeroLength, at: 0, salt: 1, expectedLSN: 1) == .corrupt(.lengthOutOfRange(0)))
        let tooLong = header(length: UInt32(WALRecord.payloadByteCountMax + 1), lsn: 1, salt: 1, type: 1)
        #expect(RecordCodec.decodeRecord(tooLong, at: 0, salt: 1, expectedLSN: 1) == .corrupt(.lengthOutOfRange(UInt32(WALRecord.payloadByteCountMax + 1))))
        let longest = header(length: UInt32(WALRecord.payloadByteCountMax), lsn: 1, salt: 1, type: 1)
        #expect(RecordCodec.decodeRecord(longest, at: 0, salt: 1, expectedLSN: 1) == .torn)
        #expect(RecordDamage.lengthOutOfRange(0).couldBeTornWrite && RecordDamage.checksumMismatch(stored: 0, computed: 1).couldBeTornWrite)
    }

    @Test("zeros, or no bytes at all, are the end of the log")
    func zerosAreTheEnd() {
        let bytes = [UInt8](repeating: 0, count: 100)
        for offset in [0, 50, 76, 90, 99, 100] {
            #expect(RecordCodec.decodeRecord(bytes, at: offset, salt: 1, expectedLSN: 1) == .zero, "offset \(offset)")
        }
        var oneByte = bytes
        oneByte[95] = 1
        #expect(RecordCodec.decodeRecord(oneByte, at: 90, salt: 1, expectedLSN: 1) == .torn)
        #expect(RecordCodec.decodeRecord(oneByte, at: 60, salt: 1, expectedLSN: 1) == .zero, "a byte beyond the header's 24 is not looked at")
    }

    @Test("a payload that passes the CRC but does not decode is reported with its file offset")
    func undecodablePayload() throws {
        var w = ByteWriter()
        SegmentHeader(salt: 3, firstLSN: 1, createdAt: CommitSamples.t0).encode(into: &w)
        RecordCodec.encodeRecord(lsn: 1, type: .commit, salt: 3, payload: [0x00, 0x00, 0x00, 0x00, 0x00, 0x09], into: &w)
        let scan = try TestSegments.scan(w.bytes)
        #expect(scan.records.isEmpty)
        // time 0, no entries, no reservation, warehouse or policy; then 9 is no reply shape, at byte 5 of the payload.
        #expect(scan.payloadError == WALDecodingError(offset: 40 + 24 + 5, reason: .unknownCode(table: "ReplyShape", code: 9)))
    }

    // MARK: Segment header

    @Test("a segment header round-trips, and its file name states its first LSN")
    func segmentHeader() throws {
        let header = SegmentHeader(salt: 0xDEAD_BEEF, firstLSN: 0x1234_5678_9ABC, createdAt: Timestamp(milliseconds: -5))
        var w = ByteWriter()
        header.encode(into: &w)
        #expect(w.count == 40)
        #expect(Array(w.bytes[0..<8]) == [0x89, 0x53, 0x50, 0x57, 0x41, 0x4C, 0x0D, 0x0A])
        #expect(try SegmentHeader.decode(w.bytes) == header)
        #expect(SegmentHeader.fileName(firstLSN: 1) == "wal-0000000000000001.log")
        #expect(SegmentHeader.fileName(firstLSN: .max) == "wal-ffffffffffffffff.log")
        for lsn: UInt64 in [1, 0xABC, .max] {
            #expect(SegmentHeader.firstLSN(fromFileName: SegmentHeader.fileName(firstLSN: lsn)) == lsn)
        }
        for name in ["wal-000000000000000A.log", "wal-1.log", "wal-00000000000000001.log", "snap-0000000000000001.log", "wal-000000000000000g.log", "wal-0000000000000001.lo"] {
            #expect(SegmentHeader.firstLSN(fromFileName: name) == nil, "\(name)")
        }
    }

    @Test("a damaged segment header names what is wrong")
    func damagedSegmentHeader() {
        var w = ByteWriter()
        SegmentHeader(salt: 1, firstLSN: 1, createdAt: CommitSamples.t0).encode(into: &w)
        let good = w.bytes
        func damaged(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = good
            edit(&b)
            return b
        }
        #expect(throws: SegmentHeaderDamage.truncated(byteCount: 39)) { try SegmentHeader.decode(Array(good[0..<39])) }
        #expect(throws: SegmentHeaderDamage.badMagic) { try SegmentHeader.decode(damaged { $0[0] = 0x53 }) }
        #expect(throws: SegmentHeaderDamage.unsupportedVersion(4)) { try SegmentHeader.decode(damaged { $0[8] = 4 }) }
        #expect(throws: SegmentHeaderDamage.unsupportedVersion(0)) { try SegmentHeader.decode(damaged { $0[8] = 0 }) }
        #expect(throws: SegmentHeaderDamage.badHeaderByteCount(41)) { try SegmentHeader.decode(damaged { $0[10] = 41 }) }
        #expect(throws: SegmentHeaderDamage.self) { try SegmentHeader.decode(damaged { $0[20] ^= 4 }) }
        // Each check that follows the CRC, with the CRC made to match.
        func resealed(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = damaged(edit)
            let crc = CRC32C.checksum(Array(b[0..<36]))
            withUnsafeBytes(of: crc.littleEndian) { b.replaceSubrange(36..<40, with: $0) }
            return b
        }
        #expect(throws: SegmentHeaderDamage.reservedNotZero) { try SegmentHeader.decode(resealed { $0[33] = 1 }) }
        #expect(throws: SegmentHeaderDamage.firstLSNZero) { try SegmentHeader.decode(resealed { $0[16] = 0 }) }
    }
}

// Codes as FORMAT.md §3.7 lists them, for the coverage test.
private func shapeCode(_ s: ReplyShape) -> Int {
    switch s {
    case .reservation: 1
    case .cell: 2
    case .transfer: 3
    case .warehouse: 4
    case .policy: 5
    }
}

private func replyCode(_ r: Reply) -> Int {
    switch r {
    case .reservation: 1
    case .cell: 2
    case .transfer: 3
    case .warehouse: 4
    case .policy: 5
    }
}

private func commandCode(_ c: Command) -> Int {
    var w = ByteWriter()
    w.write(c)
    return Int(w.bytes[0])
}
