// Answers a batch of requests from one connection, in order, without sockets: the same code serves
// the epoll loop and the in-process transcript tests. It keeps true:
// - requests of one connection run one after another, in the order they arrived;
// - no reply of a batch leaves before everything the batch did (or saw in flight) is durable under
//   the policy: the batch waits for the log once, after its last request, and turns the replies of
//   its mutations into READONLY if the log failed (SPEC §4);
// - a request that is refused by the protocol (unknown, wrong arity, not allowed) changes nothing.

import Foundation
import Stockpile
import StockpileProtocol

/// The arrays a turn's batches work in, which a loop keeps for its next turn (it lends them to one
/// turn at a time), so that answering a turn's requests makes none: the arrays of lines of the
/// RESERVEs answered (`SpareLines`), a run of RESERVEs and its answers, the engine's own
/// (`RunScratch`), and each batch's lists kept until the log answers (`PendingReplies`). Between
/// turns they hold nothing but room (and the spare lines).
public struct TurnScratch: Sendable {
    var spareLines = SpareLines()
    var run: [Command] = []
    var answers: [RunAnswer] = []
    var outcomes: [Outcome<Reply>] = []
    var engineRun = RunScratch()
    /// What batches kept about their replies until the log answered, emptied, for the next batches:
    /// a pipeline's lists of mutation replies and start times are made once, not per batch.
    var pendings: [PendingReplies] = []
    /// The turn's log group, open while the turn decides runs of reservations (which it does without
    /// a suspension point) and ended before any other request.
    var changeGroup = ChangeGroupSpan(commandCount: 0)

    public init() {}

    /// An empty `PendingReplies`, with the room an earlier batch's had.
    mutating func takePending() -> PendingReplies { pendings.popLast() ?? PendingReplies() }

    /// Keeps `pending`, emptied, for a later batch (up to 64 of them, their room kept unless a long
    /// pipeline grew it past a thousand, as `finishBatch` keeps the others').
    mutating func keep(_ pending: inout PendingReplies) {
        guard pendings.count < 64 else { return }
        var kept = PendingReplies()
        swap(&kept, &pending)
        let roomy = kept.mutationReplies.capacity <= 1024 && kept.startTimes.capacity <= 1024
        kept.mutationReplies.removeAll(keepingCapacity: roomy)
        kept.startTimes.removeAll(keepingCapacity: roomy)
        kept.touchedEngine = false
        pendings.append(kept)
    }

    /// Empties the arrays, keeping their room unless a long pipeline grew them past a thousand.
    mutating func finishBatch() {
        run.removeAll(keepingCapacity: run.capacity <= 1024)
        answers.removeAll(keepingCapacity: answers.capacity <= 1024)
        outcomes.removeAll(keepingCapacity: outcomes.capacity <= 1024)
        engineRun.trim(to: 1024)
    }
}

/// What a connection is, apart from its bytes: the wire version, who authenticated, its name and
/// its subscriptions. A value: the loop hands it to the batch that runs, and takes it back after.
/// What a request reads of it on every call (`permitted`, `actor`) is derived when the roles or the
/// name change, never per request: `permitted` always equals what `roles` grant, and `actor` is
/// the name, or `client-<id>` while there is none.
public struct SessionState: Sendable {
    public let id: UInt64
    public var version: RESPVersion = .resp2
    /// The roles granted by AUTH; nil until then. Without an auth table every session has every role.
    public var roles: Set<Role>? {
        didSet { permitted = CommandClassSet(granting: roles) }
    }
    /// The classes of command the roles permit: only `session` before AUTH.
    public private(set) var permitted: CommandClassSet
    public var name = "" {
        didSet { actor = Self.actor(id: id, name: name) }
    }
    /// The actor written on the ledger entries this connection causes.
    public private(set) var actor: String
    public var channels: Set<String> = []

    public init(id: UInt64, roles: Set<Role>?) {
        self.id = id
        self.roles = roles
        self.permitted = CommandClassSet(granting: roles)
        self.actor = Self.actor(id: id, name: "")
    }

    private static func actor(id: UInt64, name: String) -> String {
        name.isEmpty ? "client-\(id)" : name
    }
}

