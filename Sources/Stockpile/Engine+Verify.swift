// `verify()` checks the invariants of SPEC §1 over the whole engine at one moment: it holds every
// shard (in the usual ascending order) while it copies their state, so no operation is half-applied
// while it looks.

import StockpileCore

extension Engine {
    /// Every broken invariant, described; empty when all hold. Cost: holds every shard while it copies
    /// their state, then checks O(cells + reservation lines).
    public func verify() async -> [String] {
        // Everything is read while every shard is held, so no operation is half-applied. A reservation
        // whose claim is still being settled (its directory entry in flight) is not a problem.
        let (states, engineCatalog, entries) = holdingShards(allShards) {
            (shards.map { shard in shard.withHeldState { $0.snapshot } }, catalog.withLock { $0 }, directory.contents())
        }
        // The directory's slots (one per reservation kept in one shard), counted by tag and shard;
        // each such reservation accounts for one. An id taken back to be forgotten keeps its slot
        // until it is dropped, whether or not its shard still keeps it: it accounts for its own.
        var slots: [UInt64: Int] = [:]
        func slot(_ id: String, _ shard: Int) -> UInt64 { directory.slot(hash: id.hashValue, shard: shard) }
        for s in entries.slots { slots[s, default: 0] += 1 }
        for r in entries.reclaimedInOneShard { slots[slot(r.id, r.shard), default: 0] -= 1 }
        let acrossShards = Dictionary(entries.acrossShards.map { ($0.id, $0.mask) }, uniquingKeysWith: { a, _ in a })
        var problems: [String] = []
        var expectedReserved: [CellKey: Quantity] = [:]
        for state in states {
            if state.catalog != engineCatalog { problems.append("shard \(state.index): catalog copy differs from the engine's") }
            for r in state.allReservations {
                let id = r.id
                if router.home(of: r) != state.index { problems.append("reservation \(id) is kept in shard \(state.index), not its home") }
                let mask = router.mask(of: r.lines.map(\.cell))
                if entries.inFlight.contains(id) {
                    // Being settled (or forgotten): accounted for above.
                } else if mask.nonzeroBitCount == 1 {
                    let key = slot(id, state.index)
                    if let n = slots[key], n > 0 {
                        slots[key] = n - 1
                    } else {
                        problems.append("reservation \(id): no directory slot of its tag in shard \(state.index)")
                    }
                } else if acrossShards[id] != mask {
                    problems.append("reservation \(id): directory entry missing or wrong")
                }
                var settled = r
                settled.settleStatus(at: r.closedAt ?? r.createdAt, byExpiry: r.status == .expired)
                if settled.status != r.status { problems.append("reservation \(id): status \(r.status) does not follow from its lines") }
                if Set(r.lines.map(\.cell)).count != r.lines.count { problems.append("reservation \(id): two lines on one cell") }
                if !r.isOpen && r.expiresAt != nil { problems.append("reservation \(id): closed but still expires") }
                for line in r.lines {
                    if line.fulfilled < .zero || line.released < .zero || line.remaining < .zero || line.backordered < .zero || line.backordered > line.quantity {
                        problems.append("reservation \(id): line \(line.variant) \(line.warehouse) has impossible figures")
                    }
                    guard r.isOpen, line.tracked else { continue }
                    expectedReserved[line.cell, default: .zero] += line.remaining
                }
            }
        }
        for state in states {
            for (key, slot) in state.cells {
                let c = slot.state
                if router.shard(for: key) != state.index { problems.append("cell \(key.variant) \(key.warehouse) is kept in the wrong shard") }
                // Invariant 1.
                if c.onHand < .zero || c.reserved < .zero { problems.append("cell \(key.variant) \(key.warehouse): negative figures \(c)") }
                // Invariant 2.
                let expected = expectedReserved.removeValue(forKey: key) ?? .zero
                if c.reserved != expected {
                    problems.append("cell \(key.variant) \(key.warehouse): reserved \(c.reserved) but its active lines hold \(expected)")
                }
                // Invariant 3.
                if c.available < .zero && !slot.belowZeroAllowed {
                    problems.append("cell \(key.variant) \(key.warehouse): available \(c.available) with neither a backorder nor a recorded loss")
                }
                if engineCatalog.warehouses[key.warehouse] == nil { problems.append("cell \(key.variant) \(key.warehouse): no such warehouse") }
            }
        }
        for (key, q) in expectedReserved where q.isPositive {
            problems.append("cell \(key.variant) \(key.warehouse) does not exist but active lines hold \(q) of it")
        }
        // Every directory entry names a reservation its home shard keeps.
        for (id, mask) in entries.acrossShards where !states[mask.trailingZeroBitCount].contains(reservation: id) {
            problems.append("directory names reservation \(id) that shard \(mask.trailingZeroBitCount) does not keep")
        }
        for (key, n) in slots where n != 0 {
            let tag = String(key & ~ShardSlots.shardMask, radix: 16)
            problems.append("directory has \(n) slot(s) of tag \(tag) in shard \(ShardSlots.shard(ofSlot: key)) that no reservation accounts for")
        }
        return problems
    }
}
