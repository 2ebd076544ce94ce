// Model-based randomized test: seeded random streams of every mutation run against the engine and
// against `ReferenceModel`; every outcome, and periodically every cell, reservation and ledger entry,
// must agree, and the engine's own invariant check must pass.
//
//   swift test --filter ModelBased                         # the default seeds, 3000 ops each
//   STOCKPILE_SEED=42 STOCKPILE_MODEL_OPS=20000 swift test --filter ModelBased
//   STOCKPILE_MODEL_STATS=1 ...                            # also print how often each outcome happened
//
// A failure prints the seed and the last commands with both outcomes; rerun with that seed to reproduce.

import Foundation
@testable import Stockpile
import StockpileCore
import Testing

extension SplitMix64 {
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }
}

enum ModelBasedSettings {
    static let environment = ProcessInfo.processInfo.environment

    static var seeds: [UInt64] {
        if let s = environment["STOCKPILE_SEED"], let seed = UInt64(s) { return [seed] }
        return [20_240_601, 7, 1_234_568, 99_991]
    }

    /// STOCKPILE_MODEL_STATS=1 prints how often each kind of outcome happened (to see the streams reach
    /// every refusal and every reply).
    static var printStats: Bool { environment["STOCKPILE_MODEL_STATS"] == "1" }

    static var operations: Int {
        if let s = environment["STOCKPILE_MODEL_OPS"], let n = Int(s), n > 0 { return n }
        return 3000
    }
}

/// Builds random commands. It peeks at the model only to aim well (lines that exist, the current
/// on_hand for IF); what it builds is still often wrong on purpose.
struct CommandGenerator {
    var rng: SplitMix64
    var nextID = 0
    var nextKey = 0
    var recentReserves: [ReserveRequest] = []
    var recentKeyed: [Command] = []

    let variants = ["A", "B", "C", "D", "E"]
    let warehouseCodes = ["MAIN", "W1", "W2", "W3"]
    let reasons = ReasonCode.allCases

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func variant() -> String {
        if rng.chance(0.01) { return rng.pick(["bad variant", "", "TTL"]) }
        return rng.pick(variants)
    }

    /// A warehouse code as a caller might write it: mostly known, sometimes lower-case, unknown or malformed.
    mutating func warehouse() -> String {
        let r = rng.int(0...99)
        switch r {
        case 0..<80: return rng.pick(warehouseCodes)
        case 80..<90: return rng.pick(warehouseCodes).lowercased()
        case 90..<98: return "NOPE"
        default: return "bad code!"
        }
    }

    /// A reservation id for EXTEND, CONFIRM, RELEASE, FULFILL: mostly one the model knows (open ones
    /// first), sometimes any.
    mutating func existingID(model: ReferenceModel) -> String {
        let known = model.reservations.values.sorted { $0.id < $1.id }
        let open = known.filter(\.isOpen)
        if !open.isEmpty, rng.chance(0.55) { return rng.pick(open).id }
        if !known.isEmpty, rng.chance(0.5) { return rng.pick(known).id }
        return id()
    }

    mutating func id() -> String {
        if rng.chance(0.02) { return rng.pick(["", "has space"]) }
        if rng.chance(0.4) {
            nextID += 1
            return "fresh\(nextID)"
        }
        return "o\(rng.int(1...12))"
    }

    mutating func key() -> String? {
        guard rng.chance(0.35) else { return nil }
        if rng.chance(0.01) { return "bad key" }
        nextKey += 1
        return "k\(nextKey)"
    }

    mutating func ttl() -> Duration {
        if rng.chance(0.02) { return .seconds(rng.pick([0, 30 * 24 * 3600 + 1])) }
        return .milliseconds(Int64(rng.int(1...90)) * 1000 + Int64(rng.pick([0, 0, 0, 250, 999])))
    }

    mutating func quantity(_ range: ClosedRange<Int>) -> Quantity {
        if rng.chance(0.01) { return Quantity(Int64(rng.pick([0, -1, 1_000_000_000_001]))) }
        return Quantity(Int64(rng.int(range)))
    }

    mutating func text(_ prefix: String) -> String? {
        guard rng.chance(0.2) else { return nil }
        if rng.chance(0.03) { return "bad\ntext" }
        return "\(prefix) \(rng.int(1...5))"
    }

