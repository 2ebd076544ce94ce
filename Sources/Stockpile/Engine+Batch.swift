// The batch entry point: many commands in one call, answered in order, with one wait for the log at
// the end instead of one per command. An order service submits an order's lines and gets their
// outcomes in order; a server submits what one loop turn read. It keeps true: the outcomes are those
// the same commands would get one at a time, in the same order (a batch is not a transaction: each
// command is all-or-nothing on its own, and a refusal does not stop the ones after it); no outcome is
// returned before everything the batch did is as safe as the durability policy promises.

import StockpileCore

extension Engine {
    /// Performs `batch` in order and returns one outcome per command, in order. Cost: what the
    /// commands cost one by one, and one wait for the log for the whole batch.
    ///
    /// When the log fails during the batch, every outcome is READONLY, as it is for a single command
    /// whose wait fails: nothing the batch did or saw may be revealed (SPEC §4).
    public func execute(_ batch: [Command], actor: String = "") async -> [Outcome<Reply>] {
        var outcomes: [Outcome<Reply>] = []
        outcomes.reserveCapacity(batch.count)
        var scratch = RunScratch()
        var runAnswers: [RunAnswer] = []
        var runOutcomes: [Outcome<Reply>] = []
        var next = 0
        // A long batch's changes go to the log as a group, a write not starting halfway through them,
        // while they are decided without a suspension point (`ChangeGroupSpan`).
        var group = ChangeGroupSpan(commandCount: batch.count)
        while next < batch.count {
            group.open(self)
            // A run of new reservations, each in one shard, is decided entering each of its shards once
            // per `runHoldCount` of its reservations.
            runAnswers.removeAll(keepingCapacity: true)
            runOutcomes.removeAll(keepingCapacity: true)
            let taken = decideRun(batch[next...], actor: actor, scratch: &scratch, into: &runAnswers, outcomes: &runOutcomes)
            if taken > 0 {
                for (i, answer) in runAnswers.enumerated() {
                    switch answer {
                    case .made(let facts):
                        outcomes.append(.ok(.reservation(facts.record(of: batch[next + i]))))
                    case .outcome(let k):
                        outcomes.append(runOutcomes[k])
                    }
                }
                next += taken
                continue
            }
            let command = batch[next]
            next += 1
            // `decideNow` first, here: an async call costs an executor check even when nothing waits.
            if let decided = decideNow(command, actor: actor) {
                outcomes.append(decided)
            } else {
                group.end(self)
                outcomes.append(await decideWaiting(command, actor: actor))
            }
        }
        group.end(self)
        if ledger.log != nil, let failure = await waitUntilDurable() {
            for i in outcomes.indices { outcomes[i] = .refused(failure) }
        }
        // Counted as `execute` counts: by the answer the caller gets.
        for case .refused(let r) in outcomes { refusals.count(r.code) }
        return outcomes
    }

    /// The run `execute(_ batch:)` decides entering each shard once per `runHoldCount` reservations,
    /// for a caller that answers many requests in a row without a suspension point (a server's loop turn; see
    /// `executeWithoutWaiting`): decides the leading run of `commands` that are new reservations
    /// each in one shard, appends one answer per command to `answers` (in order) and the outcomes they
    /// refer to to `outcomes` (in any order: an answer holds its outcome's index), and returns how many it decided — 0 when the first is not one (then
    /// take it the ordinary way). Await `waitUntilDurable()` before revealing any of them. It works in
    /// `scratch`'s arrays, which the caller keeps for its next run. They are left empty: a copy of a
    /// request kept there would share its array of lines with the request, and a caller that reuses
    /// that array (`SpareLines`) would copy it.
    public func executeRunWithoutWaiting(
        _ commands: ArraySlice<Command>, actor: String = "", scratch: inout RunScratch, into answers: inout [RunAnswer],
        outcomes: inout [Outcome<Reply>]
    ) -> Int {
        let start = outcomes.count
        let taken = decideRun(commands, actor: actor, scratch: &scratch, into: &answers, outcomes: &outcomes)
        for case .refused(let r) in outcomes[start...] { refusals.count(r.code) }
        scratch.removeAll()
        return taken
    }

