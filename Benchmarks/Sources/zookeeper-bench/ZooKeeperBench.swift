#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Swift side of the ZooKeeper lock benchmark, the peer of ../../kazoo_bench.py: the same
/// flags, workloads, measurement and `RESULT` lines, with this library's `Lock` on the ZooKeeper
/// store in place of kazoo's `Lock` recipe.
///
///     zookeeper-bench --hosts 127.0.0.1:PORT --prefix /bench/swift --warmup-cycles 300 --cycles 3000 \
///         --contenders 16 --contended-warmup 2 --contended-duration 10 --four-letter-port PORT \
///         [--workloads uncontended,contended|none]
///
/// stdout:
///
///     RESULT uncontended ops_per_s=… p50_ms=… p99_ms=… acquire_p50_ms=… requests_per_cycle=… cycles=…
///     RESULT contended contenders=16 grants_per_s=… handoff_p50_ms=… handoff_p99_ms=… grants=… seconds=… \
///         requests_per_grant=… notifications_per_grant=…
///     RESULT <workload> failed            (the reason is on stderr)
///
/// A figure the server's counters could not give is left out. Progress goes to stderr. Exit status
/// 0 when every workload ran, 1 when one failed, 2 for bad arguments. (kazoo_bench.py's
/// `--warm-server`, which the run script gives only to kazoo, is not here.)
enum ZooKeeperBench {
    static func run() async {
        let options: Options
        do {
            options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            note("\(error)")
            exit(2)
        }
        let counters = ServerCounters(host: options.counterHost, port: options.fourLetterPort)
        let hosts = options.endpoints.map { "\($0.host):\($0.port)" }.joined(separator: ",") + options.chroot
        note("swift-coordination Lock against \(hosts) (prefix /\(options.prefix))")

        var status: Int32 = 0
        for workload in Options.Workload.allCases where options.workloads.contains(workload.rawValue) {
            do {
                switch workload {
                case .uncontended: try await uncontended(options, counters)
                case .contended: try await contended(options, counters)
                }
            } catch {
                note("\(workload.rawValue) failed: \(error)")
                resultFailed(workload.rawValue)
                status = 1
            }
        }
        exit(status)
    }
}