/// The bytes of a connection's replies, lent to one batch at a time: the batch writes its replies
/// into them, and the loop moves them to the connection's outgoing bytes (`Connection.enqueue`), so
/// neither a batch nor its replies' trip to the socket allocates once the buffers have grown. Only
/// the holder of the loan touches it (the batch while it runs, the loop after): unchecked.
public final class ReplyBuffer: @unchecked Sendable {
    public var bytes: [UInt8] = []
    public init() {}
}

/// Requests taken from a connection's pipeline, and the framing error that ended it, if one did.
public struct RequestBatch: Sendable {
    public var requests: [ArgumentList]
    /// Answered after the requests; then the connection closes (SPEC §7.15).
    public var protocolError: ProtocolError?
    /// Where the replies go: the connection's buffer, lent for the batch (empty), or nil for one of
    /// the batch's own.
    public var replies: ReplyBuffer?

    public init(requests: [ArgumentList], protocolError: ProtocolError? = nil, replies: ReplyBuffer? = nil) {
        self.requests = requests
        self.protocolError = protocolError
        self.replies = replies
    }

    /// A batch of requests given word by word (tests, tools).
    @_disfavoredOverload
    public init(requests: [[[UInt8]]], protocolError: ProtocolError? = nil) {
        self.init(requests: requests.map(ArgumentList.init), protocolError: protocolError)
    }
}

public struct BatchResult: Sendable {
    /// Where the replies were written: the batch's `replies`, or a buffer of its own.
    public let output: ReplyBuffer
    /// Every reply of the batch, encoded in order.
    public var bytes: [UInt8] {
        get { output.bytes }
        nonmutating _modify { yield &output.bytes }
    }
    public var session: SessionState
    /// QUIT, or a framing error: write the replies, then close.
    public var closeAfterWrite = false
    /// SUBSCRIBE opened this stream: the loop forwards its events to the connection.
    public var subscription: AsyncStream<EngineEvent>?
    /// UNSUBSCRIBE left no channel: the loop stops forwarding.
    public var unsubscribedAll = false
    /// What the handler keeps about the replies until the log answers.
    var pending = PendingReplies()
    /// The batch's requests, handed back for the connection's parser to reuse their arrays
    /// (`RequestParser.recycle`); the batch gave up its own reference to them.
    var requests: [ArgumentList] = []

    /// The batch's requests, taken out of the result (which keeps none), for `RequestParser.recycle`.
    public mutating func takeRequests() -> [ArgumentList] {
        let taken = requests
        requests = []
        return taken
    }
}

/// The replies of a batch that ran but may not be revealed until the log says so. Replies are
/// encoded as they are made (no frame outlives its request); the byte ranges of the mutations'
/// replies are kept in case the log fails and they must become READONLY.
struct PendingReplies: Sendable {
    // Inline for the first: a batch of one request (pipeline 1) makes no array for either.
    var mutationReplies = InlineFirstArray<(range: Range<Int>, version: RESPVersion)>()
    /// When the requests started, as runs of requests that started together (the reservations of a
    /// run share the engine call's start).
    var startTimes = InlineFirstArray<StartedRequests>()
    var touchedEngine = false
}

public final class RequestHandler: Sendable {
    let engine: Engine
    let configuration: ServerConfiguration
    let statistics: ServerStatistics
    /// The facts HELLO and INFO report.
    let facts: ServerFacts

    init(engine: Engine, configuration: ServerConfiguration, statistics: ServerStatistics, facts: ServerFacts) {
        self.engine = engine
        self.configuration = configuration
        self.statistics = statistics
        self.facts = facts
    }

    /// A handler for tests that run the protocol in-process.
    public convenience init(engine: Engine, configuration: ServerConfiguration = ServerConfiguration()) {
        self.init(
            engine: engine, configuration: configuration, statistics: ServerStatistics(),
            facts: ServerFacts(port: configuration.port, durability: engine.logStatus.policy))
    }

    /// A new connection's session: authenticated with every role when there is no auth table.
    public func newSession(id: UInt64) -> SessionState {
        SessionState(id: id, roles: configuration.auth == nil ? Self.everyRole : nil)
    }

