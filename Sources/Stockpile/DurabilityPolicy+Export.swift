// The engine's public API includes how durable a reply is (`Engine.open(dataDirectory:durability:…)`, `LogStatus.policy`), so
// the policy type is re-exported here: a program that embeds the engine, or serves it, imports
// `Stockpile` alone and never the log's byte-format module for this one type.

@_exported import enum StockpileWAL.DurabilityPolicy
// And the way the engine starts its threads (named for the kernel), which a server starts its own with.
@_exported import func StockpileWAL.startThread
// And the deferral of the log's wake-ups, with which a thread of the server's commits its own
// records when it would otherwise sleep while the log's thread does.
@_exported import class StockpileWAL.WakeDeferral
