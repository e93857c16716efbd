@_spi(Backend) import CoordinationCore
import Foundation
import Synchronization
import Testing

@Suite("StateBroadcast")
struct StateBroadcastTests {
    /// Negative values are terminal in these tests.
    static func makeBroadcast(_ initial: Int = 0) -> StateBroadcast<Int> {
        StateBroadcast(initial, isTerminal: { $0 < 0 })
    }

    /// Reads `count` values from `stream`, failing the test if they do not arrive in time.
    static func first(_ count: Int, of stream: AsyncStream<Int>) async throws -> [Int] {
        try await withDeadline {
            var values: [Int] = []
            for await value in stream {
                values.append(value)
                if values.count == count { break }
            }
            return values
        }
    }

    /// Reads `stream` to its end, failing the test if it does not end in time.
    static func all(of stream: AsyncStream<Int>) async throws -> [Int] {
        try await withDeadline {
            var values: [Int] = []
            for await value in stream { values.append(value) }
            return values
        }
    }

    @Test("a stream yields the current value first, then every change")
    func currentValueThenChanges() async throws {
        let broadcast = Self.makeBroadcast(7)
        #expect(broadcast.value == 7)
        let stream = broadcast.stream()
        broadcast.set(8)
        broadcast.set(9)
        #expect(try await Self.first(3, of: stream) == [7, 8, 9])
        #expect(broadcast.value == 9)
    }

    @Test("a stream made after changes starts at the value as of then")
    func streamStartsAtCurrentValue() async throws {
        let broadcast = Self.makeBroadcast()
        broadcast.set(1)
        broadcast.set(2)
        let stream = broadcast.stream()
        broadcast.set(3)
        #expect(try await Self.first(2, of: stream) == [2, 3])
    }

    @Test("equal values are not delivered again")
    func equalValuesAreNotRedelivered() async throws {
        let broadcast = Self.makeBroadcast()
        let stream = broadcast.stream()
        #expect(broadcast.set(1))
        #expect(!broadcast.set(1))
        #expect(broadcast.set(2))
        #expect(!broadcast.set(2))
        #expect(broadcast.update { $0 } == 2)
        #expect(broadcast.set(-1))
        #expect(try await Self.all(of: stream) == [0, 1, 2, -1])
    }

    @Test("setting the initial value again delivers nothing")
    func initialValueIsNotRedelivered() async throws {
        let broadcast = Self.makeBroadcast(5)
        let stream = broadcast.stream()
        #expect(!broadcast.set(5))
        broadcast.set(-5)
        #expect(try await Self.all(of: stream) == [5, -5])
    }

    @Test("update applies the transform and delivers the result")
    func update() async throws {
        let broadcast = Self.makeBroadcast(1)
        let stream = broadcast.stream()
        #expect(broadcast.update { $0 + 1 } == 2)
        #expect(broadcast.update { $0 * 10 } == 20)
        #expect(broadcast.update { _ in -1 } == -1)
        #expect(broadcast.update { _ in 99 } == -1)
        #expect(broadcast.value == -1)
        #expect(try await Self.all(of: stream) == [1, 2, 20, -1])
    }

    @Test("a terminal value finishes every stream and nothing changes afterwards")
    func terminalFinishesAllStreams() async throws {
        let broadcast = Self.makeBroadcast()
        let streams = (0..<3).map { _ in broadcast.stream() }
        broadcast.set(1)
        #expect(broadcast.set(-1))
        for stream in streams {
            #expect(try await Self.all(of: stream) == [0, 1, -1])
        }
        #expect(!broadcast.set(2))
        #expect(!broadcast.set(-2))
        #expect(broadcast.value == -1)
    }

    @Test("a late subscriber gets only the terminal value, then the end")
    func lateSubscriberGetsTerminalValue() async throws {
        let broadcast = Self.makeBroadcast()
        broadcast.set(1)
        broadcast.set(-3)
        #expect(try await Self.all(of: broadcast.stream()) == [-3])
        #expect(try await Self.all(of: broadcast.stream()) == [-3])
    }

