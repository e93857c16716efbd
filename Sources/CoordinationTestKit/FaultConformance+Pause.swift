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
            arguments: ["hold", url, name.path, String(ttl.milliseconds)])
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
/// running test binary.
enum FaultPeerExecutable {
    static func path() throws -> String {
        try BuiltExecutable.path("coordination-fault-peer", override: "COORDINATION_FAULT_PEER")
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension FaultConformance {
    /// The churn drill: three peer processes take one lock 500 times each with random holds and
    /// random cancelled waits; one of them is killed (SIGKILL) along the way. Every grant goes to a
    /// shared ledger with its fencing token and the interval it was held, stamped on the system's
    /// monotonic clock; the ledger must show no two intervals overlapping and tokens growing with
    /// every grant.
    public static let churnChecks: [ConformanceCheck] = [mutualExclusionUnderChurn]

    static let mutualExclusionUnderChurn = check(
        "lock: over 1,000 grants among three processes, with cancels and a SIGKILL, never overlap"
    ) { ctx in
        guard let url = ctx.peerConnectionString else {
            throw ConformanceFailure("the churn drill needs the backend's peerConnectionString")
        }
        let name = try ctx.key("churn")
        let ledger = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: ledger, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: ledger) }
        let executable = try FaultPeerExecutable.path()
        let peers = try (0..<3).map { index in
            try PeerProcess(
                name: "churn peer \(index)", executable: executable,
                arguments: ["churn", url, name.path, String(ctx.sessionTTL.milliseconds), ledger, "500"])
        }
        defer { for peer in peers { peer.kill() } }
        @Sendable func lines() -> [Substring] {
            ((try? String(contentsOfFile: ledger, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        // Kill the first peer once it has been granted 50 times, while it holds the lock if it can:
        // the ledger is polled, and a poll may keep missing the moments it holds, so from its 80th
        // grant on it is killed wherever it is (holding, waiting or between the two).
        let victim = peers[0]
        let killedAt = try await withDeadline(.seconds(120), "the first peer's 50th grant") {
            () async throws -> Int64 in
            while true {
                let all = lines()
                let mine = all.filter { $0.hasPrefix("grant ") && $0.split(separator: " ")[2] == "\(victim.pid)" }
                if mine.count >= 80 || (mine.count >= 50 && all.last != nil && all.last == mine.last) {
                    victim.kill()
                    return monotonicNanoseconds()
                }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        for peer in peers.dropFirst() {
            try expectEqual(try await peer.waitForExit(within: .seconds(240)), 0, "\(peer.name) exit (\(peer.printed))")
        }
        struct Hold {
            var token: UInt64
            var pid: Int32
            var start: Int64
            var end: Int64?
        }
        var holds: [UInt64: Hold] = [:]
        for line in lines() {
            let fields = line.split(separator: " ")
            guard fields.count == 4, let token = UInt64(fields[1]), let pid = Int32(fields[2]),
                let stamp = Int64(fields[3])
            else { throw ConformanceFailure("unreadable ledger line '\(line)'") }
            if fields[0] == "grant" {
                try expect(holds[token] == nil, "fencing token \(token) granted twice")
                holds[token] = Hold(token: token, pid: pid, start: stamp)
            } else {
                holds[token]?.end = stamp
            }
        }
        // A hold the kill cut short ended when the process died.
        let ordered = holds.values.sorted { $0.start < $1.start }.map { hold -> Hold in
            var hold = hold
            if hold.end == nil { hold.end = hold.pid == victim.pid ? killedAt : .max }
            return hold
        }
        var overlaps = 0
        var tokenInversions = 0
        for (previous, next) in zip(ordered, ordered.dropFirst()) {
            if previous.end! >= next.start { overlaps += 1 }
            if previous.token >= next.token { tokenInversions += 1 }
        }
        print(
            "churn drill: \(ordered.count) grants over 3 processes, \(overlaps) overlaps, \(tokenInversions) token inversions"
        )
        try expect(ordered.count >= 1000, "only \(ordered.count) grants")
        try expectEqual(overlaps, 0, "grants whose held intervals overlapped")
        try expectEqual(tokenInversions, 0, "grants whose fencing token did not grow")
    }
}
