import Coordination

/// The story the demo tells, step by step, with a deadline on every wait.
struct Scenario: Sendable {
    let store: any KeyValueStore
    let root: Key
    let workerCount: Int
    let ttl: Duration
    let timeline: Timeline

    struct DemoFailure: Error, CustomStringConvertible {
        let description: String
    }

    func play() async throws -> String {
        let jobs = JobTally()
        let workers = try (1...workerCount).map {
            try Worker(
                name: "worker-\($0)",
                port: 9000 + $0,
                store: store,
                root: root,
                ttl: ttl,
                timeline: timeline,
                jobs: jobs
            )
        }
        let election = Election(try root.appending("election"), store: store)
        let discovery = ServiceDiscovery(base: try root.appending("services"), store: store)
        let deadline = ttl * 4 + .seconds(10)

        return try await withThrowingTaskGroup(of: Void.self) { group in
            // A follower that only watches: who leads, and who is registered.
            group.addTask { try await followLeaders(election) }
            group.addTask { try await followMembership(discovery) }
            for worker in workers { group.addTask { try await worker.run() } }
            defer { group.cancelAll() }

            // The narrator waits on the same streams a user would: leadership, membership, jobs.
            let firstLeader = try await waitUntil("a leader", within: deadline, try await election.observe()) {
                $0 != nil
            }
            guard let firstLeader, let first = workers.first(where: { $0.name == firstLeader.stringValue }) else {
                throw DemoFailure(description: "the leader is not one of the workers")
            }
            _ = try await waitUntil("all workers registered", within: deadline, try await discovery.watch("worker")) {
                $0.instances.count == workerCount
            }
            _ = try await waitUntil("every worker ran the job", within: deadline, jobs.updates()) { counts in
                workers.allSatisfy { counts[$0.name, default: 0] >= 1 }
            }

            timeline.log(
                "demo", "KILLING \(first.name), the leader (its sessions stop being renewed, nothing is cleaned up)")
            let killedAt = timeline.elapsed()
            first.crash()

            let newLeader = try await waitUntil("a new leader", within: deadline, try await election.observe()) {
                $0 != nil && $0?.stringValue != first.name
            }
            let failover = timeline.elapsed() - killedAt
            guard let newLeader else { throw DemoFailure(description: "no new leader") }
            _ = try await waitUntil(
                "\(first.name) gone from discovery", within: deadline, try await discovery.watch("worker")
            ) {
                !$0.instances.contains { $0.id == first.name }
            }
            let jobsBefore = jobs.counts
            _ = try await waitUntil("the job to keep running", within: deadline, jobs.updates()) { counts in
                counts.contains { $0.key != first.name && $0.value > jobsBefore[$0.key, default: 0] }
            }
            let members = try await discovery.instances(of: "worker").map(\.id)
            let counts = jobs.counts
            timeline.log("demo", "done")
            group.cancelAll()
            return """
                Summary
                  first leader:   \(first.name) (term \(firstLeader.term))
                  killed at:      \(killedAt.formatted)
                  new leader:     \(newLeader.stringValue) (term \(newLeader.term)), \(failover.formatted) after the kill (session TTL \(ttl.formatted))
                  registered now: \(members.joined(separator: ", "))
                  jobs run:       \(workers.map { "\($0.name)=\(counts[$0.name, default: 0])" }.joined(separator: " "))
                """
        }
    }

    private func followLeaders(_ election: Election) async throws {
        var last: String?
        for try await leader in try await election.observe() {
            let name = leader?.stringValue ?? "nobody"
            if name != last {
                timeline.log("follower", "sees leader: \(name)\(leader.map { " (term \($0.term))" } ?? "")")
                last = name
            }
        }
    }

    private func followMembership(_ discovery: ServiceDiscovery) async throws {
        for try await event in try await discovery.watch("worker") {
            let members = event.instances.map(\.id).joined(separator: ", ")
            switch event.change {
            case .snapshot: timeline.log("discovery", "members: [\(members)]")
            case .registered(let instance):
                timeline.log("discovery", "+ \(instance.id) at \(instance.address):\(instance.port) → [\(members)]")
            case .updated(let instance): timeline.log("discovery", "~ \(instance.id) → [\(members)]")
            case .deregistered(let id): timeline.log("discovery", "- \(id) → [\(members)]")
            }
        }
    }

    /// Reads `sequence` until an element satisfies `predicate`, within a deadline.
    private func waitUntil<S: AsyncSequence & Sendable>(
        _ what: String,
        within deadline: Duration,
        _ sequence: S,
        _ predicate: @escaping @Sendable (S.Element) -> Bool
    ) async throws -> S.Element where S.Element: Sendable {
        try await withThrowingTaskGroup(of: S.Element?.self) { group in
            group.addTask {
                for try await element in sequence where predicate(element) { return element }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let element = first else {
                throw DemoFailure(description: "timed out after \(deadline) waiting for \(what)")
            }
            return element
        }
    }
}

extension Duration {
    var formatted: String {
        let millis = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        return millis >= 1000 ? "\(Double(millis) / 1000)s" : "\(millis)ms"
    }
}
