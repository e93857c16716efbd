import Benchmark
import Coordination
import CoordinationBenchmarkSupport
import CoordinationCore
import CoordinationMemory

// The MemoryStore suite. Every benchmark gets its own store, started in its setup hook and closed
// in its teardown, so that one benchmark's keys, sessions or watchers never slow another.
//
// Throughput-style benchmarks run `benchmark.scaledIterations` operations per iteration
// (scalingFactor .kilo): the reported throughput and wallClock (marked `*`) are per operation.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .automatic,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 10_000
    )

    // MARK: put

    let putStore = BackgroundStore()
    let putKeys = Workload.keys("put")
    Benchmark("put") { benchmark in
        let store = putStore.store
        let value = Workload.value
        let offset = benchmark.currentIteration &* benchmark.scaledIterations.count
        for index in benchmark.scaledIterations {
            try await store.put(putKeys[(offset &+ index) % putKeys.count], value)
        }
    } setup: {
        putStore.start()
    } teardown: {
        await putStore.stop()
    }

    // MARK: get

    let getStore = BackgroundStore()
    let getKeys = Workload.keys("get")
    Benchmark("get") { benchmark in
        let store = getStore.store
        let offset = benchmark.currentIteration &* benchmark.scaledIterations.count
        for index in benchmark.scaledIterations {
            blackHole(try await store.get(getKeys[(offset &+ index) % getKeys.count]))
        }
    } setup: {
        getStore.start()
        for key in getKeys { try await getStore.store.put(key, Workload.value) }
    } teardown: {
        await getStore.stop()
    }

    // MARK: lock acquire+release uncontended

    let uncontendedStore = BackgroundStore()
    let uncontendedLock = SetupValue<Lock>()
    Benchmark("lock acquire+release uncontended") { benchmark in
        let lock = uncontendedLock.value
        for _ in benchmark.scaledIterations {
            let grant = try await lock.acquire()
            try await grant.release()
        }
    } setup: {
        uncontendedStore.start()
        let session = try await uncontendedStore.store.makeSession(ttl: Workload.sessionTTL)
        uncontendedLock.set(
            Lock(Workload.key("bench/locks/uncontended"), session: session, store: uncontendedStore.store))
    } teardown: {
        try? await uncontendedLock.value.session.close()
        uncontendedLock.set(nil)
        await uncontendedStore.stop()
    }

    // MARK: lock handoff with 16 contenders

    // One iteration is 1,000 grants spread over the 16 contenders (62 or 63 each), so the
    // throughput figure is grants per second.
    let handoffStore = BackgroundStore()
    let handoff = SetupValue<LockHandoff>()
    Benchmark(
        "lock handoff with \(Workload.lockContenders) contenders",
        configuration: .init(warmupIterations: 2)
    ) { benchmark in
        try await handoff.value.run(grants: benchmark.scaledIterations.count)
    } setup: {
        handoffStore.start()
        handoff.set(
            try await LockHandoff(
                store: handoffStore.store,
                name: Workload.key("bench/locks/handoff"),
                contenders: Workload.lockContenders
            )
        )
    } teardown: {
        await handoff.value.close()
        handoff.set(nil)
        await handoffStore.stop()
    }

    // MARK: watch fan-out to 1,000 watchers

    // One iteration is one put, measured until all 1,000 watcher tasks have received it.
    let fanOutStore = BackgroundStore()
    let fanOut = SetupValue<WatchFanOut>()
    Benchmark(
        "watch fan-out to \(Workload.watchers) watchers",
        configuration: .init(scalingFactor: .one)
    ) { _ in
        try await fanOut.value.putAndAwaitDelivery()
    } setup: {
        fanOutStore.start()
        let watchers = WatchFanOut(
            store: fanOutStore.store, key: Workload.key("bench/watch/fan-out"), watchers: Workload.watchers)
        try await watchers.start()
        fanOut.set(watchers)
    } teardown: {
        await fanOut.value.stop()
        fanOut.set(nil)
        await fanOutStore.stop()
    }
}
