// Refusals found before a command reaches the engine. The server's command table refuses a mutation
// whose words are of the wrong form (INVALID) or too large for 64 bits (LIMIT) before any `Command`
// exists; STATS counts every refused mutation by code (SPEC §2, §7.12), so the server reports those
// here. Like every refusal count, they count since the process started: a refusal leaves nothing
// behind, in the log or anywhere else.

import StockpileCore

extension Engine {
    /// Counts a refused mutation that never reached the engine, in STATS' `refused_<code>` and the
    /// refusal metrics. Refusals of `execute` and `executeDeferringDurability` are counted by the
    /// engine itself and must not be reported again. Cost: one relaxed atomic add.
    public func countRefusal(_ code: RefusalCode) {
        refusals.count(code)
    }
}