    /// Decides the run of commands at the start of `commands` that are new reservations with every
    /// line in one shard, entering each shard once per `runHoldCount` of them, and appends their
    /// outcomes in order.
    /// Returns how many it decided: 0 when the first command is not such a reservation, when its id
    /// is known or in flight, or when due work must run first; the caller then takes that command the
    /// ordinary way. A run of one is decided as `decideNow` decides it.
    ///
    /// The outcomes are those of `decideNow` one command at a time, in order: each is validated and
    /// its id claimed first (outside the shards, as `decideNow` does), and the run ends at the first
    /// command that is anything else (a refusal by validation, a known id or one in flight, a `*`
    /// line, lines in several shards). Each shard then decides its own reservations of the run, in
    /// their order, one shard after the other, holding one lock at a time (holding them all would
    /// stall the other threads: measured with a log, where each commit hands its record over inside
    /// the lock). Taking a shard's reservations before another shard's that came earlier changes no
    /// outcome: they have different ids (all claimed) and touch different cells, so neither reads
    /// what the other writes. Only their order in the ledger, and so in the log and the event
    /// stream, is the shards' order rather than the run's, which one at a time from several threads
    /// could give as well (docs/DECISIONS.md). Nothing can come between a shard's reservations that
    /// one at a time would not allow: another thread's command on the same shard waits for the lock
    /// during a hold, and may come between two holds as it may between two commands taken one at a
    /// time. All are judged at one instant, as due work is settled up to it first.
    func decideRun(
        _ commands: ArraySlice<Command>, actor: String, scratch: inout RunScratch, into answers: inout [RunAnswer], outcomes: inout [Outcome<Reply>]
    ) -> Int {
        guard case .reserve = commands.first else { return 0 }
        let now = clock.now()
        if runsDueWork && dueWork.isDue(at: now) { return 0 }
        // Made on the stack for a run of a few hundred: each request's shard and its cell's hash; then
        // the run's positions grouped by shard, and where each position's decision is.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * commands.count + shards.count + 1) { space in
            decideRun(commands, now: now, actor: actor, scratch: &scratch, space: space, into: &answers, outcomes: &outcomes)
        }
    }

    private func decideRun(
        _ commands: ArraySlice<Command>, now: Timestamp, actor: String, scratch: inout RunScratch, space: UnsafeMutableBufferPointer<Int>,
        into answers: inout [RunAnswer], outcomes: inout [Outcome<Reply>]
    ) -> Int {
        let n = commands.count
        let shardOf = UnsafeMutableBufferPointer(rebasing: space[0..<n])
        let cellHashes = UnsafeMutableBufferPointer(rebasing: space[n..<2 * n])
        scratch.removeAll()
        // The eligible commands first, without claiming anything. Each request is copied out of its
        // command once; from then on it is read in place.
        for command in commands {
            guard case .reserve(let request) = command, let (mask, cellHash) = runMask(of: request) else { break }
            // Room for the rest of the batch, once, before the first of a run that has a second.
            if scratch.requests.isEmpty && scratch.requests.capacity < n && n > 1, case .reserve = commands[commands.startIndex + 1] {
                scratch.requests.reserveCapacity(n)
                scratch.hashes.reserveCapacity(n)
            }
            shardOf[scratch.requests.count] = mask.trailingZeroBitCount
            cellHashes[scratch.requests.count] = Int(bitPattern: UInt(cellHash))
            scratch.requests.append(request)
        }
        // Then the claims, in order: the run ends before the first id that is known or in flight.
        // Every id is hashed first and its directory slot asked for, so that the claims' cache misses
        // overlap; so are the slots its shard will look the id and the cell up in (through the
        // shard's published hints, without its lock). Asked for only once a shard held the run,
        // four requests ahead, they had not come when its first requests read them: a shard's part
        // of a turn is a few requests.
        for (i, request) in scratch.requests.enumerated() {
            let hash = request.id.hashValue
            directory.prefetch(hash: hash)
            scratch.hashes.append(hash)
            let cellHash = UInt64(UInt(bitPattern: cellHashes[i]))
            withShard(shardOf[i]) { shard in
                if cellHash != 0 { shard.prefetch(idHash: hash, cellHash: cellHash) } else { shard.prefetch(idHash: hash) }
            }
        }
        for i in scratch.requests.indices {
            guard case .claimed = directory.tryClaim(scratch.requests[i].id, hash: scratch.hashes[i]) else {
                scratch.requests.removeSubrange(i...)
                scratch.hashes.removeSubrange(i...)
                break
            }
        }
        let count = scratch.requests.count
        switch count {
        case 0:
            return 0
        case 1:
            // A run of one: as `decideNow` decides it.
            // With one line, its route is the one found above.
            let request = scratch.requests[0]
            let hashedID = HashedID(request.id, hash: scratch.hashes[0])
            answers.append(.outcome(outcomes.count))
            if request.lines.count == 1 {
                let route = OneLineRoute(shard: shardOf[0], cellHash: UInt64(UInt(bitPattern: cellHashes[0])))
                outcomes.append(answerNewOneLineReservation(request, hashedID: hashedID, route: route, now: now, actor: actor))
            } else {
                outcomes.append(performNewReservation(request, hashedID: hashedID, now: now, actor: actor).outcome())
            }
            return 1
        default:
            break
        }
        // The positions grouped by shard, each shard's in run order (a counting sort).
        let order = UnsafeMutableBufferPointer(rebasing: space[2 * n..<2 * n + count])
        let place = UnsafeMutableBufferPointer(rebasing: space[3 * n..<3 * n + count])
        let starts = UnsafeMutableBufferPointer(rebasing: space[(4 * n)..<space.count])
        starts.initialize(repeating: 0)
        CountingSort.group(count: count, key: { shardOf[$0] }, order: order, starts: starts, place: place)
        scratch.answers.reserveCapacity(count)
        scratch.settlements.reserveCapacity(count)
        // A shard is held for at most `Self.runHoldCount` reservations at a time: another thread
        // waiting for it (two loops on one hot cell) then waits for a few microseconds, within the
        // lock's spin, instead of for a whole run, which sends it to the kernel to sleep and wake.
        var from = 0
        while from < count {
            let shard = shardOf[order[from]]
            var to = from + 1
            while to < count && shardOf[order[to]] == shard && to - from < Self.runHoldCount { to += 1 }
            withShard(shard) {
                $0.executeRun(
                    scratch.requests, hashes: scratch.hashes, cellHashes: UnsafeBufferPointer(cellHashes),
                    positions: UnsafeBufferPointer(rebasing: order[from..<to]), now: now, actor: actor, settings: settings, into: &scratch.answers,
                    outcomes: &outcomes, settlements: &scratch.settlements)
            }
            from = to
        }
        for i in 0..<count {
            settle(HashedID(scratch.requests[i].id, hash: scratch.hashes[i]), scratch.settlements[place[i]])
            // An outcome went straight to `outcomes`, in the shards' order; its answer has its index.
            answers.append(scratch.answers[place[i]])
        }
        return count
    }

    /// The most reservations of a run decided in one hold of their shard's lock.
    static var runHoldCount: Int { 32 }

    /// The shard (as a mask) of `request` when it may join a run of new reservations, with its cell's
    /// `CellTable.hash` when it has one line (0 otherwise); nil when it may not join. It may when it
    /// has no `*` line, every line is in one shard, it is valid as it is (a warehouse code that
    /// validation would upper-case ends the run: it is taken the ordinary way), and it is within the
    /// configured limits.
    private func runMask(of request: ReserveRequest) -> (mask: UInt64, cellHash: UInt64)? {
        guard !request.lines.contains(where: { $0.warehouse == Identifiers.anyWarehouse }) else { return nil }
        var mask: UInt64 = 0
        var cellHash: UInt64 = 0
        if request.lines.count == 1 {
            let stable = CellKey(variant: request.lines[0].variant, warehouse: request.lines[0].warehouse).stableHash
            mask = 1 << UInt64(router.shard(forStableHash: stable))
            cellHash = CellTable.hash(stable: stable)
        } else {
            mask = router.mask(of: request.lines.lazy.map { CellKey(variant: $0.variant, warehouse: $0.warehouse) })
            guard mask.nonzeroBitCount == 1 else { return nil }
        }
        guard Validation.isValidAsItStands(request), configuredReserveRefusal(request) == nil else { return nil }
        return (mask, cellHash)
    }
}