    @Test("without a terminal predicate the streams never finish by themselves")
    func noTerminalPredicate() async throws {
        let broadcast = StateBroadcast(0)
        let stream = broadcast.stream()
        broadcast.set(-1)
        broadcast.set(-2)
        #expect(
            try await withDeadline { () async -> [Int] in
                var values: [Int] = []
                for await value in stream {
                    values.append(value)
                    if values.count == 3 { break }
                }
                return values
            } == [0, -1, -2])
        #expect(broadcast.set(1))
    }

    @Test("a subscriber that stops listening does not disturb the others")
    func droppedSubscriber() async throws {
        let broadcast = Self.makeBroadcast()
        do {
            let dropped = broadcast.stream()
            #expect(try await Self.first(1, of: dropped) == [0])
        }
        let kept = broadcast.stream()
        broadcast.set(1)
        broadcast.set(-1)
        #expect(try await Self.all(of: kept) == [0, 1, -1])
    }

    // MARK: - wait(until:)

    @Test("wait(until:) returns at once when the value already matches")
    func waitAlreadyMatching() async throws {
        let broadcast = Self.makeBroadcast(4)
        let value = try await withDeadline { await broadcast.wait(until: { $0 == 4 }) }
        #expect(value == 4)
    }

    @Test("wait(until:) returns the first matching value once it is set")
    func waitForLaterValue() async throws {
        let broadcast = Self.makeBroadcast()
        async let waited = withDeadline { await broadcast.wait(until: { $0 >= 2 }) }
        // Whether the waiter subscribed before or after these changes, it sees a value >= 2.
        broadcast.set(1)
        broadcast.set(2)
        let value = try await waited
        #expect(value == 2)
    }

    @Test("wait(until:) returns the terminal value when it matches")
    func waitForTerminal() async throws {
        let broadcast = Self.makeBroadcast()
        async let waited = withDeadline { await broadcast.wait(until: { $0 < 0 }) }
        broadcast.set(1)
        broadcast.set(-7)
        #expect(try await waited == -7)
    }

    @Test("wait(until:) returns nil when a non-matching terminal value arrives")
    func waitEndsOnTerminal() async throws {
        let broadcast = Self.makeBroadcast()
        async let waited = withDeadline { await broadcast.wait(until: { $0 == 100 }) }
        broadcast.set(1)
        broadcast.set(-1)
        #expect(try await waited == nil)
        // And immediately for a broadcast that has already ended.
        #expect(try await withDeadline { await broadcast.wait(until: { $0 == 100 }) } == nil)
    }

    @Test("wait(until:) returns nil when the waiting task is cancelled")
    func waitCancelled() async throws {
        let broadcast = Self.makeBroadcast()
        let waiter = Task { await broadcast.wait(until: { $0 == 100 }) }
        broadcast.set(1)
        waiter.cancel()
        #expect(try await withDeadline { await waiter.value } == nil)
        // The broadcast is still usable.
        #expect(broadcast.set(2))
    }

    // MARK: - Concurrency

    @Test("with concurrent writers every subscriber still sees the changes in the order they were made")
    func orderUnderConcurrentWriters() async throws {
        // Each update adds one under the broadcast's lock, so the changes are made in the order
        // 1, 2, 3, …; a subscriber must see a strictly increasing sequence ending at the final value.
        let writers = 4
        let updatesPerWriter = 5_000
        let broadcast = Self.makeBroadcast()
        let stream = broadcast.stream()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    for _ in 0..<updatesPerWriter { broadcast.update { $0 + 1 } }
                }
            }
        }
        let final = broadcast.value
        #expect(final == writers * updatesPerWriter)
        broadcast.set(-1)
        let seen = try await Self.all(of: stream)
        #expect(seen.last == -1)
        let changes = seen.dropLast()
        let outOfOrder = zip(changes, changes.dropFirst()).filter { $0.0 >= $0.1 }
        #expect(outOfOrder.isEmpty, "\(outOfOrder.count) out-of-order deliveries, e.g. \(outOfOrder.prefix(5))")
        #expect(changes.last == final)
    }

    @Test("cancelling a subscriber while changes are delivered to it never deadlocks")
    func cancelDuringDelivery() async throws {
        // The deadlock this guards against (seen under Session.close racing a cancelled lock waiter):
        // a writer yields under the broadcast's lock, which takes the status lock of the consumer
        // task it resumes; a cancelled consumer's termination handler runs under that status lock
        // and took the broadcast's lock. The writer and the canceller run on threads of their own,
        // so that if they deadlock, this test still fails by its watchdog instead of stalling the
        // executor the test process runs on.
        let broadcast = Self.makeBroadcast()
        let rounds = 100_000
        let writerDone = Atomic<Bool>(false)
        let cancellerDone = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let writer = Thread {
            var value = 0
            while !stop.load(ordering: .relaxed) {
                value += 1
                broadcast.set(value)
            }
            writerDone.store(true, ordering: .relaxed)
        }
        let canceller = Thread {
            for round in 0..<rounds {
                let consumer = Task { for await _ in broadcast.stream() {} }
                // Let the consumer reach its wait now and then; cancel it at once the rest.
                if round % 4 == 0 { for _ in 0..<200 { _ = broadcast.value } }
                consumer.cancel()
                cancellerDone.store(round + 1, ordering: .relaxed)
            }
            stop.store(true, ordering: .relaxed)
        }
        writer.start()
        canceller.start()
        let started = ContinuousClock.now
        while !(writerDone.load(ordering: .relaxed) && cancellerDone.load(ordering: .relaxed) == rounds) {
            guard ContinuousClock.now - started < .seconds(10) else {
                stop.store(true, ordering: .relaxed)
                Issue.record(
                    "writer and canceller stuck after \(cancellerDone.load(ordering: .relaxed)) of \(rounds) rounds: deadlock"
                )
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Still usable, and the ended subscribers were dropped.
        let stream = broadcast.stream()
        broadcast.set(-1)
        #expect(try await Self.all(of: stream).last == -1)
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String { "timed out waiting for an event" }
}

/// Runs `body`, failing with ``TimedOut`` if it has not finished within `seconds` of wall-clock
/// time. Only a guard against hangs: no test asserts on how long something takes.
func withDeadline<T: Sendable>(
    seconds: Int = 20,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut() }
        return value
    }
}