    private static let everyRole = Set(Role.allCases)

    /// Runs every request of `batch` in order and encodes the replies.
    public func run(_ batch: consuming RequestBatch, session: SessionState) async -> BatchResult {
        await run([(batch, session)])[0]
    }

    /// Runs several connections' batches, one after another, then waits for the log once for all
    /// of them: one event-loop turn costs one group commit, however many clients it served.
    public func run(_ batches: consuming [(RequestBatch, SessionState)]) async -> [BatchResult] {
        var list = batches
        var results = [BatchResult]()
        var scratch = TurnScratch()
        await run(&list, into: &results, scratch: &scratch)
        return results
    }

    /// `run(_:)` in lists the caller lends and keeps from turn to turn: the results go into
    /// `results` (emptied first), and each batch is taken out of `batches`, which is left holding
    /// only emptied batches, for the caller to empty and fill again; the batches work in `scratch`'s
    /// arrays (`TurnScratch`), which the caller keeps too.
    public func run(_ batches: inout [(RequestBatch, SessionState)], into results: inout [BatchResult], scratch: inout TurnScratch) async {
        results.removeAll(keepingCapacity: true)
        results.reserveCapacity(batches.count)
        var touchedEngine = false
        scratch.changeGroup = ChangeGroupSpan(commandCount: batches.reduce(0) { $0 + $1.0.requests.count })
        for i in batches.indices {
            // Each batch is taken out of the list (the caller's, handed over), so that `perform`
            // holds its requests alone and can hand them back to be reused.
            let batch = batches[i].0
            batches[i].0 = RequestBatch(requests: [ArgumentList]())
            // Read before it goes into the list: read there, by the list's subscript, the whole
            // result was copied (a retain and a release of each of its arrays and buffers).
            let result = await perform(batch, session: batches[i].1, scratch: &scratch)
            touchedEngine = touchedEngine || result.pending.touchedEngine
            results.append(consume result)
        }
        scratch.changeGroup.end(engine)
        let failure = touchedEngine ? await engine.waitUntilDurable() : nil
        let end = ContinuousClock.now
        for i in results.indices {
            Self.reveal(&results[i], end: end, failure: failure, statistics: statistics, scratch: &scratch)
        }
    }

    /// Counts a batch's requests as completed at `end`, turns its mutations' replies into `failure`
    /// when the log failed, and keeps what it kept for the log for later batches (revealed now, it is
    /// done with). In place: a result read out of the list was copied whole.
    private static func reveal(
        _ result: inout BatchResult, end: ContinuousClock.Instant, failure: Refusal?, statistics: ServerStatistics, scratch: inout TurnScratch
    ) {
        statistics.recordCompleted(result.pending.startTimes, end: end)
        if let failure, !result.pending.mutationReplies.isEmpty { result.replaceMutationReplies(with: ReplyFrame(failure)) }
        scratch.keep(&result.pending)
    }

