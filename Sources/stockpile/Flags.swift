// Command-line flags for the subcommands: `--name value` or `--name=value`, and boolean switches.
// Every mistake stops the program with a message naming the flag and the subcommand's usage.

import Foundation

struct Flags {
    private var rest: ArraySlice<String>
    private var pendingValue: String?
    let usage: String

    init(_ arguments: [String], usage: String) {
        self.rest = arguments[...]
        self.usage = usage
    }

    /// The next flag's name, or nil at the end. Anything that is not a flag is a usage error.
    mutating func next() -> String? {
        guard let word = rest.popFirst() else { return nil }
        guard word.hasPrefix("-") else { fail("unexpected argument '\(word)'\n\n\(usage)") }
        if let eq = word.firstIndex(of: "="), word.hasPrefix("--") {
            pendingValue = String(word[word.index(after: eq)...])
            return String(word[..<eq])
        }
        pendingValue = nil
        return word
    }

    /// The value of `flag`, from `--flag=value` or the next word.
    mutating func value(_ flag: String) -> String {
        if let v = pendingValue {
            pendingValue = nil
            return v
        }
        guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
        return v
    }

    mutating func integer(_ flag: String, in range: ClosedRange<Int>) -> Int {
        let text = value(flag)
        guard let n = Int(text), range.contains(n) else { fail("\(flag) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(text)'") }
        return n
    }

    /// The words left after the flags (for `cli`, the command to send).
    mutating func remaining() -> [String] {
        defer { rest = [] }
        return Array(rest)
    }

    mutating func peekIsFlag() -> Bool { rest.first?.hasPrefix("-") ?? false }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("stockpile: \(message)\n".utf8))
    exit(2)
}
