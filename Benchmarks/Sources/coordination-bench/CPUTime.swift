#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// CPU time used by this process (all threads), which, unlike wall-clock time, does not grow while
/// other processes have the CPU. On a shared machine, operations per CPU-second pinned to one core
/// (`taskset -c 0`) is the steadiest figure for "on one core".
enum CPUTime {
    static func now() -> Duration {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return .seconds(spec.tv_sec) + .nanoseconds(spec.tv_nsec)
    }
}