    private func perform(_ batch: consuming RequestBatch, session: SessionState, scratch: inout TurnScratch) async -> BatchResult {
        defer { scratch.finishBatch() }
        var result = BatchResult(output: batch.replies ?? ReplyBuffer(), session: session)
        result.pending = scratch.takePending()
        precondition(result.bytes.isEmpty, "a batch's reply buffer is lent empty")
        result.pending.startTimes.reserveCapacity(batch.requests.count)
        // Room for the replies, made once: a one-line reservation record is about 330 bytes in RESP2,
        // a cell record about 110; a batch of longer replies grows the buffer geometrically.
        result.bytes.reserveCapacity(batch.requests.count * Self.replyByteCountTypical)
        // The RESERVEs read ahead, which requests `runStart..<runStart + run.count` are; each
        // request is read ahead at most once, so a pipeline costs linear time whatever it holds.
        var runStart = 0
        var next = 0
        while next < batch.requests.count {
            if next >= runStart + scratch.run.count {
                runStart = next
                reservationRun(batch.requests[next...], session: result.session, spare: &scratch.spareLines, into: &scratch.run)
            }
            // A run of reservations goes to the engine in one call, entering each shard once per
            // `Engine.runHoldCount` of its reservations.
            if runStart + scratch.run.count - next >= 2 {
                scratch.answers.removeAll(keepingCapacity: true)
                scratch.answers.reserveCapacity(scratch.run.count)
                scratch.outcomes.removeAll(keepingCapacity: true)
                // Taken before the engine decides, as each request's start is below.
                let started = ContinuousClock.now
                // The turn's runs go to the log as one group: a write does not start halfway
                // through them (one sync for the turn, not its first records alone and then the rest).
                scratch.changeGroup.open(engine)
                let taken = engine.executeRunWithoutWaiting(
                    scratch.run[(next - runStart)...], actor: result.session.actor, scratch: &scratch.engineRun, into: &scratch.answers,
                    outcomes: &scratch.outcomes)
                if taken > 0 {
                    // Room for every reply of the batch that may be a mutation's, made once.
                    if result.pending.mutationReplies.isEmpty { result.pending.mutationReplies.reserveCapacity(batch.requests.count - next) }
                    result.pending.startTimes.append(StartedRequests(start: started, count: taken))
                    assert(scratch.answers.count == taken, "an answer for each command the run took")
                    for i in scratch.answers.indices {
                        // Read once for its reply and its lines: each read copies the command (a retain
                        // and a release of each of its strings).
                        let command = scratch.run[next - runStart + i]
                        let start = result.bytes.count
                        switch scratch.answers[i] {
                        case .made(let facts):
                            ReplyWriter.append(newReservation: command, facts: facts, version: result.session.version, into: &result.bytes)
                        case .outcome(let k):
                            ReplyWriter.append(scratch.outcomes[k], version: result.session.version, into: &result.bytes)
                        }
                        result.pending.mutationReplies.append((start..<result.bytes.count, result.session.version))
                        // Its array of lines serves a RESERVE parsed after `run` lets it go.
                        scratch.spareLines.keep(linesOf: command)
                    }
                    result.pending.touchedEngine = true
                    next += taken
                    continue
                }
            }
            let words = batch.requests[next]
            next += 1
            scratch.changeGroup.end(engine)
            result.pending.startTimes.append(StartedRequests(start: .now, count: 1))
            let start = result.bytes.count
            let kind = await respond(to: words, result: &result, spare: &scratch.spareLines)
            if kind != .session { result.pending.touchedEngine = true }
            if kind == .mutation {
                if result.pending.mutationReplies.isEmpty { result.pending.mutationReplies.reserveCapacity(batch.requests.count - next + 1) }
                result.pending.mutationReplies.append((start..<result.bytes.count, result.session.version))
            }
            if result.closeAfterWrite { break }  // QUIT: what follows it is not answered
        }
        if let error = batch.protocolError, !result.closeAfterWrite {
            write(error.frame, to: &result)
            result.closeAfterWrite = true
            statistics.protocolErrors.add(1, ordering: .relaxed)
        }
        result.requests = (consume batch).requests
        return result
    }

    enum Kind { case session, read, mutation }

    /// Reads into `run` the leading requests that are RESERVEs this session may run as they stand:
    /// those `respond` would hand straight to the engine (parsed, permitted, not in RESP2 pub/sub
    /// mode). Changes nothing.
    private func reservationRun(
        _ requests: ArraySlice<ArgumentList>, session: SessionState, spare: inout SpareLines, into run: inout [Command]
    ) {
        run.removeAll(keepingCapacity: true)
        guard session.channels.isEmpty || session.version != .resp2 else { return }
        // A run of one is answered the ordinary way (which parses it): read ahead only when the next
        // request is a RESERVE too, so a lone one is neither parsed twice nor gathered into an array.
        guard requests.count >= 2, requests[requests.startIndex].names("RESERVE"), requests[requests.startIndex + 1].names("RESERVE") else { return }
        for words in requests {
            guard words.names("RESERVE"), case .success(let request) = Request.parse(words, reusing: &spare), case .mutation(let command) = request,
                case .reserve = command,
                session.permitted.contains(request.commandClass)
            else { break }
            if run.isEmpty { run.reserveCapacity(requests.count) }
            run.append(command)
        }
    }

    /// The bytes made room for per request of a batch.
    static let replyByteCountTypical = 384