    /// A line selector: usually one the reservation has, with a quantity near what remains.
    mutating func selector(for reservation: Reservation?) -> LineSelector {
        if let reservation, !reservation.lines.isEmpty, rng.chance(0.85) {
            let l = rng.pick(reservation.lines)
            let q = rng.chance(0.8) ? max(1, rng.int(1...max(1, Int(l.remaining.units)))) : rng.int(1...6)
            let w = rng.chance(0.1) ? l.warehouse.lowercased() : l.warehouse
            return LineSelector(variant: l.variant, warehouse: w, quantity: Quantity(Int64(q)))
        }
        return LineSelector(variant: variant(), warehouse: warehouse(), quantity: quantity(1...5))
    }

    mutating func reserve() -> Command {
        // Retry an earlier request: exactly, reordered and re-cased (still the same request), or changed.
        if !recentReserves.isEmpty, rng.chance(0.15) {
            var r = rng.pick(recentReserves)
            switch rng.int(0...3) {
            case 0: break
            case 1:
                r.lines.reverse()
                for i in r.lines.indices where rng.chance(0.5) { r.lines[i].warehouse = r.lines[i].warehouse.lowercased() }
            case 2 where !r.lines.isEmpty:
                r.lines[0].quantity = r.lines[0].quantity + 1
            default:
                r.ttl = r.ttl == nil ? .seconds(30) : nil
            }
            return .reserve(r)
        }
        var lines: [ReserveLine] = []
        let count = rng.chance(0.01) ? 0 : rng.pick([1, 1, 1, 2, 2, 3, 4])
        for _ in 0..<count {
            let w = rng.chance(0.3) ? "*" : warehouse()
            lines.append(ReserveLine(variant: variant(), warehouse: w, quantity: quantity(rng.chance(0.2) ? 1...14 : 1...5)))
        }
        // Sometimes name the same cell (or the same variant with `*`) twice, to exercise merging.
        if let first = lines.first, rng.chance(0.15) { lines.append(ReserveLine(variant: first.variant, warehouse: first.warehouse, quantity: quantity(1...3))) }
        let request = ReserveRequest(
            id: id(), lines: lines, ttl: rng.chance(0.5) ? ttl() : nil,
            customer: rng.chance(0.2) ? "cust\(rng.int(1...3))" : nil,
            strategy: rng.chance(0.4) ? rng.pick(PlacementStrategy.allCases) : nil)
        recentReserves.append(request)
        if recentReserves.count > 20 { recentReserves.removeFirst() }
        return .reserve(request)
    }

    mutating func keyed(_ command: Command) -> Command {
        if command.key != nil {
            recentKeyed.append(command)
            if recentKeyed.count > 30 { recentKeyed.removeFirst() }
        }
        return command
    }

    /// The same command with its warehouse codes in lower case: still the same request (codes are
    /// case-insensitive), so a KEY retry of it must replay.
    func recased(_ command: Command) -> Command {
        switch command {
        case .release(let id, let line, let reason, let key):
            return .release(id: id, line: line.map { LineSelector(variant: $0.variant, warehouse: $0.warehouse.lowercased(), quantity: $0.quantity) }, reason: reason, key: key)
        case .fulfill(let id, let line, let key):
            return .fulfill(id: id, line: line.map { LineSelector(variant: $0.variant, warehouse: $0.warehouse.lowercased(), quantity: $0.quantity) }, key: key)
        case .adjust(let v, let w, let d, let r, let n, let ref, let key):
            return .adjust(variant: v, warehouse: w.lowercased(), delta: d, reason: r, note: n, reference: ref, key: key)
        case .setQuantity(let v, let w, let q, let r, let e, let key):
            return .setQuantity(variant: v, warehouse: w.lowercased(), quantity: q, reason: r, ifOnHand: e, key: key)
        case .count(let v, let w, let c, let n, let key):
            return .count(variant: v, warehouse: w.lowercased(), counted: c, note: n, key: key)
        case .transfer(let v, let f, let t, let q, let n, let key):
            return .transfer(variant: v, from: f.lowercased(), to: t.lowercased(), quantity: q, note: n, key: key)
        case .returnStock(let v, let w, let q, let d, let ref, let key):
            return .returnStock(variant: v, warehouse: w.lowercased(), quantity: q, disposition: d, reference: ref, key: key)
        default: return command
        }
    }

