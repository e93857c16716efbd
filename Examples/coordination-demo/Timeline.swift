import Synchronization

/// Prints numbered, time-stamped lines so the story of a run reads top to bottom.
final class Timeline: Sendable {
    private let start = ContinuousClock.now
    private let lock = Mutex(())

    func elapsed() -> Duration { ContinuousClock.now - start }

    func log(_ who: String, _ what: String) {
        let millis = elapsed().components.seconds * 1000 + elapsed().components.attoseconds / 1_000_000_000_000_000
        let stamp =
            "\(millis / 1000).\(String(repeating: "0", count: 3 - String(millis % 1000).count))\(millis % 1000)s"
        let padded = stamp.count < 8 ? String(repeating: " ", count: 8 - stamp.count) + stamp : stamp
        let name = who.count < 10 ? who + String(repeating: " ", count: 10 - who.count) : who
        lock.withLock { _ in print("\(padded)  \(name) \(what)") }
    }
}
