import Coordination
import CoordinationCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension FaultConformance {
    /// The pause drill, which needs a second process: a holder frozen with SIGSTOP past its TTL
    /// while another client waits. After SIGCONT, the holder must report the loss before any further
    /// guarded step: every step it records is stamped (on the system's monotonic clock) before it
    /// asks `isLost`, and no step may be stamped after the waiter's grant.
    public static let pauseChecks: [ConformanceCheck] = [pausedHolder]

    static let pausedHolder = check(
        "lock: a holder frozen past its TTL reports the loss before any further guarded step"
    ) { ctx in
        guard let url = ctx.peerConnectionString else {
            throw ConformanceFailure("the pause drill needs the backend's peerConnectionString")
        }
        let name = try ctx.key("paused")
        let ttl = ctx.sessionTTL
        let peer = try PeerProcess(
            name: "fault peer", executable: try FaultPeerExecutable.path(),
            arguments: [url, name.path, String(ttl.milliseconds)])
        defer { peer.kill() }
        try await peer.waitForOutput("granted")
        let waiterSession = try await ctx.store.makeSession(ttl: ttl * 10)
        let store = ctx.store
        let waiter = Task { () async throws -> (Int64, LockGrant) in
            let grant = try await Lock(name, session: waiterSession, store: store).acquire()
            return (monotonicNanoseconds(), grant)
        }
        try await waitForLine(ctx.store, name, count: 2)
        try await Task.sleep(for: .milliseconds(100))  // a few steps while it holds
        let stoppedAt = monotonicNanoseconds()
        peer.pause()
        let granted: (Int64, LockGrant)
        do {
            granted = try await withDeadline(ttl * 3 + .seconds(15), "the waiter's grant while the holder is frozen") {
                try await waiter.value
            }
        } catch {
            peer.resume()
            throw error
        }
        let frozen = Duration.nanoseconds(monotonicNanoseconds() - stoppedAt)
        if frozen < ttl * 2 { try await Task.sleep(for: ttl * 2 - frozen) }
        peer.resume()
        try await peer.waitForOutput("lost ", within: .seconds(20))
        let steps = peer.printed.split(separator: "\n").filter { $0.hasPrefix("step ") }
        let late = steps.filter { line in Int64(line.dropFirst(5)).map { $0 > granted.0 } ?? true }
        try expect(
            late.isEmpty,
            "the frozen holder did \(late.count) guarded step(s) after another holder was granted "
                + "(\(steps.count) steps in all; the first late one \(late.first.map { Int64($0.dropFirst(5))! - granted.0 } ?? 0) ns after the grant)"
        )
        try await granted.1.release()
        try await waiterSession.close()
    }

    /// The system's monotonic clock in nanoseconds: the same clock in every process of the machine.
    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// Where the `coordination-fault-peer` executable is: `COORDINATION_FAULT_PEER`, or beside the
/// running test binary (SwiftPM builds it into the same folder for the test targets that depend
/// on it).
enum FaultPeerExecutable {
    static func path() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["COORDINATION_FAULT_PEER"] { return explicit }
        let running =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let candidate = URL(fileURLWithPath: running).deletingLastPathComponent()
            .appendingPathComponent("coordination-fault-peer").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw ConformanceFailure("coordination-fault-peer is not at \(candidate); set COORDINATION_FAULT_PEER")
        }
        return candidate
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