    /// Replaces the key of a keyed command (for reusing a key on a different command).
    func withKey(_ command: Command, _ key: String) -> Command {
        switch command {
        case .release(let id, let line, let reason, _): .release(id: id, line: line, reason: reason, key: key)
        case .fulfill(let id, let line, _): .fulfill(id: id, line: line, key: key)
        case .adjust(let v, let w, let d, let r, let n, let ref, _): .adjust(variant: v, warehouse: w, delta: d, reason: r, note: n, reference: ref, key: key)
        case .setQuantity(let v, let w, let q, let r, let e, _): .setQuantity(variant: v, warehouse: w, quantity: q, reason: r, ifOnHand: e, key: key)
        case .count(let v, let w, let c, let n, _): .count(variant: v, warehouse: w, counted: c, note: n, key: key)
        case .transfer(let v, let f, let t, let q, let n, _): .transfer(variant: v, from: f, to: t, quantity: q, note: n, key: key)
        case .returnStock(let v, let w, let q, let d, let ref, _): .returnStock(variant: v, warehouse: w, quantity: q, disposition: d, reference: ref, key: key)
        case .extend(let id, let ttl, _): .extend(id: id, ttl: ttl, key: key)
        case .confirm(let id, _): .confirm(id: id, key: key)
        case .setWarehouse(let change, _): .setWarehouse(change, key: key)
        case .setPolicy(let change, _): .setPolicy(change, key: key)
        default: command
        }
    }

    mutating func next(model: ReferenceModel) -> Command {
        // KEY retries: the same command again, or a different command under a used key.
        if !recentKeyed.isEmpty, rng.chance(0.08) {
            let old = rng.pick(recentKeyed)
            if rng.chance(0.6) { return rng.chance(0.3) ? recased(old) : old }
            return withKey(physical(model: model), old.key!)
        }
        let r = rng.int(0...999)
        switch r {
        case 0..<260: return reserve()
        case 260..<300:
            return keyed(.extend(id: existingID(model: model), ttl: ttl(), key: key()))
        case 300..<340:
            return keyed(.confirm(id: existingID(model: model), key: key()))
        case 340..<440:
            let id = existingID(model: model)
            let line = rng.chance(0.5) ? selector(for: model.reservation(id)) : nil
            let reason: ReasonCode? = rng.chance(0.3) ? rng.pick([.cancelled, .other, .correction, .damaged]) : nil
            return keyed(.release(id: id, line: line, reason: reason, key: key()))
        case 440..<540:
            let id = existingID(model: model)
            let line = rng.chance(0.5) ? selector(for: model.reservation(id)) : nil
            return keyed(.fulfill(id: id, line: line, key: key()))
        case 540..<950:
            return keyed(physical(model: model))
        case 950..<985:
            let code = rng.chance(0.05) ? "w1" : rng.pick(["W1", "W2", "W3", "W1", "W2", "MAIN"])
            return keyed(.setWarehouse(
                WarehouseChange(
                    code: code, name: rng.chance(0.2) ? "Depot \(rng.int(1...3))" : nil,
                    address: rng.chance(0.1) ? "\(rng.int(1...99)) Road" : nil,
                    priority: rng.chance(0.6) ? Int64(rng.pick([-1, 0, 5, 10, 10, 100])) : nil,
                    active: rng.chance(0.5) ? rng.chance(0.8) : nil), key: key()))
        default:
            return keyed(.setPolicy(
                PolicyChange(
                    variant: variant(), backorder: rng.chance(0.5) ? rng.chance(0.5) : nil,
                    unlimited: rng.chance(0.4) ? rng.chance(0.3) : nil,
                    lowStock: rng.chance(0.3) ? quantity(0...4) : nil), key: key()))
        }
    }

    mutating func physical(model: ReferenceModel) -> Command {
        let v = variant()
        let w = warehouse()
        switch rng.int(0...99) {
        case 0..<45:
            let reason: ReasonCode
            let delta: Quantity
            if rng.chance(0.93) {
                let up = rng.chance(0.65)
                reason = up ? rng.pick([.received, .returned, .found, .correction, .other]) : rng.pick([.damaged, .lost, .correction, .other])
                let m = Quantity(Int64(rng.int(1...8)))
                delta = up ? m : -m
            } else {
                reason = rng.pick(reasons)
                delta = Quantity(Int64(rng.int(-4...4)))
            }
            return .adjust(variant: v, warehouse: w, delta: delta, reason: reason, note: text("note"), reference: text("ref"), key: key())
        case 45..<60:
            var expected: Quantity? = nil
            if rng.chance(0.35) {
                let current = model.cell(variant: v, warehouse: w.uppercased()).onHand
                expected = rng.chance(0.7) ? current : current + 1
            }
            return .setQuantity(variant: v, warehouse: w, quantity: quantity(0...12), reason: rng.pick(reasons), ifOnHand: expected, key: key())
        case 60..<68:
            return .count(variant: v, warehouse: w, counted: quantity(0...12), note: text("count"), key: key())
        case 68..<72:
            return .importStock(variant: v, warehouse: w, onHand: quantity(0...12))
        case 72..<88:
            let to = rng.chance(0.08) ? w : warehouse()
            return .transfer(variant: v, from: w, to: to, quantity: quantity(1...5), note: text("move"), key: key())
        default:
            return .returnStock(
                variant: v, warehouse: w, quantity: quantity(1...4), disposition: rng.chance(0.6) ? .restock : .damaged,
                reference: text("rma"), key: key())
        }
    }
}

