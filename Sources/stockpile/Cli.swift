// `stockpile cli`: a small client. With a command it sends that one command and prints the reply
// (exit status 1 when the reply is an error); without one it reads commands at a prompt. Lines are
// split as the server splits inline requests (quotes group words), and replies are printed the way
// redis-cli prints them.

import Foundation
import StockpileClient
import StockpileProtocol
import StockpileServer  // only for the default port

let cliUsage = """
    usage: stockpile cli [--host ADDR] [--port N] [--auth TOKEN] [--resp3] [command [argument…]]

      --host ADDR    server address (default 127.0.0.1)
      --port N       server port (default 7379)
      --auth TOKEN   send AUTH TOKEN first (or set STOCKPILE_AUTH)
      --resp3        ask for RESP3 (HELLO 3): records print as maps
    Without a command, reads commands at a prompt until end of input or QUIT.

    """

func cli(_ arguments: [String]) -> Never {
    var flags = Flags(arguments, usage: cliUsage)
    var host = "127.0.0.1"
    var port = ServerConfiguration.portDefault
    var token = ProcessInfo.processInfo.environment["STOCKPILE_AUTH"]
    var resp3 = false
    while flags.peekIsFlag(), let flag = flags.next() {
        switch flag {
        case "--host": host = flags.value(flag)
        case "--port": port = flags.integer(flag, in: 1...65535)
        case "--auth": token = flags.value(flag)
        case "--resp3": resp3 = true
        case "-h", "--help":
            print(cliUsage, terminator: "")
            exit(0)
        default: fail("unknown option \(flag) for cli\n\n\(cliUsage)")
        }
    }
    let command = flags.remaining()
    let client: RESPClient
    do {
        client = try RESPClient(host: host, port: port, timeoutSeconds: 0)
        if resp3, case .error(let e)? = try client.call(["HELLO", "3"]) { fail(e) }
        if let token, case .error(let e)? = try client.call(["AUTH", token]) { fail(e) }
    } catch {
        fail("could not connect to \(host):\(port): \(error)")
    }
    if !command.isEmpty {
        do {
            guard let reply = try client.call(command) else { fail("the server closed the connection") }
            print(CliFormat.render(reply))
            if case .error = reply { exit(1) }
            exit(0)
        } catch {
            fail("\(error)")
        }
    }
    let interactive = isatty(STDIN_FILENO) != 0
    while true {
        if interactive {
            print("\(host):\(port)> ", terminator: "")
            fflush(nil)
        }
        guard let line = readLine() else { exit(0) }
        var splitter = RequestParser()
        splitter.append(contentsOf: Array(line.utf8) + [UInt8(ascii: "\n")])
        let words: [[UInt8]]
        do {
            guard let w = try splitter.next() else { continue }
            words = w
        } catch {
            print("(error) \(error.message)")
            continue
        }
        do {
            let text = words.map { String(decoding: $0, as: UTF8.self) }
            guard let reply = try client.call(text) else {
                print("the server closed the connection")
                exit(text.first?.uppercased() == "QUIT" ? 0 : 1)
            }
            print(CliFormat.render(reply))
        } catch {
            fail("\(error)")
        }
    }
}

/// Replies as redis-cli shows them: `(integer) 5`, `"text"`, `(nil)`, numbered arrays, `1# "key" => value` maps.
enum CliFormat {
    static func render(_ frame: ReplyFrame, indent: Int = 0) -> String {
        switch frame {
        case .simple(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let n): return "(integer) \(n)"
        case .bulk(let bytes): return quoted(bytes)
        case .string(let text): return quoted(Array(text.utf8))
        case .null: return "(nil)"
        case .array(let items), .push(let items):
            if items.isEmpty { return "(empty array)" }
            return numbered(items.map { render($0, indent: indent + width(items.count) + 2) }, separator: ")", indent: indent, count: items.count)
        case .record(let fields):
            if fields.isEmpty { return "(empty hash)" }
            let lines = fields.map { "\(quoted(Array($0.name.utf8))) => \(render($0.value, indent: indent + width(fields.count) + 2))" }
            return numbered(lines, separator: "#", indent: indent, count: fields.count)
        }
    }

    private static func width(_ count: Int) -> Int { String(count).count }

    private static func numbered(_ lines: [String], separator: String, indent: Int, count: Int) -> String {
        let w = width(count)
        return lines.enumerated().map { i, line in
            let number = String(i + 1)
            let label = String(repeating: " ", count: w - number.count) + number + separator + " "
            return (i == 0 ? "" : String(repeating: " ", count: indent)) + label + line
        }.joined(separator: "\n")
    }

    private static func quoted(_ bytes: [UInt8]) -> String {
        // Text that is valid UTF-8 beyond ASCII prints as itself, as a terminal shows it.
        if bytes.contains(where: { $0 >= 0x80 }), let text = String(validating: bytes, as: UTF8.self),
            !text.contains(where: { $0.isNewline || $0 == "\"" || $0 == "\\" })
        {
            return "\"\(text)\""
        }
        var out = "\""
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "\n"): out += "\\n"
            case UInt8(ascii: "\r"): out += "\\r"
            case UInt8(ascii: "\t"): out += "\\t"
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += String(format: "\\x%02x", b)
            }
        }
        return out + "\""
    }
}
