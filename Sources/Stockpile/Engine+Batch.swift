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
        for command in batch {
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
}
