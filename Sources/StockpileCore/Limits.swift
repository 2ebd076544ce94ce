// Every limit of the system in one place, with the reason beside it. Limits are inclusive: a value
// equal to the limit is accepted, one more is refused with `LIMIT`.

public enum Limits {
    /// The largest quantity a single request may carry (SPEC §5): large enough for any real stock,
    /// small enough that sums over many lines and cells stay far from Int64 overflow.
    public static let quantityMax = Quantity(1_000_000_000_000)
    /// The largest on_hand (and reserved) a cell may hold: a thousand maximal receipts, 9,000× below
    /// Int64.max, so a cell's own arithmetic cannot overflow. Sums over many cells or over the life of
    /// the engine (totals, KPI counters) can, and saturate instead (`Quantity.addingSaturating`).
    public static let cellQuantityMax = Quantity(1_000_000_000_000_000)
    /// Lines per reservation request (SPEC §5).
    public static let linesPerReservationMax = 256
    /// Variant ids are 1–64 bytes (SPEC §1).
    public static let variantByteCountMax = 64
    /// Warehouse codes are 1–32 characters (SPEC §1).
    public static let warehouseCodeByteCountMax = 32
    /// Reservation ids and idempotency keys are 1–128 bytes (SPEC §1).
    public static let reservationIDByteCountMax = 128
    /// Free text (NOTE, REF, CUSTOMER, NAME, ADDRESS): enough for a sentence, bounded so a ledger entry stays small.
    public static let textByteCountMax = 1024
    /// Hold TTLs run from 1 s to 30 days (SPEC §7.14).
    public static let ttlMin = Duration.seconds(1)
    public static let ttlMax = Duration.seconds(30 * 24 * 3600)
    /// Warehouse priorities: any ordering an operator needs, bounded so they print and compare simply.
    public static let priorityMagnitudeMax: Int64 = 1_000_000_000
    /// The most records a list query (LOWSTOCK, BACKORDERS, HISTORY, EVENTS) returns, and its default.
    public static let listCountMax = 10_000
    public static let listCountDefault = 100
    /// Events an embedded subscriber may leave unread before its stream ends with `.ended`: about the
    /// wire's 8 MiB subscriber backlog at a few hundred bytes an event, so a stalled consumer costs
    /// bounded memory and learns where to catch up (EVENTS from the seq the end names).
    public static let subscriberBacklogEventCountDefault = 32_768
}