struct ModelBasedTests {
    static let start = Timestamp(milliseconds: 1_700_000_000_000)

    @Test("engine agrees with the reference model on random command streams", arguments: ModelBasedSettings.seeds)
    func engineAgreesWithModel(seed: UInt64) async {
        await agreeWithModel(seed: seed, directoryLowMask: nil)
    }

    /// The directory keeps a reservation in one shard as its id's hash tag and the shard, and asks the
    /// shard when tags match: with all but 3 bits of each hash left out of its tag, the ids share 8
    /// tags, so nearly every claim, lookup, expiry and forgetting goes through the shards' answers.
    @Test("engine agrees with the reference model when reservation ids' directory tags collide", arguments: ModelBasedSettings.seeds.prefix(2))
    func engineAgreesWithModelWhenTagsCollide(seed: UInt64) async {
        await agreeWithModel(seed: seed, directoryLowMask: 0x1FFF_FFFF_FFFF_FFFF)
    }

    func agreeWithModel(seed: UInt64, directoryLowMask: UInt64?) async {
        let operations = ModelBasedSettings.operations
        let strategy = PlacementStrategy.allCases[Int(seed % 3)]
        let retention = Duration.seconds(120)
        let clock = ManualClock(start: Self.start)
        var configuration = EngineConfiguration(shardCount: 4, retention: retention, defaultStrategy: strategy)
        if let directoryLowMask { configuration.directoryLowMask = directoryLowMask }
        let engine = Engine(configuration: configuration, clock: clock)
        var model = ReferenceModel(retention: retention, defaultStrategy: strategy, start: Self.start)
        var gen = CommandGenerator(seed: seed)
        var trail: [String] = []
        var usedIDs: Set<String> = []
        var stats: [String: Int] = [:]
        let actors = ["", "alice", "bob"]
        let tag = "seed \(seed)\(directoryLowMask == nil ? "" : ", colliding tags") (rerun: STOCKPILE_SEED=\(seed) STOCKPILE_MODEL_OPS=\(operations) swift test --filter ModelBased)"

        // A setting-up prefix, then the random stream.
        var prefix: [Command] = [
            .setWarehouse(WarehouseChange(code: "W1", priority: 10)),
            .setWarehouse(WarehouseChange(code: "w2", name: "Second", priority: 10)),
            .adjust(variant: "A", warehouse: "MAIN", delta: 5, reason: .received),
            .adjust(variant: "A", warehouse: "W1", delta: 5, reason: .received),
            .adjust(variant: "B", warehouse: "W2", delta: 8, reason: .received),
            .setPolicy(PolicyChange(variant: "C", backorder: true)),
            .setPolicy(PolicyChange(variant: "D", unlimited: true)),
            .setPolicy(PolicyChange(variant: "E", lowStock: 2)),
        ]
        prefix.reverse()

        for step in 0..<operations {
            var advanced = ""
            if gen.rng.chance(0.3) {
                let ms = Int64(gen.rng.int(0...5000))
                clock.advance(by: .milliseconds(ms))
                advanced = " (+\(ms)ms)"
            } else if gen.rng.chance(0.015) {
                let s = Int64(gen.rng.int(40...200))
                clock.advance(by: .seconds(s))
                advanced = " (+\(s)s)"
            }
            let command = prefix.popLast() ?? gen.next(model: model)
            let actor = gen.rng.pick(actors)
            if let id = command.reservationID { usedIDs.insert(id) }

            let now = clock.now()
            let expected = model.execute(command, actor: actor, now: now)
            let actual = await engine.execute(command, actor: actor)
            trail.append("#\(step) t=\(now.milliseconds - Self.start.milliseconds)ms\(advanced) actor=\(actor.debugDescription) \(short(command))\n    model:  \(describe(expected))\n    engine: \(describe(actual))")
            if trail.count > 12 { trail.removeFirst() }

            stats[outcomeKind(command, expected, model: model), default: 0] += 1
            let same = sameOutcome(expected, actual)
            var keyNote = ""
            if !same, let key = command.key, let k = model.keys[key] {
                keyNote = "\nmodel remembers KEY \(key) from t=\(k.firstUsed.milliseconds - Self.start.milliseconds)ms: \(short(k.command)) -> \(short(k.reply))"
            }
            #expect(same, "\(tag): op #\(step) outcome differs\n\(trail.joined(separator: "\n"))\(keyNote)")
            if !same { return }

            let modelProblems = model.checkInvariants()
            #expect(modelProblems.isEmpty, "\(tag): model invariants after op #\(step): \(modelProblems)")
            if !modelProblems.isEmpty { return }

            if step % 250 == 249 || step == operations - 1 {
                let ok = await compareState(engine: engine, model: model, usedIDs: usedIDs, tag: "\(tag) after op #\(step)", trail: trail)
                if !ok { return }
            }
        }
        if ModelBasedSettings.printStats {
            let open = model.reservations.values.filter(\.isOpen).count
            print("seed \(seed) strategy \(strategy): \(model.ledger.count) entries, \(model.reservations.count) reservations remembered (\(open) open), \(model.keys.count) keys")
            for (k, n) in stats.sorted(by: { $0.key < $1.key }) { print("  \(k): \(n)") }
        }
    }

