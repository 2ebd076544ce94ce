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
        scratch.requests.removeAll(keepingCapacity: true)
        scratch.hashes.removeAll(keepingCapacity: true)
        scratch.decisions.removeAll(keepingCapacity: true)
        // The eligible commands first, without claiming anything. A command is looked at by its shard
        // before it is validated, so that the one that ends the run (in a spread load, usually the
        // second) costs a hash, not a check. Each request is copied out of its command once; from
        // then on it is read in place.
        var shard: UInt64 = 0
        for command in commands {
            guard case .reserve(let request) = command, let mask = runMask(of: request, joining: shard) else { break }
            shard = mask
            // Room for the rest of the batch at the first of a run of two or more, once.
            if scratch.requests.count == 1 && scratch.requests.capacity < commands.count {
                scratch.requests.reserveCapacity(commands.count)
                scratch.hashes.reserveCapacity(commands.count)
            }
            scratch.requests.append(request)
        }
        // Then the claims, in order: the run ends before the first id that is known or in flight.
        for i in scratch.requests.indices {
            let hash = scratch.requests[i].id.hashValue
            guard case .claimed = directory.tryClaim(scratch.requests[i].id, hash: hash) else {
                scratch.requests.removeSubrange(i...)
                break
            }
            scratch.hashes.append(hash)
        }
        switch scratch.requests.count {
        case 0:
            return 0
        case 1:
            // A run of one: as `decideNow` decides it.
            let request = scratch.requests[0]
            outcomes.append(performNewReservation(request, hashedID: HashedID(request.id, hash: scratch.hashes[0]), now: now, actor: actor).outcome)
            return 1
        default:
            break
        }
        shards[shard.trailingZeroBitCount].executeRun(scratch.requests, hashes: scratch.hashes, now: now, actor: actor, settings: settings, into: &scratch.decisions)
        for i in scratch.decisions.indices {
            outcomes.append(settleNewReservation(id: scratch.requests[i].id, hash: scratch.hashes[i], Performed(scratch.decisions[i])).outcome)
        }
        return scratch.requests.count
    }

    /// The shard (as a mask) of `request` when it may join a run of new reservations in `shard` (0:
    /// the run is empty so far); nil when it may not. It may when it has no `*` line, every line is in
    /// that one shard, it is valid as it is (a warehouse code that validation would upper-case ends
    /// the run: it is taken the ordinary way), and it is within the configured limits.
    private func runMask(of request: ReserveRequest, joining shard: UInt64) -> UInt64? {
        guard !request.lines.contains(where: { $0.warehouse == Identifiers.anyWarehouse }) else { return nil }
        let mask = router.mask(of: request.lines.lazy.map { CellKey(variant: $0.variant, warehouse: $0.warehouse) })
        guard mask.nonzeroBitCount == 1, shard == 0 || mask == shard else { return nil }
        guard case .some(false) = try? Validation.checkReserve(request), configuredReserveRefusal(request) == nil else { return nil }
        return mask
    }
}

/// What `decideRun` gathers, kept from one run to the next of a batch so that its arrays are made once.
struct RunScratch {
    var requests: [ReserveRequest] = []
    /// The hash of each claimed id of the run, in order.
    var hashes: [Int] = []
    var decisions: [Decision] = []
}
