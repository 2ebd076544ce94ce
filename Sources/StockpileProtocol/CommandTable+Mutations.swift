// The mutations of SPEC §5, read into the `Command` values of StockpileCore. Each reader checks the
// shape (how many positional words, which options) and the form of each value; the engine's
// `Validation.normalize` checks names and ranges afterwards.

import StockpileCore

extension CommandTable {
    static let reserveOptions = OptionWords(.ttl, .customer, .strategy)
    static let releaseOptions = OptionWords(.reason, .key)
    static let fulfillOptions = OptionWords(.key)
    static let adjustOptions = OptionWords(.reason, .note, .ref, .key)
    static let setQuantityOptions = OptionWords(.reason, .if, .key)
    static let countOptions = OptionWords(.note, .key)
    static let transferOptions = OptionWords(.note, .key)
    static let returnOptions = OptionWords(.ref, .key)
    static let warehouseOptions = OptionWords(.name, .address, .priority, .active, .key)
    static let policyOptions = OptionWords(.backorder, .unlimited, .lowStock, .key)
    static let extendOptions = OptionWords(.key)
    static let confirmOptions = OptionWords(.key)

    /// `RESERVE id variant warehouse qty [variant warehouse qty …] [TTL s] [CUSTOMER c] [STRATEGY s]`
    static func reserve(_ a: ArgumentList, spare: inout SpareLines) throws(RequestError) -> Command {
        guard a.count >= 5 else { throw .wrongArity(command: "reserve") }
        let id = try Words.text(a[1], "reservation id")
        let end = Words.optionBoundary(a, from: 2)
        let lineWordCount = end - 2
        guard lineWordCount > 0, lineWordCount % 3 == 0 else { throw .wrongArity(command: "reserve") }
        var lines = spare.take()
        lines.reserveCapacity(lineWordCount / 3)
        var i = 2
        while i < end {
            let n = lines.count + 1
            lines.append(
                ReserveLine(
                    variant: try spare.variant(a[i], "variant of line \(n)"),
                    warehouse: try Words.text(a[i + 1], "warehouse of line \(n)"),
                    quantity: try Words.quantity(a[i + 2], "quantity of line \(n)")))
            i += 3
        }
        var ttl: Duration?
        var customer: String?
        var placement: PlacementStrategy?
        try Words.options(a, from: end, accepted: reserveOptions, command: "RESERVE") { option, value throws(RequestError) in
            switch option {
            case .ttl: ttl = try Words.ttl(value)
            case .customer: customer = try Words.text(value, "CUSTOMER")
            case .strategy: placement = try strategy(value)
            default: preconditionFailure("RESERVE accepts no \(option.spelling)")
            }
        }
        // Made once, in the command: a request made first and set by the options' closure, which
        // captured it, was copied into the command (a retain of its id, its lines and its customer)
        // and then let go (a release of each).
        return .reserve(ReserveRequest(id: id, lines: consume lines, ttl: ttl, customer: customer, strategy: placement))
    }

    static func strategy(_ word: Word) throws(RequestError) -> PlacementStrategy {
        for candidate in PlacementStrategy.allCases where Words.equalsIgnoringCase(word, candidate.rawValue.uppercased()) {
            return candidate
        }
        throw .refused(.invalid("STRATEGY must be priority, most or split"))
    }

    static func reason(_ word: Word) throws(RequestError) -> ReasonCode {
        guard let text = word.withUnsafeBufferPointer({ String(validating: $0, as: UTF8.self) }), let reason = ReasonCode(parsing: text) else {
            let codes = ReasonCode.allCases.map(\.rawValue).joined(separator: ", ")
            throw .refused(.invalid("REASON must be one of \(codes)"))
        }
        return reason
    }

