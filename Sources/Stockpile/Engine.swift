// The engine an order service embeds: the public API over the shard actors. It validates a command,
// settles idempotency (reservation ids and KEYs are claimed before anything is decided, so two
// concurrent requests with one name cannot both act), routes the command to the one shard that owns
// everything it touches or holds every shard it spans, and schedules what the result makes due
// (expiries, forgetting after the retention window).

@_exported import StockpileCore
import StockpileWAL
import Synchronization

/// What a KEY remembers for the retention window, in 16 bytes: where its command and original reply
/// are, and when it was first used.
///
/// With a log, the reply is not kept: the record that used the key (a `commit` carrying the keyed
/// command and every after-value its reply shows, or a `keyUse`) is read back by its LSN on the rare
/// retry (`Engine.keyUse(of:key:)`), and a snapshot writes the key with that LSN (wal/FORMAT.md §4.2,
/// kind 8). Without a log, and for a key an older snapshot brought, the command and reply are kept
/// encoded as a `keyUse` record's payload (§3.6), about a hundred bytes in an array of their own
/// size. The time tells the key's forgetting item from that of an earlier use of the same key
/// (`isFirstUsed(at:)`); it is kept in 7 bytes, so that a case and its payload fit in 16.
enum KeyRecord: Sendable, ClaimableValue {
    /// Claimed, not yet settled.
    case claimed
    /// Its use is the log's record `lsn`.
    case logged(lsn: UInt64, usedAt: PackedTime)
    /// Its use, encoded.
    case kept(payload: [UInt8], usedAt: PackedTime)

    /// A time in milliseconds as 56 bits (±2^55 ms, about a million years either side of 1970).
    struct PackedTime: Sendable {
        private let low: UInt32
        private let middle: UInt16
        private let high: Int8

        /// `time`, or the nearest time within range (`LoggedKey.usedAtRange`): a use a million years
        /// away is kept as one a little nearer, and compared as kept (`isFirstUsed(at:)`).
        init(_ time: Timestamp) {
            let range = LoggedKey.usedAtRange
            let ms = min(max(time.milliseconds, range.lowerBound), range.upperBound - 1)
            low = UInt32(truncatingIfNeeded: ms)
            middle = UInt16(truncatingIfNeeded: ms >> 32)
            high = Int8(truncatingIfNeeded: ms >> 48)
        }

        var time: Timestamp { Timestamp(milliseconds: Int64(high) << 48 | Int64(middle) << 32 | Int64(low)) }
    }

    static var claimMarker: KeyRecord { .claimed }
    var isClaimMarker: Bool {
        if case .claimed = self { return true }
        return false
    }

    /// The record of a key used at `time` by record `lsn` of the log.
    init(lsn: UInt64, usedAt time: Timestamp) {
        self = .logged(lsn: lsn, usedAt: PackedTime(time))
    }

    /// The record of a key used by `command` with `reply` at `time`, kept in memory.
    init(command: Command, reply: Reply, usedAt time: Timestamp) {
        var writer = ByteWriter(capacity: 192)
        CommitCodec.encode(KeyUse(time: time, command: command, reply: reply), into: &writer)
        let bytes = writer.bytes
        let payload = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
            _ = buffer.initialize(from: bytes)
            count = bytes.count
        }
        self = .kept(payload: payload, usedAt: PackedTime(time))
    }

    /// When the key was used (nil while claimed).
    var usedAt: Timestamp? {
        switch self {
        case .claimed: nil
        case .logged(_, let t), .kept(_, let t): t.time
        }
    }

    /// Whether this is the use of the key made at `time` (and not an earlier or a later one).
    func isFirstUsed(at time: Timestamp) -> Bool { usedAt == PackedTime(time).time }

    /// The LSN of the record it was used by, when the log keeps its use.
    var loggedLSN: UInt64? {
        if case .logged(let lsn, _) = self { return lsn }
        return nil
    }

    /// The command and reply of a kept use, decoded (nil for one the log keeps).
    var keptUse: KeyUse? {
        guard case .kept(let payload, _) = self else { return nil }
        return payload.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            do {
                return try CommitCodec.decodeKeyUse(from: &reader)
            } catch {
                preconditionFailure("a KEY's record does not decode: \(error)")
            }
        }
    }
}

/// The result of performing a validated command: the rules' decision, committed when it is a commit.
enum Performed {
    /// A commit, logged and applied.
    case commit(Commit)
    /// A new reservation of one line naming its warehouse, logged and applied from its entry's figures
    /// without a commit (`Shard.reserveOneLine`): the reservation as it was made, without a line array.
    case reserved(OneLineReservation)
    /// A new reservation of lines in several shards, applied from its lines' figures without a commit
    /// (no log to write it to, no one subscribed: `Engine.reserveGatheredBare`): kept whole, in its box.
    case reservedWhole(Boxed<Reservation>)
    case unchanged(Reply)
    case refused(Refusal)

    /// A decision that is not a commit: performed as it is, nothing to log or apply.
    init(uncommitted decision: Decision) {
        switch decision {
        case .unchanged(let r): self = .unchanged(r)
        case .refused(let r): self = .refused(r)
        case .commit: preconditionFailure("a commit is performed by logging and applying it")
        }
    }

    /// The answer, taking what it needs from the decision (moved, not copied: a reservation's
    /// names are not retained again for the reply).
    consuming func outcome() -> Outcome<Reply> {
        switch consume self {
        case .commit(let c): .ok(c.reply())
        case .reserved(let r): .ok(.reservation(ReservationRecord(r)))
        case .reservedWhole(let box): .ok(.reservation(ReservationRecord(box.value)))
        case .unchanged(let r): .ok(r)
        case .refused(let r): .refused(r)
        }
    }
}

/// What settling the claim on a new reservation's id needs of what was performed: whether a
/// reservation was made, and then its shards and when its hold expires.
enum ClaimSettlement {
    case made(expiresAt: Timestamp?, mask: UInt64)
    case notMade

