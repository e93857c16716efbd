import Foundation

/// Runs the MemoryStore measurements with fixed operation counts and prints one table, with the
/// figures the issue sets as targets compared against them.
///
///     swift run -c release coordination-bench [--quick]
///     taskset -c 0 .build/release/coordination-bench      # the "on one core" figures
@main
struct CoordinationBench {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.contains("--help") || arguments.contains("-h") {
            print(
                """
                usage: coordination-bench [--quick] [--only NAME ...]
                  --quick      a tenth of the operations (a smoke test, noisier figures)
                  --only NAME  run only this measurement (repeatable): \(Measurements.names.joined(separator: ", "))
                """
            )
            return
        }
        var measurements = Measurements(scale: arguments.contains("--quick") ? 0.1 : 1)
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "--only":
                guard let name = remaining.popFirst(), Measurements.names.contains(name) else {
                    print("--only takes one of \(Measurements.names.joined(separator: ", "))")
                    exit(2)
                }
                measurements.only.insert(name)
            default:
                continue
            }
        }
        #if DEBUG
            print("warning: a debug build; run `swift run -c release coordination-bench` for real figures\n")
        #endif
        print("swift-coordination MemoryStore, \(processorDescription())\n")
        let figures = try await runAll(measurements)
        print(Report(figures: figures).text)
    }

    /// Runs every measurement off the main actor, so that no call to the store hops executors.
    private nonisolated static func runAll(_ measurements: Measurements) async throws -> [Figure] {
        var figures: [Figure] = []
        for (_, measure) in measurements.selected {
            let figure = try await measure()
            print("  measured \(figure.name)")
            figures.append(figure)
        }
        print()
        return figures
    }

    /// "2 CPUs", or "pinned to 1 of 2 CPUs" under `taskset -c 0`.
    private static func processorDescription() -> String {
        let online = ProcessInfo.processInfo.processorCount
        guard let usable = allowedProcessorCount(), usable < online else { return "\(online) CPUs" }
        return "pinned to \(usable) of \(online) CPUs"
    }

    /// The number of CPUs this process may run on, from `Cpus_allowed_list` in /proc/self/status
    /// (Foundation's `activeProcessorCount` ignores the affinity mask on Linux).
    private static func allowedProcessorCount() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
            let list = line.split(separator: ":").last
        else { return nil }
        var count = 0
        for range in list.trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            guard let first = bounds.first, let last = bounds.last else { return nil }
            count += last - first + 1
        }
        return count
    }
}