    /// `EXTEND id s [KEY k]`; `EXTEND id TTL s` is read the same, as SPEC §2 writes it that way.
    static func extend(_ a: ArgumentList) throws(RequestError) -> Command {
        guard a.count >= 3 else { throw .wrongArity(command: "extend") }
        let seconds: Word
        let optionsStart: Int
        if OptionWord(a[2]) == .ttl {
            guard a.count >= 4 else { throw .wrongArity(command: "extend") }
            (seconds, optionsStart) = (a[3], 4)
        } else {
            (seconds, optionsStart) = (a[2], 3)
        }
        // Anything between the seconds and the first option word is one word too many.
        guard Words.optionBoundary(a, from: optionsStart) == optionsStart else { throw .wrongArity(command: "extend") }
        var key: String?
        try Words.options(a, from: optionsStart, accepted: extendOptions, command: "EXTEND") { _, value throws(RequestError) in
            key = try Words.text(value, "KEY")
        }
        return .extend(id: try Words.text(a[1], "reservation id"), ttl: try Words.ttl(seconds), key: key)
    }

    /// `CONFIRM id [KEY k]`
    static func confirm(_ a: ArgumentList) throws(RequestError) -> Command {
        // The id is taken by position: a reservation may be called, say, KEY.
        guard a.count >= 2, Words.optionBoundary(a, from: 2) == 2 else { throw .wrongArity(command: "confirm") }
        var key: String?
        try Words.options(a, from: 2, accepted: confirmOptions, command: "CONFIRM") { _, value throws(RequestError) in
            key = try Words.text(value, "KEY")
        }
        return .confirm(id: try Words.text(a[1], "reservation id"), key: key)
    }

    /// The optional `variant warehouse qty` of RELEASE and FULFILL, from `a[2]` to the first option
    /// word; returns the selector (nil when the whole reservation is meant) and where options start.
    static func lineSelector(_ a: ArgumentList, _ name: CommandName) throws(RequestError) -> (LineSelector?, Int) {
        guard a.count >= 2 else { throw .wrongArity(command: name.lowercased) }
        let end = Words.optionBoundary(a, from: 2)
        switch end - 2 {
        case 0:
            return (nil, end)
        case 3:
            let line = LineSelector(
                variant: try Words.text(a[2], "variant"), warehouse: try Words.text(a[3], "warehouse"),
                quantity: try Words.quantity(a[4], "quantity"))
            return (line, end)
        default:
            throw .wrongArity(command: name.lowercased)
        }
    }

    /// `RELEASE id [variant warehouse qty] [REASON r] [KEY k]`
    static func release(_ a: ArgumentList) throws(RequestError) -> Command {
        let (line, end) = try lineSelector(a, .release)
        let id = try Words.text(a[1], "reservation id")
        var reason: ReasonCode?
        var key: String?
        try Words.options(a, from: end, accepted: releaseOptions, command: "RELEASE") { option, value throws(RequestError) in
            switch option {
            case .reason: reason = try CommandTable.reason(value)
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("RELEASE accepts no \(option.spelling)")
            }
        }
        return .release(id: id, line: line, reason: reason, key: key)
    }

    /// `FULFILL id [variant warehouse qty] [KEY k]`
    static func fulfill(_ a: ArgumentList) throws(RequestError) -> Command {
        let (line, end) = try lineSelector(a, .fulfill)
        let id = try Words.text(a[1], "reservation id")
        var key: String?
        try Words.options(a, from: end, accepted: fulfillOptions, command: "FULFILL") { _, value throws(RequestError) in
            key = try Words.text(value, "KEY")
        }
        return .fulfill(id: id, line: line, key: key)
    }

    /// Checks that the positional part, `a[1]` up to the first option word, has exactly `count`
    /// words; returns where the options start. `variantFirst`: `a[1]` is a variant (not for EVENTS
    /// or BACKORDERS, whose positional is a sequence number or nothing).
    static func positional(_ a: ArgumentList, _ count: Int, _ name: CommandName, variantFirst: Bool = true) throws(RequestError) -> Int {
        let end = Words.optionBoundary(a, from: 1)
        guard end - 1 == count else {
            // The positional part ends early at an option word: one where the variant belongs is the
            // reason, and says so, instead of sending the user to count arguments (SPEC §7.14). A
            // request of the right shape never pays for the check.
            if variantFirst { try Words.refuseOptionWordAsVariant(a, at: 1) }
            throw .wrongArity(command: name.lowercased)
        }
        return end
    }