    /// Read in place from `performed` (a copy of it would retain every name it holds). `mask`: the
    /// reservation's shards, when the caller knows them.
    init(of performed: borrowing Performed, mask: UInt64?, router: ShardRouter) {
        switch performed {
        case .commit(let commit):
            guard let r = commit.reservation else {
                self = .notMade
                return
            }
            self = .made(expiresAt: r.expiresAt, mask: mask ?? router.mask(of: r.lines.lazy.map(\.cell)))
        case .reserved(let r):
            self.init(made: r, mask: mask ?? 1 << UInt64(router.shard(for: r.cell)))
        case .reservedWhole(let box):
            let r = box.value
            self = .made(expiresAt: r.expiresAt, mask: mask ?? router.mask(of: r.lines.lazy.map(\.cell)))
        case .unchanged, .refused: self = .notMade
        }
    }

    /// The new one-line reservation `r` was made; `mask`: its shard.
    init(made r: borrowing OneLineReservation, mask: UInt64) {
        // A new reservation's one follow-up is its hold's expiry: it is not closed (its line holds at
        // least one unit), so nothing is to be forgotten yet.
        assert(r.closedAt == nil, "a new reservation is open")
        self = .made(expiresAt: r.expiresAt, mask: mask)
    }
}

public final class Engine: Sendable {
    public let configuration: EngineConfiguration
    public let clock: any EngineClock
    let router: ShardRouter
    let shards: [Shard]
    /// `shards`, which keeps them, as references the hot path calls through without a retain
    /// (`withShard`; the directory keeps its stripes the same way). A stored array of its own: wrapped
    /// in a struct with the call, reading it copied the struct and retained the array's storage, a
    /// line every core writes again (`spread` 4% slower).
    private let shardRefs: [Unmanaged<Shard>]
    let ledger: Ledger
    /// Reservation id → the shards its lines live in (a bit mask; the lowest is its home).
    let directory: ReservationDirectory
    let keys = IdempotencyTable<KeyRecord>()
    /// Its items' hashes are names in the directory (expiries, reservations to forget) or KEYs.
    let dueWork: DueWork
    /// The catalog as the router plans with; shards hold the copies the rules read.
    let catalog = Mutex(Catalog())
    let refusals = RefusalCounters()
    let settings: RuleSettings
    let timer = Mutex<Task<Void, Never>?>(nil)
    /// One snapshot at a time, and where the last one was taken.
    let snapshots = Mutex(SnapshotBookkeeping())
    /// How a durable engine started (set once by `open`).
    let startup = Mutex<StartupReport?>(nil)
    /// Held while a durable engine lives: no other process writes its data directory meanwhile.
    let directoryLock: DirectoryLock?
    /// Where the log lives (nil in memory): EVENTS reads it for entries memory no longer keeps.
    var dataDirectory: String? { directoryLock?.directory ?? durableViewDirectory }
    /// The file system the log and snapshots live on (a simulated one in tests).
    let fileSystem: any FileSystem
    /// Reads a used KEY's record back from the log (nil in memory).
    let logReader: LogRecordReader?
    /// The data directory a durable view was read from (it holds no lock on it); nil for any other engine.
    let durableViewDirectory: String?
    /// False for a durable view (see `Engine+DurableView.swift`): it shows the state as the log has it
    /// and changes nothing, not even by expiry.
    var runsDueWork: Bool { durableViewDirectory == nil }
    /// Once the log has failed: the state as the log holds it, which reads show from then on.
    let durableViewSlot = Mutex<Engine?>(nil)

    /// Every shard, as a mask: what a catalog change holds, since every shard keeps a copy.
    var allShards: UInt64 { shards.count == 64 ? .max : (1 << UInt64(shards.count)) - 1 }

    /// The actor name the engine writes on the entries it makes by itself (expiry).
    public static let engineActor = "engine"

    /// Creates an empty engine in memory only: no stock, warehouse MAIN, nothing written to disk. For a
    /// durable engine use `Engine.open(dataDirectory:durability:)`.
    public convenience init(configuration: EngineConfiguration = EngineConfiguration(), clock: any EngineClock = SystemClock()) {
        self.init(configuration: configuration, clock: clock, directoryLock: nil)
    }

    /// An engine in memory (`directoryLock` nil) starts its timer at once; a durable one only when
    /// `open` has replayed its log and attached it (`startTimer()`), so no expiry runs mid-replay. A
    /// durable view (`durableViewOf` set) never runs due work.
    init(
        configuration: EngineConfiguration, clock: any EngineClock, directoryLock: DirectoryLock?,
        fileSystem: any FileSystem = SystemFileSystem(), durableViewOf viewDirectory: String? = nil
    ) {
        self.directoryLock = directoryLock
        self.fileSystem = fileSystem
        self.durableViewDirectory = viewDirectory
        logReader = (directoryLock?.directory ?? viewDirectory).map { LogRecordReader(directory: $0, fileSystem: fileSystem) }
        self.configuration = configuration
        self.clock = clock
        router = ShardRouter(count: configuration.shardCount)
        ledger = Ledger(capacity: configuration.eventsInMemoryCount, shardCount: configuration.shardCount)
        let (router, ledger) = (router, ledger)
        let shards = (0..<configuration.shardCount).map { Shard(index: $0, router: router, ledger: ledger) }
        self.shards = shards
        shardRefs = shards.map { Unmanaged.passUnretained($0) }
        directory = ReservationDirectory(
            lowMask: configuration.directoryLowMask,
            questions: ShardQuestions(
                keeps: { s, id, hash in shards[s].withState { $0.reservations.contains(id, hash: hash) } },
                ids: { s, hash, lowMask in shards[s].withState { $0.reservations.ids(withTagOf: hash, lowMask: lowMask) } }))
        settings = RuleSettings(defaultStrategy: configuration.defaultStrategy)
        let (directory, keys) = (directory, keys)
        dueWork = DueWork { kind, hash in
            switch kind {
            case .expire, .forgetReservation: directory.names(withHash: hash)
            case .forgetKey: keys.names(withHash: hash)
            }
        }
        if directoryLock == nil && runsDueWork { startTimer() }
    }

    deinit {
        timer.withLock { $0?.cancel() }
        ledger.finishSubscribers()
    }

