// The `stockpile` executable. Subcommands:
//   serve  run the server (Serve.swift)
//   cli    a small client: one command, or a prompt (Cli.swift)
//   wal    verify, dump or repair a data directory's log (Wal.swift)
//   import, export   stock files in and out of a data directory (ImportExport.swift)
//   demo   run a small flash sale in-process and print what happened (Demo.swift)

import Foundation
import Stockpile

// The earliest instant this code sees: what `serve`'s ready line counts from if the kernel's record of
// the process start cannot be read.
let launched = ContinuousClock.now

let usage = """
    usage: stockpile <command> [options]

    commands:
      serve [options]
          Runs the server: Redis's wire protocol on 127.0.0.1:7379, the log in ./stockpile-data.
          `stockpile serve --help` lists the options.
      cli [--host ADDR] [--port N] [--auth TOKEN] [--resp3] [command …]
          Sends one command and prints the reply, or reads commands at a prompt.
      import [--data-dir DIR] FILE, export [--data-dir DIR] [FILE]
          Stock files (CSV: variant,warehouse,on_hand) into or out of a data directory, with the
          server stopped. `stockpile import --help` says more.
      wal verify|dump|repair <data-dir>
          Checks a data directory's log as start-up does, prints it one record per line, or cuts it
          at the first damaged record after a backup. `stockpile wal --help` says more.
      demo [--buyers N] [--stock N] [--seed S]
          Runs a small flash sale in-process on a simulated clock: N buyers (default 500) try to
          reserve 1-3 units of two hot items with a 10-minute hold; some pay and are shipped (some
          in two partial shipments), some cancel, some abandon their hold and it expires; a
          restock arrives midway. Prints what happened and checks the invariants.

    """

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    print(usage, terminator: "")
    exit(2)
}
arguments.removeFirst()

switch command {
case "serve":
    await serve(arguments, launched: launched)
case "cli":
    cli(arguments)
case "wal":
    wal(arguments)
case "import":
    await importStock(arguments)
case "export":
    await exportStock(arguments)
case "demo":
    var options = DemoOptions()
    var rest = arguments[...]
    while let flag = rest.popFirst() {
        guard let text = rest.popFirst() else { fail("\(flag) needs a value") }
        guard let value = Int(text), value >= 0 else { fail("\(flag) must be a whole number ≥ 0, not '\(text)'") }
        switch flag {
        case "--buyers": options.buyers = value
        case "--stock": options.stock = value
        case "--seed": options.seed = UInt64(value)
        default: fail("unknown option \(flag) for demo\n\n\(usage)")
        }
    }
    exit(await runDemo(options) ? 0 : 1)
case "-h", "--help", "help":
    print(usage, terminator: "")
default:
    fail("unknown command '\(command)'\n\n\(usage)")
}