    /// `ADJUST variant warehouse delta REASON r [NOTE t] [REF ref] [KEY k]`
    static func adjust(_ a: ArgumentList) throws(RequestError) -> Command {
        let end = try positional(a, 3, .adjust)
        let variant = try Words.text(a[1], "variant")
        let warehouse = try Words.text(a[2], "warehouse")
        let delta = try Words.quantity(a[3], "delta")
        var reason: ReasonCode?
        var note: String?
        var reference: String?
        var key: String?
        try Words.options(a, from: end, accepted: adjustOptions, command: "ADJUST") { option, value throws(RequestError) in
            switch option {
            case .reason: reason = try CommandTable.reason(value)
            case .note: note = try Words.text(value, "NOTE")
            case .ref: reference = try Words.text(value, "REF")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("ADJUST accepts no \(option.spelling)")
            }
        }
        // SPEC §2 refuses an adjustment without a reason as INVALID: the reason is what the ledger is for.
        guard let reason else { throw .refused(.invalid("ADJUST needs REASON r")) }
        return .adjust(variant: variant, warehouse: warehouse, delta: delta, reason: reason, note: note, reference: reference, key: key)
    }

    /// `SETQTY variant warehouse qty REASON r [IF expected] [KEY k]`
    static func setQuantity(_ a: ArgumentList) throws(RequestError) -> Command {
        let end = try positional(a, 3, .setQuantity)
        let variant = try Words.text(a[1], "variant")
        let warehouse = try Words.text(a[2], "warehouse")
        let quantity = try Words.quantity(a[3], "quantity")
        var reason: ReasonCode?
        var expected: Quantity?
        var key: String?
        try Words.options(a, from: end, accepted: setQuantityOptions, command: "SETQTY") { option, value throws(RequestError) in
            switch option {
            case .reason: reason = try CommandTable.reason(value)
            case .if: expected = try Words.quantity(value, "IF")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("SETQTY accepts no \(option.spelling)")
            }
        }
        guard let reason else { throw .refused(.invalid("SETQTY needs REASON r")) }
        return .setQuantity(variant: variant, warehouse: warehouse, quantity: quantity, reason: reason, ifOnHand: expected, key: key)
    }

    /// `COUNT variant warehouse counted [NOTE t] [KEY k]`
    static func count(_ a: ArgumentList) throws(RequestError) -> Command {
        let end = try positional(a, 3, .count)
        let variant = try Words.text(a[1], "variant")
        let warehouse = try Words.text(a[2], "warehouse")
        let counted = try Words.quantity(a[3], "counted")
        var note: String?
        var key: String?
        try Words.options(a, from: end, accepted: countOptions, command: "COUNT") { option, value throws(RequestError) in
            switch option {
            case .note: note = try Words.text(value, "NOTE")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("COUNT accepts no \(option.spelling)")
            }
        }
        return .count(variant: variant, warehouse: warehouse, counted: counted, note: note, key: key)
    }

    /// `TRANSFER variant from to qty [NOTE t] [KEY k]`
    static func transfer(_ a: ArgumentList) throws(RequestError) -> Command {
        let end = try positional(a, 4, .transfer)
        let variant = try Words.text(a[1], "variant")
        let from = try Words.text(a[2], "source warehouse")
        let to = try Words.text(a[3], "destination warehouse")
        let quantity = try Words.quantity(a[4], "quantity")
        var note: String?
        var key: String?
        try Words.options(a, from: end, accepted: transferOptions, command: "TRANSFER") { option, value throws(RequestError) in
            switch option {
            case .note: note = try Words.text(value, "NOTE")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("TRANSFER accepts no \(option.spelling)")
            }
        }
        return .transfer(variant: variant, from: from, to: to, quantity: quantity, note: note, key: key)
    }