    /// Answers one request, appending its replies to `result.bytes`: one reply, except for SUBSCRIBE
    /// and UNSUBSCRIBE of several channels, which answer once per channel as Redis does. The hot
    /// replies (mutations, a reservation, a cell) are written straight into the bytes by ReplyWriter;
    /// the rest are built as frames and encoded, in the session's version after the request (so
    /// that `HELLO 3` is answered in RESP3).
    private func respond(to words: ArgumentList, result: inout BatchResult, spare: inout SpareLines) async -> Kind {
        let request: Request
        switch Request.parse(words, reusing: &spare) {
        case .failure(let error):
            if case .refused(let refusal) = error { countRefusedMutation(refusal, words: words, session: result.session) }
            write(error.frame, to: &result)
            return .session
        case .success(let r): request = r
        }
        let commandClass = request.commandClass
        // One bit test: `session` is in every session's set, authenticated or not.
        if !result.session.permitted.contains(commandClass) {
            guard let roles = result.session.roles else {
                write(.error("NOAUTH Authentication required."), to: &result)
                return .session
            }
            let name = String(decoding: words[0], as: UTF8.self).lowercased()
            let granted = roles.sorted().map(\.rawValue).joined(separator: ",")
            write(.error("NOPERM this token's roles (\(granted)) may not run '\(name)': it needs the \(commandClass.rawValue) role"), to: &result)
            return .session
        }
        if !result.session.channels.isEmpty, result.session.version == .resp2 {
            switch request {
            case .session(.subscribe), .session(.unsubscribe), .session(.ping), .session(.quit): break
            default:
                let name = String(decoding: words[0], as: UTF8.self).lowercased()
                write(.error("ERR Can't execute '\(name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"), to: &result)
                return .session
            }
        }
        switch request {
        case .mutation(let command):
            let outcome: Outcome<Reply>
            if let decided = engine.executeWithoutWaiting(command, actor: result.session.actor) {
                outcome = decided
            } else {
                outcome = await engine.executeWaiting(command, actor: result.session.actor)
            }
            ReplyWriter.append(outcome, version: result.session.version, into: &result.bytes)
            spare.keep(linesOf: command)
            return .mutation
        case .query(let query):
            await answer(query, result: &result)
            return .read
        case .session(.subscribe(let channels)):
            for frame in subscribe(channels, result: &result) { write(frame, to: &result) }
            return .session
        case .session(.unsubscribe(let channels)):
            for frame in unsubscribe(channels, result: &result) { write(frame, to: &result) }
            return .session
        case .session(let s):
            let frame = answer(s, result: &result)
            write(frame, to: &result)
            return .session
        case .reset:
            guard configuration.allowReset else {
                write(.error("ERR RESET is disabled: start the server with --allow-reset to allow it (it empties the engine)"), to: &result)
                return .session
            }
            if let refusal = await engine.reset(actor: result.session.actor) {
                ReplyWriter.append(refusal, into: &result.bytes)
            } else {
                write(.ok, to: &result)
            }
            return .session
        case .snapshot:
            do {
                _ = try await engine.writeSnapshot()
                write(.ok, to: &result)
            } catch {
                write(.error("ERR \(error)"), to: &result)
            }
            return .session
        }
    }

    /// Encodes a frame in the session's current version.
    private func write(_ frame: ReplyFrame, to result: inout BatchResult) {
        ReplyEncoder.encode(frame, version: result.session.version, into: &result.bytes)
    }

    /// Counts a mutation the command table refused (a value of the wrong form, an integer over 64
    /// bits): it never reaches the engine, which counts every other refused mutation, and STATS counts
    /// them all by code (SPEC §2, §7.12). Refusals of queries are not counted, nor is one sent by a
    /// connection that may not run the command: it is refused before its role is checked, but it was
    /// never a mutation that connection could make.
    private func countRefusedMutation(_ refusal: Refusal, words: ArgumentList, session: SessionState) {
        guard let commandClass = Request.mutationClass(of: words), session.permitted.contains(commandClass) else { return }
        engine.countRefusal(refusal.code)
    }

    // MARK: Queries

