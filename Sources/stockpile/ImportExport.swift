// `stockpile import` and `stockpile export`: stock files (CSV `variant,warehouse,on_hand`) in and out
// of a data directory, with the server stopped (both take the directory's lock). Import reads and
// checks the whole file first, so a bad file changes nothing; every row is logged as `import`.

import Foundation
import Stockpile
import StockpileWAL

let importExportUsage = """
    usage: stockpile import [--data-dir DIR] FILE
           stockpile export [--data-dir DIR] [FILE]

      import   set each listed cell's on_hand to the file's figure (logged as `import`); the file is
               CSV with the header `variant,warehouse,on_hand`; a bad file names every bad line and
               changes nothing
      export   write every cell's on_hand as such a file (to FILE, or to standard output)
      --data-dir DIR   the data directory (default ./stockpile-data); stop the server first

    """

func importStock(_ arguments: [String]) async -> Never {
    let (directory, paths) = dataDirectoryAndPaths(arguments)
    guard paths.count == 1 else { fail("import needs one FILE\n\n\(importExportUsage)") }
    guard let data = FileManager.default.contents(atPath: paths[0]) else { fail("cannot read \(paths[0])") }
    let rows: [StockRow]
    do {
        rows = try StockCSV.parse(String(decoding: data, as: UTF8.self), source: paths[0])
    } catch {
        fail("\(paths[0]) is not valid, nothing was imported:\n\(error)")
    }
    let engine = openEngine(directory)
    switch await engine.importStock(rows) {
    case .ok(let count):
        closeEngine(engine)
        print("imported \(count) cell(s) from \(paths[0]) into \(directory)")
        exit(0)
    case .refused(let refusal):
        closeEngine(engine)
        fail("nothing was imported: \(refusal)")
    }
}

func exportStock(_ arguments: [String]) async -> Never {
    let (directory, paths) = dataDirectoryAndPaths(arguments)
    guard paths.count <= 1 else { fail("export takes at most one FILE\n\n\(importExportUsage)") }
    let engine = openEngine(directory)
    let text = StockCSV.format(await engine.allCells())
    closeEngine(engine)
    if let path = paths.first {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            fail("cannot write \(path): \(error.localizedDescription)")
        }
    } else {
        print(text, terminator: "")
    }
    exit(0)
}

private func dataDirectoryAndPaths(_ arguments: [String]) -> (String, [String]) {
    var directory = "./stockpile-data"
    var paths: [String] = []
    var rest = arguments[...]
    while let word = rest.popFirst() {
        switch word {
        case "--data-dir":
            guard let d = rest.popFirst() else { fail("--data-dir needs a value") }
            directory = d
        case "-h", "--help":
            print(importExportUsage, terminator: "")
            exit(0)
        default:
            if word.hasPrefix("-") && word != "-" { fail("unknown option \(word)\n\n\(importExportUsage)") }
            paths.append(word)
        }
    }
    return (directory, paths)
}

private func openEngine(_ directory: String) -> Engine {
    do {
        return try Engine.open(dataDirectory: directory, durability: .always)
    } catch {
        fail("cannot open \(directory): \(error)")
    }
}

private func closeEngine(_ engine: Engine) {
    do {
        try engine.close()
    } catch {
        fail("the log could not be closed cleanly: \(error)")
    }
}
