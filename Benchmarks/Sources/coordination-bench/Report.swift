/// The table `coordination-bench` prints, then one line per target.
struct Report {
    var figures: [Figure]

    var text: String {
        var lines: [String] = []
        let columns: [(String, Int, Bool)] = [
            ("benchmark", 38, false), ("operations", 11, true), ("per second", 14, true), ("per CPU-second", 14, true),
            ("p50", 10, true), ("p99", 10, true),
        ]
        lines.append(columns.map { Format.pad($0.0, $0.1, right: $0.2) }.joined(separator: "  "))
        lines.append(String(repeating: "-", count: columns.reduce(0) { $0 + $1.1 } + 2 * (columns.count - 1)))
        for figure in figures {
            let cells = [
                figure.name,
                Format.grouped(figure.operations),
                Format.grouped(figure.perSecond) + "/s",
                Format.grouped(figure.perCPUSecond) + "/s",
                Format.time(figure.latency.percentile(0.5)),
                Format.time(figure.latency.percentile(0.99)),
            ]
            lines.append(zip(cells, columns).map { Format.pad($0, $1.1, right: $1.2) }.joined(separator: "  "))
        }
        lines.append("")
        lines.append(
            "One operation: put, get, acquire+release, grant, and for the fan-out a put received by every watcher.")
        lines.append(
            "per second: operations / wall-clock time; per CPU-second: operations / CPU time of the whole process.")
        for figure in figures {
            if let note = figure.note { lines.append("\(figure.name): \(note)") }
        }
        lines.append("")
        for figure in figures {
            guard let target = figure.target else { continue }
            func versus(_ rate: Double) -> String {
                let ratio = rate / target
                return
                    "\(Format.grouped(rate))/s (\(Format.fixed(ratio, 2))× the \(Format.grouped(target))/s target, \(ratio >= 1 ? "met" : "MISSED"))"
            }
            lines.append("\(figure.name): \(versus(figure.perSecond)); per CPU-second \(versus(figure.perCPUSecond))")
        }
        return lines.joined(separator: "\n")
    }
}