    /// Runs due work by itself while the engine lives, so holds expire on time even when no request
    /// arrives. Sleeps until the earliest deadline, and at most 100 ms, then looks again.
    func startTimer() {
        guard clock.movesByItself else { return }
        let task = Task.detached(priority: .medium) { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                let now = self.clock.now()
                if self.dueWork.isDue(at: now) { await self.runDueWork(at: now) }
                self.snapshotIfDue()
                let wait = min(100, max(1, (self.dueWork.earliest?.milliseconds ?? .max) - self.clock.now().milliseconds))
                try? await Task.sleep(for: .milliseconds(wait))
            }
        }
        timer.withLock { $0 = task }
    }

    // MARK: Mutations

    /// Performs one mutation of SPEC §2. Never throws: a refusal is an `Outcome`, and a refused
    /// command changes nothing. Cost: one hop to the shard that owns the cells, or a hold on each
    /// shard a multi-shard request spans.
    public func execute(_ command: Command, actor: String = "") async -> Outcome<Reply> {
        // `decideNow` first, here: a call into the async `decideWaiting` costs an executor check even
        // when nothing waits, and this is the embedded hot path.
        let decided: Outcome<Reply>
        if let now = decideNow(command, actor: actor) { decided = now } else { decided = await decideWaiting(command, actor: actor) }
        return await finishExecuting(decided)
    }

    /// The end of `execute` for what it decided: the wait for the log (READONLY when it fails) and
    /// the count of a refusal, by the answer the caller gets.
    @inline(__always)
    func finishExecuting(_ decided: Outcome<Reply>) async -> Outcome<Reply> {
        var reply = decided
        // Without a log nothing waits: no call that could suspend.
        if ledger.log != nil, let failure = await waitUntilDurable() { reply = .refused(failure) }
        if case .refused(let r) = reply { refusals.count(r.code) }
        return reply
    }

    /// Performs a mutation like `execute`, but does not hold the reply back for the log: for a server
    /// that answers a whole pipeline after one wait. The caller must await `waitUntilDurable()`
    /// before revealing this reply (or any later one), and answer READONLY instead of a success when
    /// that wait reports the log failed.
    public func executeDeferringDurability(_ command: Command, actor: String = "") async -> Outcome<Reply> {
        if let decided = executeWithoutWaiting(command, actor: actor) { return decided }
        return await executeWaiting(command, actor: actor)
    }

    /// `executeDeferringDurability` without a suspension point, for a caller that answers many
    /// requests in a row (a server's loop turn): performs `command` on the calling thread and returns
    /// its outcome, or nil, having changed nothing, when it has to wait (due work to run first, a
    /// KEY, a claim in flight on its id) — then call `executeWaiting`. The same rule holds: await
    /// `waitUntilDurable()` before revealing the outcome.
    public func executeWithoutWaiting(_ command: Command, actor: String = "") -> Outcome<Reply>? {
        guard let outcome = decideNow(command, actor: actor) else { return nil }
        if case .refused(let r) = outcome { refusals.count(r.code) }
        return outcome
    }

    /// The other half of `executeDeferringDurability`: for a command `executeWithoutWaiting` just
    /// answered nil for, runs due work, settles a KEY and waits for a claim in flight, without
    /// trying the synchronous path again.
    public func executeWaiting(_ command: Command, actor: String = "") async -> Outcome<Reply> {
        let outcome = await decideWaiting(command, actor: actor)
        if case .refused(let r) = outcome { refusals.count(r.code) }
        return outcome
    }

    /// Opens a group of changes the caller is about to make one after another and then wait for
    /// together (`ChangeGroupSpan` opens and ends it): a log write that would start meanwhile waits
    /// for the group to end, up to `GroupCommitter.groupWaitMaxDefault`, so that the group's records
    /// go in one write and sync rather than two. End it with `endChangeGroup` before waiting
    /// (`waitUntilDurable`). Without a log it does nothing.
    func beginChangeGroup() -> ChangeGroup {
        ChangeGroup(ticket: ledger.log?.beginGroup() ?? 0)
    }

    /// The fewest commands of a batch, or requests of a server's turn, that open a group
    /// (`beginChangeGroup`): a pipeline's worth, as `runHoldCount` is a run's. Fewer take microseconds
    /// to decide, a write rarely starts halfway through them, and while their group were open a write
    /// ready with other callers' records would wait for it (and for as long as its thread is
    /// preempted): with every server turn grouped, the flash sale's reserve p99 rose from 2.0 to 2.8 ms.
    public static let changeGroupCommandCountMin = 32

    /// Ends a group of `beginChangeGroup`.
    func endChangeGroup(_ group: ChangeGroup) {
        if group.ticket != 0 { ledger.log?.endGroup(group.ticket) }
    }

    /// Waits until everything handed to the log so far is as safe as the durability policy promises.
    /// Returns the READONLY refusal when the log could not be written; nil otherwise (and always
    /// without a log).
    public func waitUntilDurable() async -> Refusal? {
        guard let log = ledger.log else { return nil }
        do {
            try await log.waitUntilAcknowledged(ledger.lastLSN)
        } catch {
            return .writesStopped(error)
        }
        return nil
    }

    /// Validates, claims the id or KEY, and performs — everything of `execute` but the wait for the
    /// log and the counting of refusals — synchronously, on the calling thread: nil, having changed nothing, when it
    /// has to wait (due work to run first, a KEY, a claim in flight on its reservation id). A call
    /// into an async function costs an executor check on every hop, and a reservation made
    /// through half a dozen of them paid for each; this path makes none.
    func decideNow(_ command: Command, actor: String) -> Outcome<Reply>? {
        let now = clock.now()
        if runsDueWork && dueWork.isDue(at: now) { return nil }
        // A reservation valid as it stands is decided as it is: normalizing it would copy it and
        // return it unchanged.
        if case .reserve(let request) = command, Validation.isValidAsItStands(request) { return decideValidReserve(request, now: now, actor: actor) }
        switch Validation.normalize(command) {
        case .refused(let r):
            return .refused(r)
        case .ok(let command):
            if case .reserve(let request) = command { return decideValidReserve(request, now: now, actor: actor) }
            if let refusal = configuredLimitRefusal(command) { return .refused(refusal) }
            guard command.key == nil else { return nil }
            switch attempt(command, now: now, actor: actor) {
            case .done(let performed): return performed.outcome()
            case .waitForClaim, .retry: return nil
            }
        }
    }

    /// `decideNow` for a reservation request as it stands, not wrapped in a command (`reserve`): nil,
    /// having changed nothing, when it has to wait or is not valid as it stands (then the ordinary
    /// way refuses it, or upper-cases a warehouse code, as `decideNow` would).
    /// The answer is built as the caller needs it: `made` from a new one-line reservation where its
    /// shard makes it, `otherwise` from any other outcome (an answer is 164 bytes, and converting
    /// one answer into another on the way back copied it four times).
    @inline(__always)
    func decideReserveNow<Answer>(
        _ request: ReserveRequest, actor: String, made: (consuming OneLineReservation) -> Answer, otherwise: (consuming Outcome<Reply>) -> Answer
    ) -> Answer? {
        // The slots its claim and its shard will read are asked for first, so that their misses
        // overlap with reading the clock, validating and checking the limits, not only with each other.
        let ahead = askAhead(request)
        let now = clock.now()
        if runsDueWork && dueWork.isDue(at: now) { return nil }
        guard Validation.isValidAsItStands(request) else { return nil }
        return decideValidReserve(request, ahead: ahead, now: now, actor: actor, made: made, otherwise: otherwise)
    }

    /// Decides a valid reservation request, the configured limits first (nil when its id has a claim
    /// in flight, or the plan went stale). A new one-line reservation is answered where its shard
    /// makes it: through `Attempt` its answer would be copied whole at every step back.
    @inline(__always)
    private func decideValidReserve(_ request: ReserveRequest, now: Timestamp, actor: String) -> Outcome<Reply>? {
        decideValidReserve(request, ahead: askAhead(request), now: now, actor: actor, made: { .ok(.reservation(ReservationRecord($0))) }, otherwise: { $0 })
    }

    /// `decideValidReserve`, its answer built by `made` from a new one-line reservation and by
    /// `otherwise` from any other outcome. `ahead`: the request's `askAhead`.
    @inline(__always)
    private func decideValidReserve<Answer>(
        _ request: ReserveRequest, ahead: AskedAhead, now: Timestamp, actor: String, made: (consuming OneLineReservation) -> Answer,
        otherwise: (consuming Outcome<Reply>) -> Answer
    ) -> Answer? {
        if let refusal = configuredReserveRefusal(request) { return otherwise(.refused(refusal)) }
        let claim = claimReservation(request, ahead: ahead)
        if case .claimed(let hashed, let route?) = claim {
            return answerNewOneLineReservation(request, hashedID: hashed, route: route, now: now, actor: actor, made: made, otherwise: otherwise)
        }
        switch attemptReserve(request, claim, now: now, actor: actor) {
        case .done(let performed): return otherwise(performed.outcome())
        case .waitForClaim, .retry: return nil
        }
    }

    /// `decideNow` for a command that has to wait: runs due work first, settles a KEY, and waits for
    /// a claim in flight on its id.
    func decideWaiting(_ command: Command, actor: String) async -> Outcome<Reply> {
        let now = await settleDueWork()
        switch Validation.normalize(command) {
        case .refused(let r):
            return .refused(r)
        case .ok(let command):
            if let refusal = configuredLimitRefusal(command) { return .refused(refusal) }
            if let key = command.key {
                return await performKeyed(command, key: key, now: now, actor: actor)
            }
            return await perform(command, now: now, actor: actor).outcome()
        }
    }

    /// Holds a reply back until everything it may reveal is as safe as the durability policy
    /// promises: every record handed to the log so far (its own, and any in-flight change that
    /// decided a refusal). Answers READONLY instead when the log could not be written.
    private func performKeyed(_ command: Command, key: String, now: Timestamp, actor: String) async -> Outcome<Reply> {
        switch await keys.claim(key) {
        case .existing(let record):
            let use: KeyUse
            do {
                use = try await keyUse(of: record, key: key)
            } catch {
                return .refused(Refusal(.readOnly, "KEY \(key)'s original reply could not be read back from the log: \(error)"))
            }
            guard use.command.withoutKey == command.withoutKey else {
                return .refused(Refusal(.conflict, "KEY \(key) was used for a different request"))
            }
            return .ok(use.reply.markedReplayed)
        case .claimed:
            let performed = await perform(command, now: now, actor: actor)
            var outcome = performed.outcome()
            var lsn: UInt64 = 0
            switch performed {
            case .commit(let commit): lsn = commit.logged.lsn
            case .unchanged(let reply):
                // A success that changed nothing writes no commit, yet uses its key: log the key alone.
                do {
                    lsn = try ledger.appendKeyUse(KeyUse(time: now, command: command, reply: reply))
                } catch {
                    outcome = .refused(.writesStopped(error))
                }
            default: break
            }
            if case .ok(let reply) = outcome {
                // Any success uses the key, even one that changed nothing (a release of a closed
                // reservation): its retry must replay, and another command with it is a CONFLICT.
                let record = lsn > 0 ? KeyRecord(lsn: lsn, usedAt: now) : KeyRecord(command: command, reply: reply, usedAt: now)
                keys.commit(key, record)
                dueWork.schedule(DueItem(deadline: now.advanced(by: configuration.retention), kind: .forgetKey, name: key))
            } else {
                // A refused request leaves nothing behind: the key stays unused.
                keys.abandon(key)
            }
            return outcome
        }
    }

    /// What one synchronous try at a command came to.
    enum Attempt {
        case done(Performed)
        /// Another request holds a claim on this reservation id: wait until it settles, then try again.
        case waitForClaim(HashedID)
        /// The plan went stale (the reservation was forgotten, or forgotten and made again, since the
        /// directory was read), and nothing changed: try again.
        case retry
    }

    func perform(_ command: Command, now: Timestamp, actor: String) async -> Performed {
        while true {
            switch attempt(command, now: now, actor: actor) {
            case .done(let performed): return performed
            case .retry: continue
            case .waitForClaim(let hashed): await directory.waitWhileClaimed(hashed.id, hash: hashed.hash)
            }
        }
    }

    /// One try at a validated command, without waiting: everything runs on the calling thread, in
    /// the one shard that owns what it touches or holding each shard it spans.
    func attempt(_ command: Command, now: Timestamp, actor: String) -> Attempt {
        switch command {
        case .reserve(let request):
            return attemptReserve(request, claimReservation(request, ahead: askAhead(request)), now: now, actor: actor)
        case .extend(let id, _, _), .confirm(let id, _), .release(let id, _, _, _), .fulfill(let id, _, _):
            // The id is hashed here once, for the directory and for the shard's table.
            let hashed = HashedID(id)
            guard let found = directory.tryLocate(id, hash: hashed.hash) else { return .waitForClaim(hashed) }
            guard let (mask, confirmed) = found else { return .done(.refused(.reservationNotFound(id))) }
            let expected = ExpectedReservation(id: id, mask: mask)
            // Nil: the shard does not keep it. Named by a slot alone (`tryLocate`), the directory is
            // asked properly (its shards are asked, and a slot they do not account for goes); else the
            // reservation was forgotten (and perhaps made again) since the lookup: look again —
            // unless the entry was stale, and is now gone.
            guard let performed = route(command, mask: mask, cells: [], expected: expected, hashedID: hashed, now: now, actor: actor) else {
                if !confirmed { return directory.tryLookup(id, hash: hashed.hash) == .some(nil) ? .done(.refused(.reservationNotFound(id))) : .retry }
                return dropStaleDirectoryEntry(id, mask) ? .done(.refused(.reservationNotFound(id))) : .retry
            }
            if case .commit(let commit) = performed { scheduleFollowUps(of: commit) }
            return .done(performed)
        case .adjust(let v, let w, _, _, _, _, _), .setQuantity(let v, let w, _, _, _, _), .count(let v, let w, _, _, _),
            .importStock(let v, let w, _),
            .returnStock(let v, let w, _, _, _, _):
            // One cell is in one shard, so no cells need gathering across shards: no array of them.
            let shard = router.shard(for: CellKey(variant: v, warehouse: w))
            return .done(route(command, mask: 1 << UInt64(shard), cells: [], now: now, actor: actor)!)
        case .transfer(let v, let from, let to, _, _, _):
            let cells = [CellKey(variant: v, warehouse: from), CellKey(variant: v, warehouse: to)]
            return .done(route(command, mask: router.mask(of: cells), cells: cells, now: now, actor: actor)!)
        case .setWarehouse, .setPolicy:
            // Every shard keeps a copy of the catalog: hold them all so no copy is ever out of step.
            return .done(performHoldingShards(command, mask: allShards, cells: [], expected: nil, catalogVersion: nil, now: now, actor: actor)!)
        }
    }

    /// What claiming a reservation's id came to.
    enum ReservationClaim {
        /// Another request holds a claim on the id.
        case waitFor(HashedID)
        /// The id names a reservation, whose lines are in the shards of `mask`.
        case existing(HashedID, mask: UInt64)
        /// The id is this request's to make a reservation under; `oneLine` is the route of its line
        /// when it is one line naming its warehouse.
        case claimed(HashedID, oneLine: OneLineRoute?)
    }

    /// What `askAhead` learned of a reservation request: its id with its hash, and the route of its
    /// line when it is one line naming its warehouse.
    struct AskedAhead {
        let hashed: HashedID
        let oneLine: OneLineRoute?
    }

    /// Hashes `request`'s id once, for the directory and the shard's table, and asks for the slots its
    /// claim will read: the directory's and, for one line naming its warehouse (whose shard and cell
    /// are known now), the slots its id and cell will be looked up in, in its shard. A caller with
    /// other work before the claim calls it first, so that the misses overlap with that work.
    @inline(__always)
    func askAhead(_ request: ReserveRequest) -> AskedAhead {
        let hashed = HashedID(request.id)
        var oneLine: OneLineRoute?
        if request.lines.count == 1 && request.lines[0].warehouse != Identifiers.anyWarehouse {
            let route = OneLineRoute(CellKey(variant: request.lines[0].variant, warehouse: request.lines[0].warehouse), router)
            withShard(route.shard) { $0.prefetch(idHash: hashed.hash, cellHash: route.cellHash) }
            // Not the ledger ring's slot its entry will take: finding it reads the ledger's numbers,
            // a 16-byte word that only a `cmpxchg16b` reads whole, so the read was a locked write to
            // the line every reservation of either core takes its numbers from, ahead of the one it
            // takes them with (`spread` ran 4% faster on one CPU and 9% on two without it).
            oneLine = route
        }
        directory.prefetch(hash: hashed.hash)
        return AskedAhead(hashed: hashed, oneLine: oneLine)
    }

    /// Claims `request`'s reservation id in the directory. `ahead`: its `askAhead`.
    func claimReservation(_ request: ReserveRequest, ahead: AskedAhead) -> ReservationClaim {
        switch directory.tryClaim(request.id, hash: ahead.hashed.hash) {
        case nil: return .waitFor(ahead.hashed)
        case .existing(let mask): return .existing(ahead.hashed, mask: mask)
        case .claimed: return .claimed(ahead.hashed, oneLine: ahead.oneLine)
        }
    }

    /// One try at `request`, its id's claim being `claim`.
    private func attemptReserve(_ request: ReserveRequest, _ claim: ReservationClaim, now: Timestamp, actor: String) -> Attempt {
        switch claim {
        case .waitFor(let hashed):
            return .waitForClaim(hashed)
        case .existing(let hashed, let mask):
            // A replay or a conflicting reuse of the id: the home shard has the reservation and decides.
            // Nil: it was forgotten since the claim looked; then the id is free: claim it again.
            let expected = ExpectedReservation(id: request.id, mask: mask)
            let settings = self.settings
            let decision = shards[mask.trailingZeroBitCount].execute(
                .reserve(request), now: now, actor: actor, settings: settings, catalogVersion: nil, reservation: expected, hashedID: hashed)
            guard let decision else {
                _ = dropStaleDirectoryEntry(request.id, mask)
                return .retry
            }
            return .done(decision)
        case .claimed(let hashed, let oneLine):
            return .done(performNewReservation(request, hashedID: hashed, oneLine: oneLine, now: now, actor: actor))
        }
    }

    /// `performNewReservation` of a reservation of one line naming its warehouse (`route`: its cell's),
    /// answered where its shard made it: a decision around it would be copied whole (369 bytes) on
    /// its way to the answer. Its claim is settled.
    @inline(__always)
    func answerNewOneLineReservation(
        _ request: ReserveRequest, hashedID: HashedID, route: OneLineRoute, now: Timestamp, actor: String
    ) -> Outcome<Reply> {
        answerNewOneLineReservation(
            request, hashedID: hashedID, route: route, now: now, actor: actor, made: { .ok(.reservation(ReservationRecord($0))) }, otherwise: { $0 })
    }

    /// `answerNewOneLineReservation`, its answer built by `made` from the reservation made and by
    /// `otherwise` from any other outcome.
    @inline(__always)
    func answerNewOneLineReservation<Answer>(
        _ request: ReserveRequest, hashedID: HashedID, route: OneLineRoute, now: Timestamp, actor: String,
        made: (consuming OneLineReservation) -> Answer, otherwise: (consuming Outcome<Reply>) -> Answer
    ) -> Answer {
        let mask: UInt64 = 1 << UInt64(route.shard)
        // Settled once the shard's lock is let go, as `settleNewReservation` settles.
        let (settlement, answer) = withShard(route.shard) {
            $0.reserveOneLine(
                request, hashedID: hashedID, cellHash: route.cellHash, now: now, actor: actor, settings: settings,
                made: { r in (ClaimSettlement(made: r, mask: mask), made(r)) },
                otherwise: { performed in (ClaimSettlement(of: performed, mask: mask, router: router), otherwise(performed.outcome())) })
        }
        settle(hashedID, settlement)
        return answer
    }

    /// Runs `body` with shard `i`, not retained: the engine keeps every shard for its whole life. Every
    /// request's path reaches a shard, and a retain and release write the shard's header, a line that
    /// the other cores' requests write too: among 16 shards on 2 cores, the retain was a cache miss
    /// as often as not (4% of `spread`'s time at one call).
    @inline(__always) func withShard<R>(_ i: Int, _ body: (Shard) -> R) -> R {
        shardRefs[i]._withUnsafeGuaranteedRef(body)
    }

    /// Where a one-line reservation naming its warehouse goes: its cell's shard and `CellTable.hash`.
    struct OneLineRoute {
        let shard: Int
        let cellHash: UInt64

        init(shard: Int, cellHash: UInt64) {
            self.shard = shard
            self.cellHash = cellHash
        }

        init(_ cell: CellKey, _ router: ShardRouter) {
            let stable = cell.stableHash
            shard = router.shard(forStableHash: stable)
            cellHash = CellTable.hash(stable: stable)
        }
    }

    /// Decides a reservation whose id this request has claimed, and settles the claim.
    /// `oneLine`: its route, when it is one line naming its warehouse and the caller has it.
    func performNewReservation(_ request: ReserveRequest, hashedID: HashedID, oneLine: OneLineRoute? = nil, now: Timestamp, actor: String) -> Performed {
        if !request.lines.contains(where: { $0.warehouse == Identifiers.anyWarehouse }) {
            // The most common request, one line naming its warehouse: decided and committed in its
            // cell's shard without a commit.
            if request.lines.count == 1 {
                let route = oneLine ?? OneLineRoute(CellKey(variant: request.lines[0].variant, warehouse: request.lines[0].warehouse), router)
                let performed = withShard(route.shard) {
                    $0.reserveOneLine(
                        request, hashedID: hashedID, cellHash: route.cellHash, now: now, actor: actor, settings: settings,
                        made: { .reserved($0) }, otherwise: { $0 })
                }
                return settleNewReservation(hashedID, performed, mask: 1 << UInt64(route.shard))
            }
            // Each cell is hashed once, on the stack: the hashes give the mask and, across shards, each
            // cell's shard and slot.
            return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: request.lines.count) { stables -> Performed in
                var mask: UInt64 = 0
                for (i, line) in request.lines.enumerated() {
                    let stable = CellKey(variant: line.variant, warehouse: line.warehouse).stableHash
                    stables.initializeElement(at: i, to: stable)
                    mask |= 1 << UInt64(router.shard(forStableHash: stable))
                }
                // The common case, every line in one shard, needs the mask only: no array of cells,
                // and the shard finds each cell itself.
                if mask.nonzeroBitCount == 1 {
                    return settleNewReservation(hashedID, route(.reserve(request), mask: mask, cells: [], hashedID: hashedID, now: now, actor: actor)!, mask: mask)
                }
                // Each line's cell routed, on the stack too: an array of them was an allocation per
                // reservation.
                return withUnsafeTemporaryAllocation(of: RoutedCell.self, capacity: request.lines.count) { routed -> Performed in
                    for (i, line) in request.lines.enumerated() {
                        routed.initializeElement(at: i, to: RoutedCell(CellKey(variant: line.variant, warehouse: line.warehouse), stable: stables[i], router))
                    }
                    defer { _ = routed.deinitialize() }
                    let performed = reserveAcrossShards(request, hashedID: hashedID, cells: UnsafeBufferPointer(routed), mask: mask, now: now, actor: actor)
                    return settleNewReservation(hashedID, performed, mask: mask)
                }
            }
        }
        while true {
            // `*` lines: the cells they may be placed in are those of the catalog as it is now; the
            // shards check that it has not changed by the time they are held.
            let catalog = self.catalog.withLock { $0 }
            // Made with room for every line at once: an array copied from the lazy filter grows as it goes.
            var cells: [CellKey] = []
            cells.reserveCapacity(request.lines.count)
            for line in request.lines {
                if line.warehouse == Identifiers.anyWarehouse {
                    cells += catalog.placementCells(of: line.variant)
                } else {
                    cells.append(CellKey(variant: line.variant, warehouse: line.warehouse))
                }
            }
            // With no active warehouse a `*` line touches no cell; the rules refuse it on any shard.
            let mask = cells.isEmpty ? 1 : router.mask(of: cells)
            guard let performed = route(.reserve(request), mask: mask, cells: cells, catalogVersion: catalog.version, hashedID: hashedID, now: now, actor: actor) else {
                continue  // the catalog changed while planning placement: plan again
            }
            return settleNewReservation(hashedID, performed)
        }
    }

    /// Settles the claim on a new reservation's id: its shards when it was made, free when not.
    /// `mask`: the shards of its lines, when the caller knows them.
    func settleNewReservation(_ hashedID: HashedID, _ performed: consuming Performed, mask: UInt64? = nil) -> Performed {
        settle(hashedID, ClaimSettlement(of: performed, mask: mask, router: router))
        return performed
    }

    /// Settles the claim on a new reservation's id as `settlement` says.
    func settle(_ hashedID: HashedID, _ settlement: ClaimSettlement) {
        switch settlement {
        case .made(let expiresAt, let mask):
            directory.commit(hashedID.id, hash: hashedID.hash, mask)
            scheduleExpiry(of: hashedID.id, hash: hashedID.hash, at: expiresAt)
        case .notMade:
            directory.abandon(hashedID.id, hash: hashedID.hash)
        }
    }

    /// Performs `command` on the shards in `mask`: inside the one shard when that is all, holding each
    /// shard otherwise. Returns nil, changing nothing, when the plan is stale: `catalogVersion` or
    /// `expected` (what the directory said about the reservation) no longer holds. Without either it
    /// always returns a result. `cells`: the cells to gather when `mask` spans shards (unread when it
    /// names one).
    private func route(
        _ command: Command, mask: UInt64, cells: [CellKey], expected: ExpectedReservation? = nil, catalogVersion: UInt64? = nil,
        hashedID: HashedID? = nil, now: Timestamp, actor: String
    ) -> Performed? {
        if mask.nonzeroBitCount == 1 {
            let settings = self.settings
            let decision = shards[mask.trailingZeroBitCount].execute(
                command, now: now, actor: actor, settings: settings, catalogVersion: catalogVersion, reservation: expected, hashedID: hashedID)
            return decision
        }
        return performHoldingShards(command, mask: mask, cells: cells, expected: expected, catalogVersion: catalogVersion, now: now, actor: actor)
    }

    /// Drops a directory entry whose home shard does not keep the reservation: a RESET emptied the
    /// shard between a reservation's commit and its entry (nothing else leaves such an entry, since an
    /// entry is committed only after its reservation, and forgetting reclaims the entry first).
    /// Returns false, changing nothing, when the entry changed meanwhile or the reservation is there.
    /// A reservation in one shard has no entry of its own to drop: its slot names only a shard to ask,
    /// and asking it removes a slot it does not account for (`ReservationDirectory.reconcile`), so
    /// the caller's next look finds the id free.
    func dropStaleDirectoryEntry(_ id: String, _ mask: UInt64) -> Bool {
        guard mask.nonzeroBitCount > 1 else { return false }
        let home = shards[mask.trailingZeroBitCount]
        guard directory.peek(id) == mask, home.withState({ !$0.reservations.contains(id, hash: id.hashValue) }) else { return false }
        guard let reclaimed = directory.reclaim(id) else { return false }
        if reclaimed == mask && home.withState({ !$0.reservations.contains(id, hash: id.hashValue) }) {
            directory.drop(id)
            return true
        }
        directory.keep(id)
        return false
    }

    /// After a commit (applied): a hold with a deadline gets its expiry queued; a reservation that
    /// just closed gets forgotten after the retention window, through an item of its own or, when its
    /// request's expiry item is still to come and comes within the window, through that one
    /// (`expiryThatForgets`).
    ///
    /// "Still to come" is asked of the due work after the commit is applied: a commit timed before
    /// the first deadline can be applied after that deadline's items were taken (its time was read
    /// before it waited for a KEY or for its shard, or the clock was set back), and the item, finding
    /// the reservation still open, left it. Items are marked taken before they run and read the
    /// reservation under its shard's lock, which the commit held: either the item saw it closed, or
    /// this sees the mark and gives it an item of its own (both, at worst: forgetting twice is
    /// forgetting once).
    func scheduleFollowUps(of commit: Commit) {
        guard let r = commit.reservation else { return }
        if commit.entries.contains(where: { $0.type == .reserve || $0.type == .extend }) { scheduleExpiry(of: r.id, at: r.expiresAt) }
        guard let closed = r.closedAt, closed == commit.time else { return }
        if let first = expiryThatForgets(createdAt: r.createdAt, ttl: r.requestTTL, closedAt: closed), !dueWork.hasTaken(through: first) { return }
        scheduleForget(of: r.id, closedAt: closed)
    }

    func scheduleForget(of id: String, closedAt closed: Timestamp) {
        dueWork.schedule(DueItem(deadline: closed.advanced(by: configuration.retention), kind: .forgetReservation, name: id))
    }

    /// The first deadline of a reservation made at `createdAt` with a TTL of `ttl` and closed at
    /// `closedAt`, when the expiry item there is left to schedule its forgetting, rather than the close
    /// giving it an item of its own; nil otherwise. So a closed reservation keeps one item for the
    /// retention window, not two.
    ///
    /// Every reservation whose request had a TTL has an expiry item at `createdAt + ttl` (its first
    /// deadline) until that time: scheduled when it was made (or replayed), or when a snapshot holding
    /// it open was loaded, and never removed early. When it closes before that deadline and the
    /// deadline comes no later than the window's end, that item, finding it closed, schedules the
    /// forgetting (`runDueWork`), at the same time as the close would have: nothing is forgotten
    /// early or late. Later deadlines (an EXTEND's) are other items, which find it closed too and
    /// leave it to the first.
    func expiryThatForgets(createdAt: Timestamp, ttl: Duration?, closedAt: Timestamp) -> Timestamp? {
        guard let first = Reservation.firstDeadline(createdAt: createdAt, ttl: ttl) else { return nil }
        return closedAt < first && first <= closedAt.advanced(by: configuration.retention) ? first : nil
    }


    // MARK: Due work

    /// Schedules the expiry of reservation `id`'s hold at `deadline` (none without one); `hash`:
    /// `id.hashValue`, when the caller has it.
    func scheduleExpiry(of id: String, hash: Int? = nil, at deadline: Timestamp?) {
        if let deadline { dueWork.schedule(DueItem(deadline: deadline, kind: .expire, name: id, hash: hash)) }
    }

    /// Runs whatever is due now, so that what follows sees every expiry whose deadline has come.
    /// Returns the time it judged by. Costs one atomic load when nothing is due.
    func settleDueWork() async -> Timestamp {
        let now = clock.now()
        if runsDueWork && dueWork.isDue(at: now) { await runDueWork(at: now) }
        return now
    }

    /// Expires every hold whose deadline is at or before `now` and forgets what the retention window
    /// let go. Every operation calls this first when something is due, so expiry is exact.
    public func runDueWork(at now: Timestamp? = nil) async {
        let now = now ?? clock.now()
        await dueWork.run(at: now) { item in
            switch item.kind {
            case .expire:
                // A shard named by a slot alone is not asked first: expiring an id it does not keep
                // changes nothing.
                guard let (mask, _) = directory.tryLocate(item.name, hash: item.name.hashValue) ?? nil else { return }
                let finding =
                    mask.nonzeroBitCount == 1
                    ? shards[mask.trailingZeroBitCount].expire(item.name, deadline: item.deadline, actor: Self.engineActor)
                    : expireHoldingShards(item.name, mask: mask, deadline: item.deadline)
                switch finding {
                case .expired(let commit):
                    scheduleFollowUps(of: commit)
                case .closed(let createdAt, let ttl, let closedAt) where expiryThatForgets(createdAt: createdAt, ttl: ttl, closedAt: closedAt) == item.deadline:
                    // The first deadline of a reservation that closed before it: its forgetting was left to this item.
                    scheduleForget(of: item.name, closedAt: closedAt)
                case .closed, .nothing:
                    break
                }
            case .forgetReservation:
                guard let mask = directory.reclaim(item.name) else { return }
                let limit = Timestamp(milliseconds: now.milliseconds - configuration.retention.wholeMilliseconds)
                if shards[mask.trailingZeroBitCount].forget(item.name, closedBefore: limit) {
                    directory.drop(item.name)
                } else {
                    directory.keep(item.name)
                }
            case .forgetKey:
                // The item of this use of the key: its deadline is the window's end, counted from the
                // use (a key used again since has an item of its own).
                guard let record = keys.reclaim(item.name) else { return }
                if record.isFirstUsed(at: item.deadline.advanced(by: .zero - configuration.retention)) {
                    keys.abandon(item.name)
                } else {
                    keys.commit(item.name, record)
                }
            }
        }
    }
}

