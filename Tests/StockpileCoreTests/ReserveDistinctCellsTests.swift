// `Rules.reserveDistinctCells`, the decision a reservation across shards makes while it holds them,
// against `Rules.reserve`, the general rules: for requests whose lines name distinct cells, each with
// its warehouse, both decide the same: the same commit, or the same refusal (a missing warehouse
// before an inactive one, any line short of stock before any line over the limit of reserved).

import Foundation
import StockpileCore
import Testing

/// A stock view over a few fixed cells, warehouses and policies.
private struct FixedView: StockView {
    var cells: [CellKey: CellState] = [:]
    var warehouses: [String: Warehouse] = [:]
    var policies: [String: VariantPolicy] = [:]

    func cellState(_ key: CellKey) -> CellState { cells[key] ?? .empty }
    func warehouse(_ code: String) -> Warehouse? { warehouses[code] }
    func policy(of variant: String) -> VariantPolicy { policies[variant] ?? VariantPolicy(variant: variant) }
    var warehousesInPlacementOrder: [Warehouse] { warehouses.values.sorted { ($0.priority, $0.code) < ($1.priority, $1.code) } }
    func reservation(_ id: String) -> Reservation? { nil }
}

@Suite("Reservations of distinct cells")
struct ReserveDistinctCellsTests {
    /// Both rules' answers to `lines` in `view`, for a case built by hand.
    private static func decisions(_ lines: [ReserveLine], in view: FixedView) -> (distinct: Decision, general: Decision) {
        let request = ReserveRequest(id: "r", lines: lines)
        let now = Timestamp(milliseconds: 1_000)
        let distinct = Rules.reserveDistinctCells(
            request, fingerprint: ReserveFingerprint(request, strategy: .priority), in: view, now: now, actor: "t", lines: [], entries: [])
        return (distinct, Rules.reserve(request, in: view, now: now, actor: "t", settings: RuleSettings()))
    }

    @Test("the order of refusals: a short line before a line over the limit, a missing warehouse before an inactive one")
    func refusalOrder() {
        var view = FixedView()
        view.warehouses["MAIN"] = Warehouse(code: "MAIN")
        view.warehouses["EAST"] = Warehouse(code: "EAST", active: false)
        // A backorder variant is never short, so its line at the limit of reserved passes the stock
        // check and fails only the limit; the next line is short.
        view.policies["A"] = VariantPolicy(variant: "A", backorder: true)
        view.cells[CellKey(variant: "A", warehouse: "MAIN")] = CellState(onHand: 0, reserved: Limits.cellQuantityMax)
        view.cells[CellKey(variant: "B", warehouse: "MAIN")] = CellState(onHand: 1, reserved: 0)
        let short = Self.decisions([ReserveLine(variant: "A", warehouse: "MAIN", quantity: 1), ReserveLine(variant: "B", warehouse: "MAIN", quantity: 2)], in: view)
        #expect(short.distinct == short.general)
        guard case .refused(let a) = short.distinct else { Issue.record("refused: \(short)"); return }
        #expect(a.code == .insufficient)
        let missing = Self.decisions([ReserveLine(variant: "A", warehouse: "EAST", quantity: 1), ReserveLine(variant: "B", warehouse: "GONE", quantity: 1)], in: view)
        #expect(missing.distinct == missing.general)
        guard case .refused(let c) = missing.distinct else { Issue.record("refused: \(missing)"); return }
        #expect(c.code == .notFound)
    }

    @Test("decide as the general rules do: commits, short stock, the limit of reserved, missing and inactive warehouses")
    func sameAsGeneralRules() {
        let seed = ProcessInfo.processInfo.environment["STOCKPILE_SEED"].flatMap(UInt64.init) ?? 2027
        print("reserveDistinctCells seed \(seed)")
        var rng = SplitMix64(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let variants = ["A", "B", "C", "D"]
        let codes = ["MAIN", "EAST", "WEST", "GONE"]
        var outcomes: [String: Int] = [:]
        for round in 0..<2_000 {
            var view = FixedView()
            for code in codes.dropLast() where pick(8) != 0 {
                view.warehouses[code] = Warehouse(code: code, active: pick(6) != 0)
            }
            for v in variants {
                switch pick(6) {
                case 0: view.policies[v] = VariantPolicy(variant: v, backorder: true)
                case 1: view.policies[v] = VariantPolicy(variant: v, unlimited: true)
                default: break
                }
                for code in codes {
                    // Reserved sometimes at the limit, so that one more unit passes it.
                    let reserved = pick(10) == 0 ? Limits.cellQuantityMax : Quantity(Int64(pick(5)))
                    view.cells[CellKey(variant: v, warehouse: code)] = CellState(onHand: Quantity(Int64(pick(12))), reserved: reserved)
                }
            }
            // Two to four lines naming distinct cells.
            var lines: [ReserveLine] = []
            while lines.count < 2 + pick(3) {
                let line = ReserveLine(variant: variants[pick(variants.count)], warehouse: codes[pick(codes.count)], quantity: Quantity(Int64(1 + pick(6))))
                if !lines.contains(where: { $0.variant == line.variant && $0.warehouse == line.warehouse }) { lines.append(line) }
            }
            let (distinct, general) = Self.decisions(lines, in: view)
            #expect(distinct == general, "seed \(seed) round \(round)")
            switch distinct {
            case .commit: outcomes["commit", default: 0] += 1
            case .refused(let r): outcomes["\(r.code)", default: 0] += 1
            case .unchanged: Issue.record("seed \(seed) round \(round): a new reservation answered as a replay")
            }
        }
        // Every kind of answer came up, so each check was compared.
        for kind in ["commit", "\(RefusalCode.insufficient)", "\(RefusalCode.limit)", "\(RefusalCode.notFound)", "\(RefusalCode.inactive)"] {
            #expect(outcomes[kind, default: 0] > 0, "seed \(seed): no \(kind) among \(outcomes)")
        }
    }
}
