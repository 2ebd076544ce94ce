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
        var next = 0
        while next < batch.count {
            // A run of new reservations in one shard is decided entering the shard once.
            let taken = decideRun(batch[next...], actor: actor, scratch: &scratch, into: &outcomes)
            if taken > 0 {
                next += taken
                continue
            }
            let command = batch[next]
            next += 1
            // `decideNow` first, here: an async call costs an executor check even when nothing waits.
            if let decided = decideNow(command, actor: actor) {
                outcomes.append(decided)
            } else {
                outcomes.append(await decideWaiting(command, actor: actor))
            }
        }
        if ledger.log != nil, let failure = await waitUntilDurable() {
            for i in outcomes.indices { outcomes[i] = .refused(failure) }
        }
        // Counted as `execute` counts: by the answer the caller gets.
        for case .refused(let r) in outcomes { refusals.count(r.code) }
        return outcomes
    }

    /// The run `execute(_ batch:)` decides entering each shard once, for a caller that answers many
    /// requests in a row without a suspension point (a server's loop turn; see
    /// `executeWithoutWaiting`): decides the leading run of `commands` that are new reservations
    /// all in one shard, appends their outcomes to `outcomes`, and returns how many it decided — 0
    /// when the first is not one (then take it the ordinary way). Await `waitUntilDurable()` before
    /// revealing any of them.
    public func executeRunWithoutWaiting(_ commands: ArraySlice<Command>, actor: String = "", into outcomes: inout [Outcome<Reply>]) -> Int {
        var scratch = RunScratch()
        let start = outcomes.count
        let taken = decideRun(commands, actor: actor, scratch: &scratch, into: &outcomes)
        for case .refused(let r) in outcomes[start...] { refusals.count(r.code) }
        return taken
    }

    /// Decides the run of commands at the start of `commands` that are new reservations with every
    /// line in one shard — the same shard — entering that shard once for the lot, and appends their
    /// outcomes. (A run spanning shards would hold them all while it decides: measured with a log,
    /// where each commit hands its record over inside the lock, that stalled the other threads more
    /// than it saved.) Returns how many it decided: 0 when the first command is not such a reservation,
    /// when its id is known or in flight, or when due work must run first; the caller then takes
    /// that command the ordinary way. A run of one is decided as `decideNow` decides it.
    ///
    /// The outcomes are those of `decideNow` one command at a time: each is validated and its id
    /// claimed first (outside the shard, as `decideNow` does), the run ends at the first command
    /// that is anything else (a refusal by validation, a known id or one in flight, a line in
    /// another shard, a `*` line), and the shard decides the claimed ones in order. Nothing else
    /// can come between them that one at a time would have seen: another thread's command on the
    /// same shard waits for the lock either way, and commands on other shards do not touch it.
    /// All are judged at one instant, as due work is settled up to it first.
    func decideRun(_ commands: ArraySlice<Command>, actor: String, scratch: inout RunScratch, into outcomes: inout [Outcome<Reply>]) -> Int {
        guard case .reserve = commands.first else { return 0 }
        let now = clock.now()
        if runsDueWork && dueWork.isDue(at: now) { return 0 }
        scratch.run.removeAll(keepingCapacity: true)
        scratch.decisions.removeAll(keepingCapacity: true)
        // The eligible commands first, without claiming anything; the arrays only from the second.
        // A command is looked at by its shard before it is validated, so that the one that ends the
        // run (in a spread load, usually the second) costs a hash, not a check.
        var first: ReserveRequest?
        var shard: UInt64 = 0
        func mask(of lines: [ReserveLine]) -> UInt64 {
            router.mask(of: lines.lazy.map { CellKey(variant: $0.variant, warehouse: $0.warehouse) })
        }
        for command in commands {
            guard case .reserve(let given) = command, !given.lines.contains(where: { $0.warehouse == Identifiers.anyWarehouse }) else { break }
            let givenMask = mask(of: given.lines)
            if shard != 0 && givenMask != shard { break }
            guard case .ok(.reserve(let request)) = Validation.normalize(command), configuredLimitRefusal(.reserve(request)) == nil else { break }
            // Validation writes the lines only to upper-case a warehouse code; when it did not, the
            // lines are the same array (compared by identity first) and so is the mask.
            let normalizedMask = request.lines == given.lines ? givenMask : mask(of: request.lines)
            guard normalizedMask.nonzeroBitCount == 1, shard == 0 || normalizedMask == shard else { break }
            shard = normalizedMask
            guard let first else {
                first = request
                continue
            }
            if scratch.run.isEmpty {
                scratch.run.reserveCapacity(commands.count)
                scratch.run.append((first, HashedID(first.id)))
            }
            scratch.run.append((request, HashedID(request.id)))
        }
        guard let first else { return 0 }
        if scratch.run.isEmpty {
            // A run of one: as `decideNow` would decide it, or the ordinary path when it must wait
            // or the id is known.
            let hashed = HashedID(first.id)
            guard case .claimed = directory.tryClaim(first.id, hash: hashed.hash) else { return 0 }
            outcomes.append(performNewReservation(first, hashedID: hashed, now: now, actor: actor).outcome)
            return 1
        }
        // Then the claims, in order: the run ends before the first id that is known or in flight.
        for i in scratch.run.indices {
            guard case .claimed = directory.tryClaim(scratch.run[i].request.id, hash: scratch.run[i].hashed.hash) else {
                scratch.run.removeSubrange(i...)
                break
            }
        }
        guard !scratch.run.isEmpty else { return 0 }
        shards[shard.trailingZeroBitCount].executeRun(scratch.run[...], now: now, actor: actor, settings: settings, into: &scratch.decisions)
        for (claimed, decision) in zip(scratch.run, scratch.decisions) {
            outcomes.append(settleNewReservation(claimed.request, hashedID: claimed.hashed, Performed(decision)).outcome)
        }
        return scratch.run.count
    }
}

/// What `decideRun` gathers, kept from one run to the next of a batch so that its arrays are made once.
struct RunScratch {
    var run: [(request: ReserveRequest, hashed: HashedID)] = []
    var decisions: [Decision] = []
}