extension Engine {
    /// LIMIT when a command passes the limits of `Limits` but not the lower ones this engine was
    /// configured with.
    func configuredLimitRefusal(_ command: Command) -> Refusal? {
        guard configuration.lowersLimits else { return nil }
        let quantities: [Quantity]
        switch command {
        case .reserve(let r):
            return configuredReserveRefusal(r)
        case .release(_, let line?, _, _), .fulfill(_, let line?, _): quantities = [line.quantity]
        case .adjust(_, _, let delta, _, _, _, _): quantities = [Quantity(Int64(delta.units.magnitude))]
        case .setQuantity(_, _, let q, _, let expected, _): quantities = [q] + (expected.map { [$0] } ?? [])
        case .count(_, _, let counted, _, _), .importStock(_, _, let counted): quantities = [counted]
        case .transfer(_, _, _, let q, _, _), .returnStock(_, _, let q, _, _, _): quantities = [q]
        default: quantities = []
        }
        return quantities.lazy.compactMap(configuredQuantityRefusal).first
    }

    /// `configuredLimitRefusal` of a reservation request, without wrapping it in a command.
    func configuredReserveRefusal(_ r: ReserveRequest) -> Refusal? {
        let c = configuration
        guard c.lowersLimits else { return nil }
        if r.lines.count > c.linesPerReservationMax { return .limit("a reservation may have at most \(c.linesPerReservationMax) lines") }
        return r.lines.lazy.compactMap { self.configuredQuantityRefusal($0.quantity) }.first
    }

