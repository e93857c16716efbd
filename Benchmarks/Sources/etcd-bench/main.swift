import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// With ETCD_BENCH_NIO_EXECUTOR=1, Swift concurrency runs on NIO's event loop threads (an option an
// application can choose for itself: it saves a thread hop on every call). Must happen before any
// task is created.
if let value = getenv("ETCD_BENCH_NIO_EXECUTOR"), String(cString: value) == "1" {
    let installed = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    print("swift executor nio_event_loops=\(installed)")
}
await EtcdBench.run()