    /// Appends the answer to a query. A cell, a variant's cells and a reservation are written
    /// straight into the bytes; the other answers, rarer and longer, are built as frames.
    private func answer(_ query: Query, result: inout BatchResult) async {
        let version = result.session.version
        switch query {
        case .stock(let variant, let warehouse?):
            switch await engine.cell(variant: variant, warehouse: warehouse) {
            case .ok(let cell): ReplyWriter.append(cell: cell, version: version, into: &result.bytes)
            case .refused(let refusal): ReplyWriter.append(refusal, into: &result.bytes)
            }
        case .stock(let variant, nil):
            switch await engine.stock(variant: variant) {
            case .ok(let stock): ReplyWriter.append(stock, version: version, into: &result.bytes)
            case .refused(let refusal): ReplyWriter.append(refusal, into: &result.bytes)
            }
        case .reservation(let id):
            switch await engine.reservation(id) {
            case .ok(let record): ReplyWriter.append(reservation: record, version: version, into: &result.bytes)
            case .refused(let refusal): ReplyWriter.append(refusal, into: &result.bytes)
            }
        case .lowStock(let threshold, let limit):
            write(frame(await engine.lowStock(threshold: threshold, limit: limit)) { ReplyFrame(lowStock: $0) }, to: &result)
        case .backorders(let limit):
            write(frame(await engine.backorders(limit: limit)) { ReplyFrame($0) }, to: &result)
        case .history(let variant, let warehouse, let limit):
            write(frame(await engine.history(variant: variant, warehouse: warehouse, limit: limit)) { ReplyFrame(entries: $0) }, to: &result)
        case .events(let from, let limit):
            let n = limit ?? Limits.listCountDefault
            guard n >= 1 else { return write(ReplyFrame(Refusal.invalid("LIMIT must be at least 1")), to: &result) }
            guard n <= Limits.listCountMax else { return write(ReplyFrame(Refusal.limit("LIMIT may not exceed \(Limits.listCountMax)")), to: &result) }
            write(ReplyFrame(entries: await engine.events(from: from, limit: n)), to: &result)
        case .warehouseList:
            write(ReplyFrame(warehouses: engine.warehouses()), to: &result)
        case .policy(let variant):
            write(frame(engine.policy(of: variant)) { ReplyFrame($0) }, to: &result)
        case .stats:
            write(ReplyFrame(await engine.stats()), to: &result)
        case .info(let section):
            write(.text(await infoText(section: section)), to: &result)
        }
    }

    private func frame<T>(_ outcome: Outcome<T>, _ success: (T) -> ReplyFrame) -> ReplyFrame {
        switch outcome {
        case .ok(let value): success(value)
        case .refused(let refusal): ReplyFrame(refusal)
        }
    }

    // MARK: Session requests

    private func answer(_ request: SessionRequest, result: inout BatchResult) -> ReplyFrame {
        switch request {
        case .ping(let message):
            if !result.session.channels.isEmpty, result.session.version == .resp2 {
                return .array([.text("pong"), .bulk(message ?? [])])
            }
            return message.map { .bulk($0) } ?? .simple("PONG")
        case .echo(let message):
            return .bulk(message)
        case .auth(let token):
            return authenticate(token, session: &result.session) ?? .ok
        case .hello(let version, let token, let clientName):
            if let version, version != 2 && version != 3 {
                return .error("NOPROTO unsupported protocol version")
            }
            if let token, let refusal = authenticate(token, session: &result.session) { return refusal }
            if let version { result.session.version = version == 3 ? .resp3 : .resp2 }
            if let clientName { result.session.name = clientName }
            return .record(facts.hello(session: result.session))
        case .command(let sub):
            switch sub {
            case "COUNT": return .integer(Int64(CommandCatalog.entries.count))
            case "DOCS": return .record([])
            case nil, "INFO", "LIST": return .array(CommandCatalog.entries.map { .text($0.name.lowercased()) })
            default: return .error("ERR unknown subcommand '\(sub!)'. Try COMMAND HELP.")
            }
        case .client(let sub, let arguments):
            switch sub {
            case "SETNAME":
                guard arguments.count == 1 else { return .error("ERR wrong number of arguments for 'client|setname' command") }
                guard !arguments[0].contains(where: { $0 == " " || $0 == "\n" }) else {
                    return .error("ERR Client names cannot contain spaces, newlines or special characters.")
                }
                result.session.name = arguments[0]
                return .ok
            case "GETNAME": return result.session.name.isEmpty ? .null : .text(result.session.name)
            case "ID": return .integer(Int64(result.session.id))
            case "SETINFO", "NO-EVICT", "NO-TOUCH", "REPLY": return .ok
            default: return .error("ERR unknown subcommand '\(sub)'. Try CLIENT HELP.")
            }
        case .select(let index):
            return index == 0 ? .ok : .error("ERR DB index is out of range")
        case .configGet(let patterns):
            // redis-benchmark asks for `save` and `appendonly` before it starts; answer as Redis would.
            var fields: [RecordField] = []
            let appendOnly = facts.durability == .none ? "no" : "yes"
            for p in patterns.map({ $0.lowercased() }) {
                if p == "save" || p == "*" { fields.append(RecordField("save", .text(""))) }
                if p == "appendonly" || p == "*" { fields.append(RecordField("appendonly", .text(appendOnly))) }
            }
            return .record(fields)
        case .quit:
            result.closeAfterWrite = true
            return .ok
        case .subscribe, .unsubscribe:
            preconditionFailure("answered once per channel by subscribe and unsubscribe")
        }
    }

