// The catalog's warehouse lookup: a short list of warehouses is scanned, a long one read from the
// table, and both answer what the table holds.

import Testing
@testable import Stockpile
@testable import StockpileCore

@Suite struct CatalogTests {
    @Test("warehouse(_:) answers as the table does, for every code and for unknown ones, whether the catalog's warehouses are scanned or looked up", arguments: [1, 2, Catalog.scannedCountMax, Catalog.scannedCountMax + 1, 30])
    func lookupAgreesWithTheTable(count: Int) {
        var catalog = Catalog()
        // MAIN is there from the start; the rest with priorities that put them in another order than their codes.
        for i in 1..<count { catalog.apply(Warehouse(code: "W\(i)", name: "warehouse \(i)", priority: Int64((i * 37) % 11), active: i % 3 != 0)) }
        #expect(catalog.warehouses.count == count)
        let asked = catalog.warehouses.keys.sorted() + ["main", "W", "W\(count)", "W1X", "", "MAIN "]
        for code in asked {
            #expect(catalog.warehouse(code) == catalog.warehouses[code], "\(code) among \(count)")
        }
    }
}
