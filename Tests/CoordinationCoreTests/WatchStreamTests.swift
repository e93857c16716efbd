@_spi(Backend) import CoordinationCore
import Synchronization
import Testing

@Suite("WatchStream")
struct WatchStreamTests {
    static func event(_ index: Int) throws -> WatchEvent {
        .deleted(Deletion(key: try Key("w/\(index)"), revision: Revision(UInt64(index + 1)), reason: .deleted))
    }

    @Test(
        "a consumer that falls the limit behind gets the events held, then historyLost; the producer is told to drop the watch"
    )
    func slowConsumer() async throws {
        let (stream, continuation) = WatchStream.makeStream(limit: 3)
        let terminated = Locked(false)
        continuation.onTermination { terminated.withLock { $0 = true } }
        for index in 0..<3 {
            #expect(try continuation.yield(Self.event(index)), "held: \(index)")
        }
        #expect(try !continuation.yield(Self.event(3)), "one past the limit: drop the watch")
        #expect(try !continuation.yield(Self.event(4)), "and anything later")
        var seen: [WatchEvent] = []
        do {
            for try await event in stream { seen.append(event) }
            Issue.record("the watch finished silently after \(seen.count) events")
        } catch {
            #expect(error.code == .historyLost, "\(error)")
        }
        #expect(seen == (0..<3).map { try! Self.event($0) }, "every event held, in order, and nothing after the gap")
        try await Task.sleep(for: .milliseconds(50))
        #expect(terminated.withLock { $0 }, "the backend's termination handler ran")
    }

    @Test("a consumer that keeps up is never cut off, however many events pass")
    func steadyConsumer() async throws {
        let (stream, continuation) = WatchStream.makeStream(limit: 3)
        var events = stream.makeAsyncIterator()
        for round in 0..<500 {
            for index in 0..<3 {
                #expect(try continuation.yield(Self.event(3 * round + index)))
            }
            for index in 0..<3 {
                #expect(try await events.next() == Self.event(3 * round + index))
            }
        }
    }
}

/// A value shared with a `@Sendable` closure in these tests.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
}