    /// `RETURN variant warehouse qty RESTOCK|DAMAGED [REF ref] [KEY k]`
    static func returnStock(_ a: ArgumentList) throws(RequestError) -> Command {
        // RESTOCK and DAMAGED are option words, so the positional part ends right before them.
        let end = try positional(a, 3, .returnStock)
        guard end < a.count else { throw .wrongArity(command: "return") }
        let variant = try Words.text(a[1], "variant")
        let warehouse = try Words.text(a[2], "warehouse")
        let quantity = try Words.quantity(a[3], "quantity")
        let disposition: ReturnDisposition
        switch OptionWord(a[end]) {
        case .restock: disposition = .restock
        case .damaged: disposition = .damaged
        default: throw .refused(.invalid("RETURN needs RESTOCK or DAMAGED after the quantity"))
        }
        var reference: String?
        var key: String?
        try Words.options(a, from: end + 1, accepted: returnOptions, command: "RETURN") { option, value throws(RequestError) in
            switch option {
            case .ref: reference = try Words.text(value, "REF")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("RETURN accepts no \(option.spelling)")
            }
        }
        return .returnStock(variant: variant, warehouse: warehouse, quantity: quantity, disposition: disposition, reference: reference, key: key)
    }

    /// `WAREHOUSE SET code [NAME n] [ADDRESS a] [PRIORITY p] [ACTIVE yes|no] [KEY k]` and `WAREHOUSE LIST`.
    static func warehouse(_ a: ArgumentList) throws(RequestError) -> Request {
        guard a.count >= 2 else { throw .wrongArity(command: "warehouse") }
        if Words.equalsIgnoringCase(a[1], "LIST") {
            guard a.count == 2 else { throw .wrongArity(command: "warehouse|list") }
            return .query(.warehouseList)
        }
        guard Words.equalsIgnoringCase(a[1], "SET") else {
            throw .syntax("unknown subcommand '\(Words.echo(a[1]))' of WAREHOUSE (SET or LIST)")
        }
        // The code is taken by position: a warehouse may be called, say, NOTE.
        guard a.count >= 3, Words.optionBoundary(a, from: 3) == 3 else { throw .wrongArity(command: "warehouse|set") }
        var change = WarehouseChange(code: try Words.text(a[2], "warehouse code"))
        var key: String?
        try Words.options(a, from: 3, accepted: warehouseOptions, command: "WAREHOUSE SET") { option, value throws(RequestError) in
            switch option {
            case .name: change.name = try Words.text(value, "NAME")
            case .address: change.address = try Words.text(value, "ADDRESS")
            case .priority:
                change.priority = try Words.int64(
                    value, "PRIORITY",
                    outOfRange: .invalid("priority must be between -\(Limits.priorityMagnitudeMax) and \(Limits.priorityMagnitudeMax)"))
            case .active: change.active = try Words.boolean(value, "ACTIVE")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("WAREHOUSE SET accepts no \(option.spelling)")
            }
        }
        return .mutation(.setWarehouse(change, key: key))
    }

    /// `POLICY SET variant [BACKORDER yes|no] [UNLIMITED yes|no] [LOWSTOCK n] [KEY k]` and `POLICY GET variant`.
    static func policy(_ a: ArgumentList) throws(RequestError) -> Request {
        guard a.count >= 2 else { throw .wrongArity(command: "policy") }
        if Words.equalsIgnoringCase(a[1], "GET") {
            try Words.refuseOptionWordAsVariant(a, at: 2)
            guard a.count == 3 else { throw .wrongArity(command: "policy|get") }
            return .query(.policy(variant: try Words.text(a[2], "variant")))
        }
        guard Words.equalsIgnoringCase(a[1], "SET") else {
            throw .syntax("unknown subcommand '\(Words.echo(a[1]))' of POLICY (SET or GET)")
        }
        try Words.refuseOptionWordAsVariant(a, at: 2)
        let end = Words.optionBoundary(a, from: 2)
        guard end == 3 else { throw .wrongArity(command: "policy|set") }
        var change = PolicyChange(variant: try Words.text(a[2], "variant"))
        var key: String?
        try Words.options(a, from: end, accepted: policyOptions, command: "POLICY SET") { option, value throws(RequestError) in
            switch option {
            case .backorder: change.backorder = try Words.boolean(value, "BACKORDER")
            case .unlimited: change.unlimited = try Words.boolean(value, "UNLIMITED")
            case .lowStock: change.lowStock = try Words.quantity(value, "LOWSTOCK")
            case .key: key = try Words.text(value, "KEY")
            default: preconditionFailure("POLICY SET accepts no \(option.spelling)")
            }
        }
        return .mutation(.setPolicy(change, key: key))
    }
}