    @Test("random batches give the same outcomes and final state as the same commands one at a time", arguments: ModelBasedSettings.seeds)
    func batchesAgreeWithOneAtATime(seed: UInt64) async {
        let operations = ModelBasedSettings.operations
        let retention = Duration.seconds(120)
        let configuration = EngineConfiguration(shardCount: 4, retention: retention)
        let (clockA, clockB) = (ManualClock(start: Self.start), ManualClock(start: Self.start))
        let oneByOne = Engine(configuration: configuration, clock: clockA)
        let batched = Engine(configuration: configuration, clock: clockB)
        var model = ReferenceModel(retention: retention, defaultStrategy: .priority, start: Self.start)
        var gen = CommandGenerator(seed: seed)
        var usedIDs: Set<String> = []
        let tag = "seed \(seed) (rerun: STOCKPILE_SEED=\(seed) STOCKPILE_MODEL_OPS=\(operations) swift test --filter ModelBased)"
        var prefix: [Command] = [
            .setWarehouse(WarehouseChange(code: "W1", priority: 10)),
            .adjust(variant: "A", warehouse: "MAIN", delta: 5, reason: .received),
            .adjust(variant: "B", warehouse: "W1", delta: 8, reason: .received),
            .setPolicy(PolicyChange(variant: "C", backorder: true)),
        ]
        prefix.reverse()
        var done = 0
        var batchCount = 0
        // The model's ledger length after each batch.
        var batchEnds: [Int] = []
        while done < operations {
            if gen.rng.chance(0.3) {
                let ms = Duration.milliseconds(Int64(gen.rng.int(0...5000)))
                clockA.advance(by: ms)
                clockB.advance(by: ms)
            }
            // The model decides each command as it comes, so the generator sees the state it would.
            let size = gen.rng.int(1...32)
            let actor = gen.rng.pick(["", "alice"])
            var batch: [Command] = []
            var burst: [Command] = []
            for _ in 0..<size {
                // Now and then a burst of new one-line reservations on one cell (with, at times, an
                // id used twice in it or a TTL): the runs a batch decides entering the shard once.
                if burst.isEmpty, prefix.isEmpty, gen.rng.chance(0.08) {
                    let (v, w) = (gen.rng.pick(gen.variants), gen.rng.pick(gen.warehouseCodes))
                    for _ in 0..<gen.rng.int(2...8) {
                        gen.nextID += 1
                        let id = gen.rng.chance(0.1) && gen.nextID > 1 ? "fresh\(gen.nextID - 1)" : "fresh\(gen.nextID)"
                        let ttl: Duration? = gen.rng.chance(0.3) ? gen.ttl() : nil
                        burst.append(.reserve(ReserveRequest(id: id, lines: [ReserveLine(variant: v, warehouse: w, quantity: gen.quantity(1...3))], ttl: ttl)))
                    }
                    burst.reverse()
                }
                let command = burst.popLast() ?? prefix.popLast() ?? gen.next(model: model)
                if let id = command.reservationID { usedIDs.insert(id) }
                _ = model.execute(command, actor: actor, now: clockA.now())
                batch.append(command)
            }
            var expected: [Outcome<Reply>] = []
            for command in batch { expected.append(await oneByOne.execute(command, actor: actor)) }
            let actual = await batched.execute(batch, actor: actor)
            #expect(actual.count == batch.count, "\(tag): batch \(batchCount) answered \(actual.count) of \(batch.count)")
            for (i, (e, a)) in zip(expected, actual).enumerated() where !sameOutcome(e, a) {
                Issue.record("\(tag): batch \(batchCount) command \(i) \(short(batch[i]))\n    one at a time: \(describe(e))\n    batched:       \(describe(a))")
                return
            }
            done += size
            batchCount += 1
            batchEnds.append(model.ledger.count)
        }
        // Both engines end where the model ends: the same cells, reservations, ledger and invariants.
        // A batch may number the reservations of a run shard by shard (docs/DECISIONS.md, "Batches"):
        // its ledger is compared batch by batch, cell by cell.
        _ = await compareState(engine: oneByOne, model: model, usedIDs: usedIDs, tag: "\(tag) one at a time", trail: [])
        _ = await compareState(engine: batched, model: model, usedIDs: usedIDs, tag: "\(tag) batched", trail: [], ledgerBatchEnds: batchEnds)
    }