/// What `decideRun` gathers, kept from one run to the next of a batch so that its arrays are made once;
/// a caller that decides runs again and again (a server's loop) keeps one from call to call
/// (`executeRunWithoutWaiting(_:actor:scratch:into:outcomes:)`). It holds nothing between calls but room.
public struct RunScratch: Sendable {
    public init() {}

    /// Empties the arrays, keeping their room.
    mutating func removeAll() {
        requests.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
        answers.removeAll(keepingCapacity: true)
        settlements.removeAll(keepingCapacity: true)
    }

    /// Lets go of arrays grown past `count` elements by an unusually long run.
    public mutating func trim(to count: Int) {
        if requests.capacity > count { requests = [] }
        if hashes.capacity > count { hashes = [] }
        if answers.capacity > count { answers = [] }
        if settlements.capacity > count { settlements = [] }
    }

    var requests: [ReserveRequest] = []
    /// The hash of each claimed id of the run, in order.
    var hashes: [Int] = []
    /// Each reservation's answer and what settling its claim needs, in the order the shards decided
    /// them (a decision is turned into its answer in its shard: the answer is less than half its
    /// size). The outcomes the answers that are not a new one-line reservation refer to go straight
    /// to the caller's list, in the shards' order.
    var answers: [RunAnswer] = []
    var settlements: [ClaimSettlement] = []
}

/// One command's answer in a run of new reservations (`Engine.executeRunWithoutWaiting`): a new
/// one-line reservation made as its request asked is answered by what it adds to the request (its
/// reply is the record of `NewOneLineFacts.reservation(of:)`), anything else by its outcome, kept
/// beside the answers. A run's answers are copied twice on their way out; as outcomes they were 164
/// bytes each.
public enum RunAnswer: Sendable {
    case made(NewOneLineFacts)
    /// The outcome at this position of the outcomes handed in with the answers.
    case outcome(Int)
}