/// Arrays of reservation lines that RESERVEs already answered no longer need, kept with a loop's turn
/// lists (`TurnScratch`, shared by the loop's connections) for the RESERVEs parsed next, so that
/// parsing one allocates nothing once a few have come and gone.
/// An array is handed back (`keep`) while its request may still hold it, and emptied only when it is
/// taken again, by which time the request is gone and the array is its own again (were it not, emptying
/// it would make a new one: nothing is shared, at worst nothing is saved). At most `capacity` are kept.
///
/// Beside them, the last long variant name read (`variant`): a RESERVE naming the variant the one
/// before it named shares its string. Swift keeps a name of up to 15 UTF-8 bytes inside the string,
/// and a longer one (a shop's SKU, `SKU-000000012345`) in an object of its own, made for every RESERVE
/// that names it: in a flash sale the RESERVEs of a turn name the same few SKUs. Only the last name
/// is kept: the string shared is one the loop's thread read shortly before, in its cache (a table
/// of many names, tried before, shared cold strings, whose retains waited for their lines:
/// `docs/MEASUREMENTS.md`, the step ending at 38ac951).
public struct SpareLines: Sendable {
    private var arrays: [[ReserveLine]] = []
    /// The last variant name of more than 15 bytes read, or empty.
    private var lastVariant = ""
    /// How many arrays are kept: a whole batch's worth at the server's default batch length
    /// (`ServerConfiguration.batchRequestCountMax`). With 16, each RESERVE of a pipeline of 64
    /// beyond the 16th made its array again (0.80 allocations per RESERVE).
    public static let capacity = 256
    /// The most lines a kept array has room for: a rare long reservation does not leave its room behind.
    public static let linesMax = 16

    public init() {}

    /// `word` as a variant name (`Words.text`): the last long name read when `word` spells it, so that
    /// a run of RESERVEs naming one long SKU makes its string once.
    mutating func variant(_ word: Word, _ what: @autoclosure () -> String) throws(RequestError) -> String {
        // A name read is its word's bytes, so the word's length is the string's.
        guard word.count > Self.inlineByteCountMax else { return try Words.text(word, what()) }
        if word.withUnsafeBytes({ utf8(of: lastVariant, equals: $0) }) { return lastVariant }
        lastVariant = try Words.text(word, what())
        return lastVariant
    }

    /// The most UTF-8 bytes a string keeps inside itself, without an object of its own (64-bit platforms).
    static let inlineByteCountMax = 15

    /// An empty array of lines: a kept one when there is one.
    mutating func take() -> [ReserveLine] {
        guard var lines = arrays.popLast() else { return [] }
        lines.removeAll(keepingCapacity: true)
        return lines
    }

    /// Keeps the lines of `command` when it is a RESERVE, for a later one (not an array with room for
    /// more than `linesMax`).
    public mutating func keep(linesOf command: borrowing Command) {
        guard arrays.count < Self.capacity else { return }
        switch command {
        case .reserve(let request):
            guard request.lines.capacity <= Self.linesMax else { return }
            if arrays.isEmpty { arrays.reserveCapacity(Self.capacity) }
            arrays.append(request.lines)
        default:
            return
        }
    }
}
