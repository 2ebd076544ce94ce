// Turns a connection's bytes into requests, each a list of arguments, as Redis frames them
// (networking.c processMultibulkBuffer and processInlineBuffer, sds.c sdssplitargs). Bytes may arrive
// split anywhere: the same bytes give the same requests, or the same error, however they are split.
// It keeps true that no request over `ProtocolLimits.requestByteCountMax` bytes (framing included)
// or with more than `argumentCountMax` arguments is ever returned or buffered whole, that a byte is
// scanned a bounded number of times however the stream is split, and that no input traps.
//
// Framing, as the server reads it:
//
//   request   = multibulk | inline
//   multibulk = "*" count CRLF ( "$" length CRLF <length bytes> CRLF ){count}
//   inline    = any first byte but "*", up to LF (an optional CR before the LF is dropped)
//
// `count` and `length` are decimal as Redis's string2ll reads them: an optional `-`, no `+`, no
// leading zero. A count of zero or less is no request and is skipped; an empty inline line is
// ignored. Inline words are separated by blanks; `"…"` groups a word and understands `\" \\ \n \r
// \t \b \a \xHH`, `'…'` groups a word and understands `\'` only, and a closing quote must be followed
// by a blank or the end of the line.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct RequestParser: Sendable {
    public let limits: ProtocolLimits

    /// Received bytes. Those before `readIndex` are consumed and wait for `compact()`.
    private var buffer: [UInt8] = []
    private var readIndex = 0

    // A multibulk request in progress. Its header and each finished argument are consumed from the
    // buffer as soon as they are complete, so a request that arrives one byte at a time is never
    // scanned again from its start.

    /// The bytes of the arguments read so far, back to back, and where each ends in it.
    private var argumentBytes: [UInt8] = []
    private var argumentEnds: [Int] = []

    // Requests finished but not yet handed out, packed as `ArgumentList` regions. The scratch
    // arrays are kept from batch to batch. A batch takes one array of bytes its requests share, and
    // the list of them; handed back when the batch is done (`recycle`), both serve a later batch, so
    // a connection's batches of ordinary size allocate neither in steady state. What is kept for the
    // next batch is small (`retainedSpareByteCountMax`, `retainedRequestCountMax`), since an idle
    // connection keeps it.

    /// The regions of the finished requests (see ArgumentList.swift).
    private var packed: [UInt8] = []
    /// A batch's bytes and list, handed back empty for a later batch (`recycle`).
    private var sparePacked: [UInt8]?
    private var spareList: [ArgumentList]?
    /// Where each finished request's region starts in `packed`, and its argument count.
    private var regions: [(base: Int, count: Int)] = []
    /// Arguments still expected; 0 when no multibulk request is in progress.
    private var argumentsRemaining = 0
    /// The length of the argument whose `$` line has been read, or -1 when a `$` line comes next.
    private var bulkByteCount = -1
    /// Bytes of the request in progress consumed so far, framing included.
    private var requestByteCount = 0

    /// Where the search for the LF that ends an inline line resumes (an absolute index into
    /// `buffer`; values below `readIndex` are stale and mean "from `readIndex`").
    private(set) var inlineScanIndex = 0

    /// A `*` or `$` line holds at most a sign and 19 digits; anything longer without its CRLF is
    /// junk, and waiting for the request limit would let a client park 64 KiB for nothing.
    static let headerLineByteCountMax = 32
    /// The consumed prefix is dropped once it is at least this large and at least as large as what
    /// is left, so compaction moves each byte a bounded number of times.
    static let compactionByteCountMin = 16 * 1024
    /// An emptied buffer keeps its storage up to this size, so a quiet connection does not keep
    /// the memory of the largest request it ever sent.
    static let retainedCapacityMax = 128 * 1024
    /// The argument scratch keeps its storage up to this size: enough for ordinary requests, while a
    /// connection that once sent a large one does not keep that memory.
    static let retainedArgumentCapacityMax = 16 * 1024

    public init(limits: ProtocolLimits = ProtocolLimits()) {
        self.limits = limits
    }

    /// Bytes received but not yet consumed. The header and finished arguments of a multibulk
    /// request in progress are consumed already.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds received bytes. Amortized O(bytes.count).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        bytes.withMemoryRebound(to: UInt8.self) { buffer.append(contentsOf: $0) }
    }

    /// Adds received bytes. Amortized O(bytes.count).
    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Up to `max` complete requests, each as its arguments (at least one), and the framing error
    /// that stopped them if one did: the requests before the error are returned with it. Bytes that
    /// arrived since the last call are scanned about once; the requests' argument bytes are copied
    /// into one array they share.
    ///
    /// After an error (see the file header) the parser is in an unspecified state; the connection
    /// is to be closed.
    public mutating func nextRequests(max: Int) -> (requests: [ArgumentList], error: ProtocolError?) {
        var error: ProtocolError?
        while regions.count < max {
            do {
                guard try parseNext() else { break }
                checkInvariants()
            } catch let e {
                error = e
                break
            }
        }
        guard !regions.isEmpty else { return ([], error) }
        // The requests take the packed bytes as they are (no copy); the next batch packs into bytes
        // an earlier batch handed back, or a new array of about this one's size, up to the limit kept
        // between batches.
        let storage = packed
        if let spare = sparePacked.take() {
            packed = spare
        } else {
            packed = []
            packed.reserveCapacity(Swift.min(storage.count, Self.retainedArgumentCapacityMax))
        }
        var requests = spareList.take() ?? []
        requests.reserveCapacity(regions.count)
        for region in regions { requests.append(ArgumentList(storage: storage, base: region.base, count: region.count)) }
        regions.removeAll(keepingCapacity: true)  // at most `max` entries, a batch's
        return (requests, error)
    }

    /// Takes back a batch's requests once it is done with them: their list and the bytes they share
    /// serve a later batch instead of new arrays (emptied in place when nothing else holds them, as
    /// when the caller handed over the only reference; a copy otherwise, as a new array would be).
    /// Either is let go when it is larger than what is kept between batches.
    public mutating func recycle(_ requests: consuming [ArgumentList]) {
        var storage = requests.first?.sharedStorage
        guard requests.capacity <= Self.retainedRequestCountMax else { return }
        requests.removeAll(keepingCapacity: true)
        spareList = requests
        guard var bytes = storage.take(), bytes.capacity <= Self.retainedSpareByteCountMax else { return }
        bytes.removeAll(keepingCapacity: true)
        sparePacked = bytes
    }

    /// The longest list of requests, and the most bytes of a batch's requests, kept for the next
    /// batch: a pipeline of 64 ordinary requests.
    static let retainedRequestCountMax = 64
    static let retainedSpareByteCountMax = 4096

    /// The next complete request as its arguments (at least one), or nil when more bytes are needed.
    ///
    /// - Throws: `ProtocolError` when the bytes are not a request (see the file header). The
    ///   parser is then in an unspecified state; the connection is to be closed.
    public mutating func nextRequest() throws(ProtocolError) -> ArgumentList? {
        let (requests, error) = nextRequests(max: 1)
        if let request = requests.first { return request }
        if let error { throw error }
        return nil
    }

    /// `nextRequest()` with each argument as its own array (tests, tools).
    public mutating func next() throws(ProtocolError) -> [[UInt8]]? {
        try nextRequest()?.words
    }

    // MARK: - Requests

    /// Reads the next complete request into `packed`: true when one was read, false when more
    /// bytes are needed.
    private mutating func parseNext() throws(ProtocolError) -> Bool {
        while true {
            if argumentsRemaining == 0 {
                guard readIndex < buffer.count else { return false }
                if buffer[readIndex] != UInt8(ascii: "*") {
                    guard let words = try nextInline() else { return false }
                    if words.isEmpty { continue }
                    let base = ArgumentList.pack(count: words.count, into: &packed) { next in
                        for word in words { word.withUnsafeBufferPointer { next($0) } }
                    }
                    regions.append((base, words.count))
                    return true
                }
                let start = readIndex
                let header = try buffer.withUnsafeBufferPointer { (bytes) throws(ProtocolError) in
                    try Self.headerLine(bytes, at: start, tooLong: .multibulkCountTooLong, invalid: .invalidMultibulkLength)
                }
                guard let header else { return false }
                readIndex += header.byteCount
                if header.value <= 0 { continue }
                guard header.value <= limits.argumentCountMax else {
                    throw .tooManyArguments(limit: limits.argumentCountMax)
                }
                argumentsRemaining = header.value
                requestByteCount = header.byteCount
                argumentEnds.reserveCapacity(header.value)
            }
            return try continueMultibulk()
        }
    }

    /// Reads as many arguments of the multibulk request in progress as the buffer holds, and packs
    /// the request once its last argument is in: true then, otherwise false.
    private mutating func continueMultibulk() throws(ProtocolError) -> Bool {
        // A second reference to the storage (not a copy: nothing writes to it meanwhile) lets the
        // loop read the bytes through a pointer while it updates the other fields.
        let storage = buffer
        let isComplete = try storage.withUnsafeBufferPointer { (bytes) throws(ProtocolError) -> Bool in
            try readArguments(bytes)
        }
        guard isComplete else { return false }
        argumentBytes.withUnsafeBufferPointer { bytes in
            let base = ArgumentList.pack(count: argumentEnds.count, into: &packed) { next in
                var start = 0
                for end in argumentEnds {
                    next(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                    start = end
                }
            }
            regions.append((base, argumentEnds.count))
        }
        let keepsCapacity = argumentBytes.capacity <= Self.retainedArgumentCapacityMax
        argumentBytes.removeAll(keepingCapacity: keepsCapacity)
        argumentEnds.removeAll(keepingCapacity: keepsCapacity)
        requestByteCount = 0
        return true
    }

    /// Reads whole arguments from `bytes` (the buffer's storage): true once the last one is in.
    private mutating func readArguments(_ bytes: UnsafeBufferPointer<UInt8>) throws(ProtocolError) -> Bool {
        while argumentsRemaining > 0 {
            if bulkByteCount < 0 {
                guard readIndex < bytes.count else { return false }
                // Redis checks the `$` only once the whole line is in; checking the first byte at
                // once gives the same error sooner.
                let marker = bytes[readIndex]
                guard marker == UInt8(ascii: "$") else { throw .expectedDollar(got: marker) }
                guard
                    let header = try Self.headerLine(
                        bytes, at: readIndex, tooLong: .bulkCountTooLong, invalid: .invalidBulkLength)
                else { return false }
                guard header.value >= 0, header.value <= limits.requestByteCountMax else {
                    throw .invalidBulkLength
                }
                guard requestByteCount + header.byteCount + header.value + 2 <= limits.requestByteCountMax else {
                    throw .requestTooLarge(limit: limits.requestByteCountMax)
                }
                readIndex += header.byteCount
                requestByteCount += header.byteCount
                bulkByteCount = header.value
            }
            // Redis skips the two bytes after a bulk unread; a client that miscounted a length
            // would then be misread silently, so they must be CRLF here.
            let available = bytes.count - readIndex
            let payloadEnd = readIndex + bulkByteCount
            if available > bulkByteCount {
                guard bytes[payloadEnd] == UInt8(ascii: "\r") else { throw .missingCRLFAfterBulk }
                if available > bulkByteCount + 1 {
                    guard bytes[payloadEnd + 1] == UInt8(ascii: "\n") else { throw .missingCRLFAfterBulk }
                }
            }
            guard available >= bulkByteCount + 2 else { return false }
            argumentBytes.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[readIndex..<payloadEnd]))
            argumentEnds.append(argumentBytes.count)
            readIndex = payloadEnd + 2
            requestByteCount += bulkByteCount + 2
            bulkByteCount = -1
            argumentsRemaining -= 1
        }
        return true
    }

    /// The number on the `*` or `$` line at `start` and the line's length with its CRLF, or nil
    /// while the line is incomplete. Consumes nothing; an incomplete line is at most
    /// `headerLineByteCountMax` bytes, so scanning it again is cheap.
    private static func headerLine(
        _ bytes: UnsafeBufferPointer<UInt8>, at start: Int, tooLong: ProtocolError, invalid: ProtocolError
    ) throws(ProtocolError) -> (value: Int, byteCount: Int)? {
        let scanEnd = min(bytes.count, start + headerLineByteCountMax + 1)
        var lineEnd = start + 1
        while lineEnd < scanEnd, bytes[lineEnd] != UInt8(ascii: "\r"), bytes[lineEnd] != UInt8(ascii: "\n") {
            lineEnd += 1
        }
        if lineEnd == scanEnd {
            if bytes.count - start > headerLineByteCountMax { throw tooLong }
            return nil
        }
        // A bare LF, or a CR followed by anything but LF, is junk where the number ends.
        guard bytes[lineEnd] == UInt8(ascii: "\r") else { throw invalid }
        guard lineEnd + 1 < bytes.count else { return nil }
        guard bytes[lineEnd + 1] == UInt8(ascii: "\n") else { throw invalid }
        guard let value = decimal(bytes[(start + 1)..<lineEnd]) else { throw invalid }
        return (value, lineEnd + 2 - start)
    }

    /// A decimal as Redis's string2ll reads it: an optional `-`, then `0` alone or a non-zero digit
    /// and more digits, within Int's range. Nil for anything else.
    static func decimal(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
        var index = digits.startIndex
        guard index < digits.endIndex else { return nil }
        let isNegative = digits[index] == UInt8(ascii: "-")
        if isNegative { index += 1 }
        guard index < digits.endIndex else { return nil }
        if digits[index] == UInt8(ascii: "0") {
            return index + 1 == digits.endIndex && !isNegative ? 0 : nil
        }
        let magnitudeMax = isNegative ? UInt64(Int.max) + 1 : UInt64(Int.max)
        var magnitude: UInt64 = 0
        while index < digits.endIndex {
            let digit = digits[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            guard !overflow, times10 <= magnitudeMax - UInt64(digit) else { return nil }
            magnitude = times10 + UInt64(digit)
            index += 1
        }
        return isNegative ? Int(truncatingIfNeeded: 0 &- magnitude) : Int(magnitude)
    }

    // MARK: - Inline requests

    /// The words of the inline line at `readIndex` (empty for a blank line), or nil while its LF has
    /// not arrived. The search for the LF resumes where the previous call stopped.
    private mutating func nextInline() throws(ProtocolError) -> [[UInt8]]? {
        let searchEnd = min(buffer.count, readIndex + limits.requestByteCountMax)
        let searchStart = max(inlineScanIndex, readIndex)
        let newline: Int? = buffer.withUnsafeBufferPointer { bytes in
            guard searchStart < searchEnd, let base = bytes.baseAddress else { return nil }
            guard let hit = memchr(base + searchStart, Int32(UInt8(ascii: "\n")), searchEnd - searchStart) else {
                return nil
            }
            return UnsafeRawPointer(hit) - UnsafeRawPointer(base)
        }
        guard let newline else {
            // The whole line, LF included, must fit in the limit: a full limit's worth of bytes
            // without a LF can only become a longer line.
            if buffer.count - readIndex >= limits.requestByteCountMax { throw .inlineRequestTooLong }
            inlineScanIndex = searchEnd
            return nil
        }
        var lineEnd = newline
        if lineEnd > readIndex && buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
        let argumentCountMax = limits.argumentCountMax
        let lineStart = readIndex
        let words = buffer.withUnsafeBufferPointer { bytes in
            Self.splitInline(bytes, lineStart..<lineEnd, argumentCountMax: argumentCountMax)
        }
        readIndex = newline + 1
        inlineScanIndex = readIndex
        return try words.get()
    }

    /// Splits an inline line into words as sdssplitargs does (see the file header), except that a
    /// NUL byte is an ordinary byte rather than the end of the line.
    static func splitInline(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, argumentCountMax: Int)
        -> Result<[[UInt8]], ProtocolError>
    {
        var words: [[UInt8]] = []
        var index = line.lowerBound
        let end = line.upperBound
        while true {
            while index < end && isBlank(bytes[index]) { index += 1 }
            if index == end { return .success(words) }
            guard words.count < argumentCountMax else { return .failure(.tooManyArguments(limit: argumentCountMax)) }
            var word: [UInt8] = []
            word: while true {
                // Outside quotes: take the run of plain bytes in one copy.
                let runStart = index
                while index < end, !endsWord(bytes[index]), bytes[index] != UInt8(ascii: "\""),
                    bytes[index] != UInt8(ascii: "'")
                {
                    index += 1
                }
                word.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                if index == end || endsWord(bytes[index]) { break word }
                let quote = bytes[index]
                index += 1
                // Inside quotes, up to the closing quote.
                while true {
                    guard index < end else { return .failure(.unbalancedQuotes) }
                    let byte = bytes[index]
                    if byte == quote {
                        index += 1
                        guard index == end || isBlank(bytes[index]) else { return .failure(.unbalancedQuotes) }
                        break word
                    }
                    if byte == UInt8(ascii: "\\") && index + 1 < end {
                        let escaped = bytes[index + 1]
                        if quote == UInt8(ascii: "'") {
                            if escaped == UInt8(ascii: "'") {
                                word.append(escaped)
                                index += 2
                            } else {
                                word.append(byte)
                                index += 1
                            }
                            continue
                        }
                        if escaped == UInt8(ascii: "x"), index + 3 < end,
                            let high = hexValue(bytes[index + 2]), let low = hexValue(bytes[index + 3])
                        {
                            word.append(high << 4 | low)
                            index += 4
                            continue
                        }
                        switch escaped {
                        case UInt8(ascii: "n"): word.append(UInt8(ascii: "\n"))
                        case UInt8(ascii: "r"): word.append(UInt8(ascii: "\r"))
                        case UInt8(ascii: "t"): word.append(UInt8(ascii: "\t"))
                        case UInt8(ascii: "b"): word.append(0x08)
                        case UInt8(ascii: "a"): word.append(0x07)
                        default: word.append(escaped)
                        }
                        index += 2
                        continue
                    }
                    word.append(byte)
                    index += 1
                }
            }
            words.append(word)
        }
    }

    /// The blanks skipped between words and allowed after a closing quote (C's isspace).
    @inline(__always)
    static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || (byte >= 0x09 && byte <= 0x0D) }

    /// The bytes that end an unquoted word (sdssplitargs's list, which is narrower than isspace).
    @inline(__always)
    static func endsWord(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: - Buffer

    /// Drops the consumed prefix when it is worth it (see `compactionByteCountMin`).
    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacityMax)
        } else if readIndex >= Self.compactionByteCountMin && readIndex >= buffer.count - readIndex {
            buffer.removeSubrange(0..<readIndex)
        } else {
            return
        }
        inlineScanIndex = max(0, inlineScanIndex - readIndex)
        readIndex = 0
    }

    /// Checks the state that ties the fields together (debug builds and tests).
    func checkInvariants() {
        assert(readIndex >= 0 && readIndex <= buffer.count, "read index outside the buffer")
        assert(argumentsRemaining >= 0 && argumentEnds.count + argumentsRemaining <= limits.argumentCountMax,
               "argument count over the limit")
        assert(requestByteCount <= limits.requestByteCountMax, "request bytes over the limit")
        assert(argumentsRemaining > 0 || (argumentEnds.isEmpty && argumentBytes.isEmpty && bulkByteCount == -1 && requestByteCount == 0),
               "multibulk state left behind by a finished request")
        assert(bulkByteCount == -1 || requestByteCount + bulkByteCount + 2 <= limits.requestByteCountMax,
               "a bulk was accepted past the request limit")
    }
}
