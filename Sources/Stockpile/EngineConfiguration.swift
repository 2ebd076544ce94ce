// The settings of an engine, with their defaults and why.

import Foundation
import StockpileCore

public struct EngineConfiguration: Sendable {
    /// Stock cells are spread over this many shard actors (1–64); `defaultShardCount` unless set.
    /// More shards than cores is fine: an actor is a queue, not a thread; more shards means fewer
    /// reservations that span shards wait on each other.
    public var shardCount: Int

    /// Eight shards per core the process may run on, rounded up to a power of two, at least 16 and
    /// at most 64 (the most a shard mask holds): 16 up to two cores, 32 for three or four, 64 from
    /// five. Two threads meet on a shard about once in as many shards as there are, so the count
    /// grows with the threads that can run at once; a reservation of several lines holds each of
    /// its shards, so even two cores gain from more shards than a one-line load needs (README,
    /// "Sharding", has the measurements). A shard costs little beside its cells: its tables' headers
    /// and a copy of the catalog.
    public static var defaultShardCount: Int {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var count = 16
        while count < 8 * cores && count < ShardRouter.shardCountMax { count *= 2 }
        return count
    }
    /// How long ids of closed reservations and idempotency keys are remembered (SPEC §2: 24 h); 1 s to
    /// 366 days (a negative window would turn idempotency off, a huge one overflow the clock).
    public var retention: Duration
    /// The placement strategy for `*` lines when a request names none.
    public var defaultStrategy: PlacementStrategy
    /// How many recent ledger entries memory keeps for EVENTS, HISTORY and late subscribers.
    public var eventsInMemoryCount: Int
    /// Lines a reservation may have, and the largest quantity a request may name (SPEC §5). Either may
    /// be set lower than `Limits` allows, never higher: the log's record size and the arithmetic's
    /// headroom are built for those maxima.
    public var linesPerReservationMax: Int
    public var quantityMax: Quantity

    /// Whether either limit is set lower than `Limits` (then requests are checked against it too).
    var lowersLimits: Bool { linesPerReservationMax < Limits.linesPerReservationMax || quantityMax < Limits.quantityMax }
    /// A durable engine writes a snapshot in the background after this many log records (0: only on
    /// request). Start-up replays at most about this many records after loading the newest snapshot.
    public var snapshotEveryRecords: UInt64
    /// When set, log segments older than the oldest snapshot kept are removed after each snapshot
    /// while the log takes more bytes than this. Nil keeps every segment (for audit, SPEC §4).
    public var logRetentionByteCount: Int?
    /// How many threads apply the log at start-up, each to the shards it owns, beside the thread that
    /// reads the log and the one that does the part of each record common to all shards; at most one
    /// per shard. `defaultReplayThreadCount` unless set.
    public var replayThreadCount: Int
    /// The bits of a reservation id's hash its directory tag leaves out (`ReservationDirectory`): the
    /// low 7, which hold the shard. Tests widen it so that tags collide.
    var directoryLowMask: UInt64 = ShardSlots.shardMask

    /// One per core the process may run on, at most four: each applier owns its shards outright, so
    /// appliers never wait for each other; past four, the one thread that keeps the directory would be
    /// the slower side (on two cores, the appliers are: README, "Start-up replays by shard").
    public static var defaultReplayThreadCount: Int { min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    public init(
        shardCount: Int = EngineConfiguration.defaultShardCount, retention: Duration = .seconds(24 * 3600), defaultStrategy: PlacementStrategy = .priority,
        eventsInMemoryCount: Int = 262_144, linesPerReservationMax: Int = Limits.linesPerReservationMax,
        quantityMax: Quantity = Limits.quantityMax, snapshotEveryRecords: UInt64 = 1_000_000, logRetentionByteCount: Int? = nil,
        replayThreadCount: Int = EngineConfiguration.defaultReplayThreadCount
    ) {
        precondition(replayThreadCount >= 1, "replayThreadCount must be at least 1")
        self.replayThreadCount = replayThreadCount
        self.logRetentionByteCount = logRetentionByteCount
        self.snapshotEveryRecords = snapshotEveryRecords
        precondition((1...ShardRouter.shardCountMax).contains(shardCount), "shardCount must be 1...\(ShardRouter.shardCountMax)")
        precondition(eventsInMemoryCount >= 1)
        precondition((1...Limits.linesPerReservationMax).contains(linesPerReservationMax), "linesPerReservationMax must be 1...\(Limits.linesPerReservationMax)")
        precondition(quantityMax >= Quantity(1) && quantityMax <= Limits.quantityMax, "quantityMax must be 1...\(Limits.quantityMax)")
        self.linesPerReservationMax = linesPerReservationMax
        self.quantityMax = quantityMax
        precondition(retention >= .seconds(1) && retention <= .seconds(366 * 24 * 3600), "retention must be 1 s to 366 days")
        self.shardCount = shardCount
        self.retention = retention
        self.defaultStrategy = defaultStrategy
        self.eventsInMemoryCount = eventsInMemoryCount
    }
}

/// Which shard owns a cell: FNV-1a over the variant and warehouse bytes. Stable across processes, so a
/// replayed log lands every cell where it was.
public struct ShardRouter: Sendable {
    public static let shardCountMax = 64
    public let count: Int

    public init(count: Int) { self.count = count }

    @inlinable public func shard(for cell: CellKey) -> Int { shard(forStableHash: cell.stableHash) }

    /// The shard of the cell whose `stableHash` is `h`.
    @inlinable public func shard(forStableHash h: UInt64) -> Int {
        if count == 1 { return 0 }
        return Int((h ^ (h >> 29)) % UInt64(count))
    }

    /// The set of shards owning `cells`, as a bit mask.
    @inlinable public func mask<S: Sequence>(of cells: S) -> UInt64 where S.Element == CellKey {
        var m: UInt64 = 0
        for c in cells { m |= 1 << UInt64(shard(for: c)) }
        return m
    }

    /// A reservation lives in the lowest-numbered shard that owns one of its lines: its home.
    public func home(of reservation: Reservation) -> Int {
        mask(of: reservation.lines.lazy.map(\.cell)).trailingZeroBitCount
    }
}

extension UInt64 {
    /// The indexes of the set bits, lowest first, without an array.
    var setBitIndexes: SetBitIndexes { SetBitIndexes(remaining: self) }
}

/// The indexes of a mask's set bits, lowest first.
struct SetBitIndexes: Sequence, IteratorProtocol {
    var remaining: UInt64

    mutating func next() -> Int? {
        guard remaining != 0 else { return nil }
        defer { remaining &= remaining &- 1 }
        return remaining.trailingZeroBitCount
    }
}
