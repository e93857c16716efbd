#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Swift side of the etcd benchmark: the three workloads of ../../README.md against one etcd
/// member, one line per figure, in the format of the Go peer (`swift uncontended ops_per_s=…`).
///
///     etcd-bench --endpoint 127.0.0.1:2379 [--contended-duration 10s] [--only uncontended|uncontended_on_store_executor|contended|leader_handoff|round_trip|scale|scale_registrations] …
enum EtcdBench {
    static func run() async {
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            var only: Set<String> = []
            while let index = arguments.firstIndex(of: "--only"), index + 1 < arguments.count {
                only.insert(arguments[index + 1])
                arguments.removeSubrange(index...(index + 1))
            }
            let options = try Options.parse(arguments, environment: getenv("ETCD_ENDPOINT").map { String(cString: $0) })
            let workloads: [(String, (Options) async throws -> [String])] = [
                ("uncontended", uncontended),
                ("uncontended_on_store_executor", uncontendedOnStoreExecutor),
                ("contended", contended),
                ("leader_handoff", leaderHandoff),
                ("round_trip", roundTrip),
                ("scale", scale),
                ("scale_registrations", scaleRegistrations),
            ]
            // A workload that fails is reported on its own line and the others still run. The
            // scale workloads (10,000 sessions) run only when asked for by name.
            var failed = false
            for (name, workload) in workloads where only.isEmpty ? !name.hasPrefix("scale") : only.contains(name) {
                do {
                    for line in try await workload(options) { print(line) }
                } catch {
                    print("swift \(name) failed reason: \(error)")
                    failed = true
                }
            }
            if failed { exit(1) }
        } catch {
            print("etcd-bench: \(error)")
            exit(1)
        }
    }
}
