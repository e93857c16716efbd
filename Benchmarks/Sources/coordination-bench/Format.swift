/// Plain-text number formatting (no Foundation): thousands separators and time units.
enum Format {
    /// `1234567.8` → `1,234,568`.
    static func grouped(_ value: Double) -> String {
        let rounded = Int(value.rounded())
        let digits = String(rounded.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return rounded < 0 ? "-" + out : out
    }

    static func grouped(_ value: Int) -> String { grouped(Double(value)) }

    /// A duration in nanoseconds shown in the largest unit that keeps it ≥ 1.
    static func time(_ nanoseconds: Double?) -> String {
        guard let nanoseconds else { return "-" }
        switch nanoseconds {
        case ..<1_000: return "\(fixed(nanoseconds, 0)) ns"
        case ..<1_000_000: return "\(fixed(nanoseconds / 1e3, 2)) µs"
        case ..<1_000_000_000: return "\(fixed(nanoseconds / 1e6, 2)) ms"
        default: return "\(fixed(nanoseconds / 1e9, 2)) s"
        }
    }

    /// `value` with exactly `decimals` digits after the point.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int((value * scale).rounded())
        if decimals == 0 { return String(scaled) }
        let whole = scaled / Int(scale)
        let fraction = String(scaled.magnitude % UInt(scale))
        return "\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// Pads `text` on the right (or left, for numbers) to `width` characters.
    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}