    func short(_ value: Any) -> String {
        String(describing: value).replacingOccurrences(of: "StockpileCore.", with: "")
            .replacingOccurrences(of: "ReservationLine", with: "").replacingOccurrences(of: "ReserveLine", with: "")
    }

    func outcomeKind(_ command: Command, _ o: Outcome<Reply>, model: ReferenceModel) -> String {
        let name = String(describing: command).prefix { $0 != "(" }
        switch o {
        case .ok(let r):
            var detail = ""
            if case .reservation(let rec) = r {
                detail = rec.replayed ? " replayed" : " \(rec.reservation.status.rawValue)"
                if case .reserve = command, !rec.replayed {
                    if rec.reservation.lines.count > 1 { detail += " multi-line" }
                    if rec.reservation.lines.contains(where: { $0.backordered.isPositive }) { detail += " backordered" }
                    if rec.reservation.lines.contains(where: { !$0.tracked }) { detail += " untracked" }
                    if rec.reservation.fingerprint.lines.contains(where: { $0.warehouse == "*" }) { detail += " placed(\(rec.reservation.fingerprint.strategy))" }
                }
            }
            if case .cell(let c) = r {
                if c.replayed { detail = " replayed" } else if c.shortfall.isPositive { detail = " shortfall" }
            }
            if case .transfer(let t) = r, t.replayed { detail = " replayed" }
            return "\(name) ok\(detail)"
        case .refused(let r):
            var detail = r.warehouse == "*" ? " *" : ""
            if r.code == .insufficient, let v = r.variant, let w = r.warehouse, w != "*",
                model.cell(variant: v, warehouse: w).available < .zero
            {
                detail += " (cell in deficit)"
            }
            return "\(name) \(r.code.name)\(detail)"
        }
    }

    func describe(_ o: Outcome<Reply>) -> String {
        switch o {
        case .ok(let r): "ok \(short(r))"
        case .refused(let r):
            "refused \(r.code.name) v=\(r.variant ?? "-") w=\(r.warehouse ?? "-") avail=\(r.available.map(\.description) ?? "-") req=\(r.requested.map(\.description) ?? "-") cur=\(r.current.map(\.description) ?? "-") \"\(r.message)\""
        }
    }

    func sameOutcome(_ a: Outcome<Reply>, _ b: Outcome<Reply>) -> Bool {
        switch (a, b) {
        case (.ok(let x), .ok(let y)): return x == y
        case (.refused(let x), .refused(let y)):
            return x.code == y.code && x.variant == y.variant && x.warehouse == y.warehouse && x.available == y.available
                && x.requested == y.requested && x.current == y.current
        default: return false
        }
    }

