/// Command-line settings as `--name value` (or `--name=value`) pairs; a later pair overrides an
/// earlier one. Each setting is taken once by name; ``finish()`` rejects any left untaken.
///
/// ```swift
/// var arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
/// let cycles = try arguments.count("cycles", minimum: 1) ?? 3000
/// try arguments.finish()
/// ```
public struct Arguments: Sendable {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String

        public init(_ description: String) { self.description = description }
    }

    private var values: [String: String] = [:]

    public init(_ arguments: [String]) throws(Invalid) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw Invalid("expected --name value, got '\(argument)'")
            }
            if let equals = argument.firstIndex(of: "=") {
                values[String(argument[argument.index(argument.startIndex, offsetBy: 2)..<equals])] =
                    String(argument[argument.index(after: equals)...])
                index += 1
            } else {
                guard index + 1 < arguments.count else { throw Invalid("\(argument) needs a value") }
                values[String(argument.dropFirst(2))] = arguments[index + 1]
                index += 2
            }
        }
    }

    /// The text of `--name`, if given.
    public mutating func string(_ name: String) -> String? {
        values.removeValue(forKey: name)
    }

    /// `--name` as a whole number of at least `minimum`, if given.
    public mutating func count(_ name: String, minimum: Int = 0) throws(Invalid) -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text), value >= minimum else {
            throw Invalid("--\(name) takes a whole number of at least \(minimum), got '\(text)'")
        }
        return value
    }

    /// `--name` as a duration, if given: `10s`, `250ms`, or a number of seconds (`2`, `1.5`).
    public mutating func duration(_ name: String) throws(Invalid) -> Duration? {
        guard let text = string(name) else { return nil }
        let trimmed = text.filter { $0 != " " }
        let (number, scale): (Substring, Double) =
            trimmed.hasSuffix("ms")
            ? (trimmed.dropLast(2), 1e-3)
            : trimmed.hasSuffix("s") ? (trimmed.dropLast(), 1) : (Substring(trimmed), 1)
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw Invalid("--\(name) takes a duration such as 10s, 250ms or 2.5 (seconds), got '\(text)'")
        }
        return .nanoseconds(Int64(value * scale * 1e9))
    }

    /// Throws for the first setting (by name) that nothing took.
    public func finish() throws(Invalid) {
        if let name = values.keys.sorted().first { throw Invalid("unknown option --\(name)") }
    }
}
