import BenchSupport
import Coordination
import CoordinationCore
import CoordinationEtcd

struct StreamEnded: Error, CustomStringConvertible {
    let description: String
}

/// Two candidates and an observer, each on its own client. In each round the follower joins the
/// line, and once its key is there the leader resigns; the figure is the time from the start of
/// `resign()` to the observer's `Election.observe()` stream naming the new leader.
func leaderHandoff(_ options: Options) async throws -> [String] {
    let name = try Key("\(options.prefix)/election")
    return try await withStores(4, options) { stores in
        let sessions = [
            try await stores[0].makeSession(ttl: options.sessionTTL),
            try await stores[1].makeSession(ttl: options.sessionTTL),
        ]
        let elections = [Election(name, store: stores[0]), Election(name, store: stores[1])]
        let values = [Array("a".utf8), Array("b".utf8)]
        let keys = try sessions.map { try name.appending($0.id.rawValue) }

        var leaders = try await Election(name, store: stores[2]).observe().makeAsyncIterator()
        // Tells when a candidate's key is in line (not measured).
        var line = try await stores[3].watchTree(name).makeAsyncIterator()
        func waitForLeader(_ value: [UInt8]) async throws {
            while let leader = try await leaders.next() {
                if leader?.value == value { return }
            }
            throw StreamEnded(description: "the observe() stream ended")
        }
        func waitUntilJoined(_ key: Key) async throws {
            while let event = try await line.next() {
                if case .put(let entry) = event, entry.key == key { return }
            }
            throw StreamEnded(description: "the watch of the line ended")
        }

        var leaderships: [Leadership?] = [try await elections[0].campaign(value: values[0], session: sessions[0]), nil]
        try await waitForLeader(values[0])
        var leader = 0
        var samples = LatencySamples()
        let clock = ContinuousClock()
        for round in 0..<(options.leaderWarmup + options.leaderRounds) {
            let follower = 1 - leader
            try await Task.sleep(for: options.settle)
            async let campaigned = elections[follower].campaign(value: values[follower], session: sessions[follower])
            try await waitUntilJoined(keys[follower])
            let began = clock.now
            try await leaderships[leader]!.resign()
            try await waitForLeader(values[follower])
            if round >= options.leaderWarmup { samples.record(began.duration(to: clock.now)) }
            leaderships[follower] = try await campaigned
            leaderships[leader] = nil
            leader = follower
        }
        try await leaderships[leader]!.resign()
        for session in sessions { try? await session.close() }
        return [
            "swift leader_handoff p50_ms=\(fixed(samples.percentileMilliseconds(0.5)))"
                + " p99_ms=\(fixed(samples.percentileMilliseconds(0.99))) rounds=\(samples.count)"
        ]
    }
}