    /// Every cell, every reservation id ever used, the whole ledger, and the engine's own invariants.
    /// `ledgerBatchEnds`: for an engine that took its commands in batches, the model's ledger length
    /// after each batch. The ledger is then compared within each batch's stretch of sequence numbers
    /// cell by cell (each cell's entries, and the entries that touch no cell, in the model's order),
    /// since a batch may number a run's reservations shard by shard. Without it, entry by entry.
    func compareState(
        engine: Engine, model: ReferenceModel, usedIDs: Set<String>, tag: String, trail: [String], ledgerBatchEnds: [Int]? = nil
    ) async -> Bool {
        var ok = true
        let context = "\nlast commands:\n\(trail.suffix(8).joined(separator: "\n"))"

        // Cells: every variant seen in every warehouse that exists, and every cell the model has.
        var keys = Set(model.cells.keys)
        let variants = Set(model.cells.keys.map(\.variant)).union(["A", "B", "C", "D", "E"])
        for v in variants { for w in model.warehouses.keys { keys.insert(CellKey(variant: v, warehouse: w)) } }
        for key in keys.sorted() {
            let expected = CellRecord(key: key, state: model.cell(key))
            let actual = await engine.cell(variant: key.variant, warehouse: key.warehouse)
            if actual.value != expected {
                ok = false
                #expect(Bool(false), "\(tag): cell \(key.variant)@\(key.warehouse): model \(expected), engine \(actual)\(context)")
            }
        }

        // Reservations, including forgotten ones (the engine must not know them either).
        for id in usedIDs.sorted() {
            let actual = await engine.reservation(id)
            if let r = model.reservation(id) {
                if actual.value?.reservation != r {
                    ok = false
                    #expect(Bool(false), "\(tag): reservation \(id):\n  model:  \(short(r))\n  engine: \(short(actual))\(context)")
                }
            } else if Identifiers.isValidReservationID(id) {
                if actual.refusal?.code != .notFound {
                    ok = false
                    #expect(Bool(false), "\(tag): reservation \(id) should be unknown (never made or forgotten), engine: \(actual)\(context)")
                }
            }
        }

        // The ledger, entry by entry.
        var events: [LedgerEntry] = []
        var from: UInt64 = 1
        while true {
            let page = await engine.events(from: from, limit: 1000)
            events += page
            if page.count < 1000 { break }
            from = page.last!.seq + 1
        }
        if events.count != model.ledger.count {
            ok = false
            #expect(Bool(false), "\(tag): ledger has \(events.count) entries in the engine, \(model.ledger.count) in the model")
        }
        if let ends = ledgerBatchEnds {
            // Sequence numbers still run 1, 2, 3… with no gap, in the order the events come.
            if let gap = events.enumerated().first(where: { $0.element.seq != UInt64($0.offset + 1) }) {
                ok = false
                #expect(Bool(false), "\(tag): ledger entry \(gap.offset + 1) has seq \(gap.element.seq)")
            }
            var start = 0
            for (batch, end) in ends.enumerated() where end > start && end <= events.count {
                func byCell(_ entries: ArraySlice<LedgerEntry>) -> [CellKey: [LedgerEntry]] {
                    Dictionary(grouping: entries.map { e -> LedgerEntry in
                        var e = e
                        e.seq = 0
                        return e
                    }, by: \.cell)
                }
                let (expected, actual) = (byCell(model.ledger[start..<end]), byCell(events[start..<end]))
                if expected != actual {
                    ok = false
                    let cell = expected.keys.sorted().first { expected[$0] != actual[$0] } ?? actual.keys.sorted().first { expected[$0] == nil }
                    #expect(Bool(false), "\(tag): batch \(batch) (entries \(start + 1)–\(end)) differs in cell \(String(describing: cell)):\n  model:  \(short(expected[cell!] ?? []))\n  engine: \(short(actual[cell!] ?? []))\(context)")
                    break
                }
                start = end
            }
        } else {
            for (e, m) in zip(events, model.ledger) where e != m {
                ok = false
                #expect(Bool(false), "\(tag): ledger entry \(m.seq) differs:\n  model:  \(short(m))\n  engine: \(short(e))\(context)")
                break
            }
        }

        let problems = await engine.verify()
        if !problems.isEmpty {
            ok = false
            // The recent history of every cell a problem names, to see how it got there.
            var history = ""
            for key in model.cells.keys.sorted() where problems.contains(where: { $0.contains("cell \(key.variant) \(key.warehouse)") }) {
                let entries = model.ledger.filter { $0.cell == key || ($0.type == .policy && $0.variant == key.variant) }.suffix(12)
                history += "\nmodel history of \(key.variant)@\(key.warehouse) (policy now \(short(model.policy(key.variant)))):\n"
                history += entries.map { "  \(short($0))" }.joined(separator: "\n")
            }
            #expect(Bool(false), "\(tag): engine.verify(): \(problems)\(history)")
        }
        return ok
    }
}