    /// LIMIT when `q` passes the configured `quantityMax` (the SPEC's own limit is checked by validation).
    func configuredQuantityRefusal(_ q: Quantity) -> Refusal? {
        q > configuration.quantityMax ? .limit("quantity may not exceed \(configuration.quantityMax)") : nil
    }
}

/// Refusals by code, for STATS. Atomic so that a sold-out flash sale does not contend on a lock.
final class RefusalCounters: Sendable {
    private let counts: [Counter]

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    init() {
        counts = (0...RefusalCode.allCases.map(\.rawValue).max()!).map { _ in Counter() }
    }

    func count(_ code: RefusalCode) {
        counts[code.rawValue].value.add(1, ordering: .relaxed)
    }

    func value(_ code: RefusalCode) -> Int {
        counts[code.rawValue].value.load(ordering: .relaxed)
    }

    func resetAll() {
        for c in counts { c.value.store(0, ordering: .relaxed) }
    }
}

/// What an expiry item found, under its shards' holds: the hold expired (its commit); the reservation
/// closed before (when it was made, its request's TTL, when it closed: whether this item is the one
/// that forgets it, `Engine.expiryThatForgets`); or nothing to do.
enum ExpiryFinding {
    case expired(Commit)
    case closed(createdAt: Timestamp, ttl: Duration?, closedAt: Timestamp)
    case nothing
}

/// A group of changes opened by `Engine.beginChangeGroup`.
struct ChangeGroup: Sendable {
    fileprivate let ticket: UInt64
}

/// The log group of a caller's batch (`Engine.execute(_ batch:)`, a server's turn), opened while it
/// decides without a suspension point and ended before anything that may wait (a command that waits
/// for a claim or due work, a read that waits for the log), which would otherwise hold the log's next
/// write back for the group's whole bound. Only a batch of `Engine.changeGroupCommandCountMin`
/// commands or more is grouped.
public struct ChangeGroupSpan: Sendable {
    private let grouped: Bool
    private var group: ChangeGroup?

    /// The span of a batch of `commandCount` commands, not open yet.
    public init(commandCount: Int) {
        grouped = commandCount >= Engine.changeGroupCommandCountMin
    }

    /// Opens the group, unless it is open or the batch is too short to be grouped.
    public mutating func open(_ engine: Engine) {
        if grouped && group == nil { group = engine.beginChangeGroup() }
    }

    /// Ends the group if it is open.
    public mutating func end(_ engine: Engine) {
        if let g = group.take() { engine.endChangeGroup(g) }
    }
}