    private func subscribe(_ channels: [String], result: inout BatchResult) -> [ReplyFrame] {
        var frames: [ReplyFrame] = []
        for channel in channels {
            guard channel == Self.eventsChannel else {
                frames.append(.error("ERR unknown channel '\(channel)': the only channel is '\(Self.eventsChannel)'"))
                continue
            }
            if result.session.channels.isEmpty && result.subscription == nil {
                // Subscribe now, inside the batch, so that no event after this reply is missed.
                result.subscription = engine.subscribe()
                result.unsubscribedAll = false
            }
            result.session.channels.insert(channel)
            frames.append(.push([.text("subscribe"), .text(channel), .integer(Int64(result.session.channels.count))]))
        }
        return frames
    }

    private func unsubscribe(_ channels: [String], result: inout BatchResult) -> [ReplyFrame] {
        let leaving = channels.isEmpty ? result.session.channels.sorted() : channels
        if leaving.isEmpty { return [.push([.text("unsubscribe"), .null, .integer(0)])] }
        var frames: [ReplyFrame] = []
        for channel in leaving {
            result.session.channels.remove(channel)
            frames.append(.push([.text("unsubscribe"), .text(channel), .integer(Int64(result.session.channels.count))]))
        }
        if result.session.channels.isEmpty {
            result.unsubscribedAll = true
            result.subscription = nil
        }
        return frames
    }

    static let eventsChannel = "events"

    /// Checks a token; nil when it is good (and the session now has its roles), the error otherwise.
    private func authenticate(_ token: String, session: inout SessionState) -> ReplyFrame? {
        guard let auth = configuration.auth else {
            return .error("ERR AUTH called without any auth file configured: start the server with --auth-file to require tokens")
        }
        guard let roles = auth.roles(of: token) else {
            return .error("WRONGPASS invalid token or the token is not in the auth file")
        }
        session.roles = roles
        return nil
    }

    /// The frame of one event for a subscriber: a pub/sub message (a push in RESP3).
    static func message(for event: EngineEvent) -> ReplyFrame {
        .push([.text("message"), .text(eventsChannel), .bulk(EventJSON.encode(event))])
    }
}

extension BatchResult {
    /// Replaces the reply of every mutation with `frame` (the log failed: none of them may be revealed).
    mutating func replaceMutationReplies(with frame: ReplyFrame) {
        var replaced: [UInt8] = []
        var copied = 0
        for reply in pending.mutationReplies {
            replaced += bytes[copied..<reply.range.lowerBound]
            ReplyEncoder.encode(frame, version: reply.version, into: &replaced)
            copied = reply.range.upperBound
        }
        replaced += bytes[copied...]
        bytes = replaced
        pending.mutationReplies = InlineFirstArray()
    }
}