/// Regression scripts: the smallest command sequences with which the random streams once found the
/// engine differing from the documents, run through both the engine and the model. Each names the
/// SPEC/DECISIONS sentence it checks.
struct ModelBasedScriptTests {
    enum Step {
        case run(Command)
        case advance(Duration)
    }

    /// Runs the steps through a fresh engine and model and reports every difference, then compares the
    /// whole state and runs `verify`.
    func check(_ name: String, _ steps: [Step]) async {
        let start = ModelBasedTests.start
        let clock = ManualClock(start: start)
        let engine = Engine(configuration: EngineConfiguration(shardCount: 4, retention: .seconds(120), defaultStrategy: .priority), clock: clock)
        var model = ReferenceModel(retention: .seconds(120), defaultStrategy: .priority, start: start)
        let harness = ModelBasedTests()
        var usedIDs: Set<String> = []
        var trail: [String] = []
        for (i, step) in steps.enumerated() {
            switch step {
            case .advance(let d): clock.advance(by: d)
            case .run(let command):
                if let id = command.reservationID { usedIDs.insert(id) }
                let expected = model.execute(command, actor: "", now: clock.now())
                let actual = await engine.execute(command, actor: "")
                trail.append("step \(i): \(harness.short(command))\n    model:  \(harness.describe(expected))\n    engine: \(harness.describe(actual))")
                #expect(harness.sameOutcome(expected, actual), "script '\(name)' step \(i) differs:\n\(trail.joined(separator: "\n"))")
            }
        }
        _ = await harness.compareState(engine: engine, model: model, usedIDs: usedIDs, tag: "script '\(name)'", trail: trail)
    }

    static let received = ReasonCode.received

    @Test("SPEC §7.2: a KEY of a success that changed nothing is used (retry replays, other command is CONFLICT)")
    func keyOfUnchangedSuccess() async {
        await check(
            "key of unchanged release",
            [
                .run(.adjust(variant: "A", warehouse: "MAIN", delta: 5, reason: Self.received)),
                .run(.reserve(ReserveRequest(id: "r1", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)]))),
                .run(.release(id: "r1")),
                .run(.release(id: "r1", key: "k1")),  // closed: returns the record unchanged, uses k1
                .run(.release(id: "r1", key: "k1")),  // a retry: the original reply, replayed
                .run(.adjust(variant: "A", warehouse: "MAIN", delta: 1, reason: Self.received, key: "k1")),  // CONFLICT
            ])
    }

    @Test("DECISIONS precedence: a line the reservation lacks is NOTFOUND before CLOSED/EXPIRED")
    func missingLineBeforeClosed() async {
        await check(
            "missing line on closed reservation",
            [
                .run(.adjust(variant: "A", warehouse: "MAIN", delta: 5, reason: Self.received)),
                .run(.reserve(ReserveRequest(id: "r1", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 2)]))),
                .run(.release(id: "r1")),
                .run(.fulfill(id: "r1", line: LineSelector(variant: "B", warehouse: "MAIN", quantity: 1))),
                .run(.release(id: "r1", line: LineSelector(variant: "B", warehouse: "MAIN", quantity: 1))),
                .run(.reserve(ReserveRequest(id: "r2", lines: [ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1)], ttl: .seconds(5)))),
                .advance(.seconds(6)),
                .run(.fulfill(id: "r2", line: LineSelector(variant: "B", warehouse: "MAIN", quantity: 1))),
            ])
    }

    @Test("SPEC §1 invariant 3: a backorder variant may show available < 0 after its backordered line shipped first")
    func backorderDeficitAfterShipping() async {
        await check(
            "backorder deficit moves to an unbackordered line",
            [
                .run(.setPolicy(PolicyChange(variant: "E", backorder: true))),
                .run(.adjust(variant: "E", warehouse: "MAIN", delta: 2, reason: Self.received)),
                .run(.reserve(ReserveRequest(id: "r1", lines: [ReserveLine(variant: "E", warehouse: "MAIN", quantity: 1)]))),  // backordered 0
                .run(.reserve(ReserveRequest(id: "r2", lines: [ReserveLine(variant: "E", warehouse: "MAIN", quantity: 3)]))),  // backordered 2
                .run(.adjust(variant: "E", warehouse: "MAIN", delta: 1, reason: Self.received)),
                .run(.fulfill(id: "r2")),  // on_hand 3 >= 3: ships; cell 0/1, available -1, r1 records no backorder
            ])
    }
}
