import CoordinationCore

/// A change in a service's membership, with the membership after it.
public struct DiscoveryEvent: Sendable, Hashable {
    public enum Change: Sendable, Hashable {
        /// The first state (or a fresh one after history was lost).
        case snapshot
        case registered(ServiceInstance)
        case updated(ServiceInstance)
        case deregistered(id: String)
    }

    public let change: Change
    /// Every live instance after the change, sorted by id.
    public let instances: [ServiceInstance]
}

/// Finds the instances of services registered with ``ServiceRegistration`` under the same base.
public struct ServiceDiscovery: Sendable {
    public let base: Key
    public let store: any KeyValueStore

    public init(base: Key, store: any KeyValueStore) {
        self.base = base
        self.store = store
    }

    /// The live instances of `service`, sorted by id.
    public func instances(of service: String) async throws(CoordinationError) -> [ServiceInstance] {
        let prefix = try serviceKey(service)
        return try await store.list(prefix)
            .filter { $0.key.isChild(of: prefix) }
            .compactMap(ServiceInstance.decode)
            .sorted { $0.id < $1.id }
    }

    /// A snapshot of `service`'s instances, then every change.
    public func watch(_ service: String) async throws(CoordinationError) -> DiscoveryStream {
        let prefix = try serviceKey(service)
        return DiscoveryStream(events: try await store.watchTree(prefix), prefix: prefix)
    }

    private func serviceKey(_ service: String) throws(CoordinationError) -> Key {
        let key = try Key(service)
        guard key.segments.count == 1 else {
            throw CoordinationError(.invalidKey, "a service name must be a single key segment", key: service)
        }
        return base.appending(key)
    }
}

/// The membership of a service over time.
public struct DiscoveryStream: AsyncSequence, Sendable {
    public typealias Element = DiscoveryEvent
    public typealias Failure = CoordinationError

    let events: WatchStream
    let prefix: Key

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = DiscoveryEvent
        public typealias Failure = CoordinationError

        var events: WatchStream.AsyncIterator
        let prefix: Key
        var members: [String: ServiceInstance] = [:]

        public mutating func next() async throws(CoordinationError) -> DiscoveryEvent? {
            while let event = try await events.next() {
                let change: DiscoveryEvent.Change?
                switch event {
                case .snapshot(let snapshot):
                    members = [:]
                    for entry in snapshot.entries where entry.key.isChild(of: prefix) {
                        if let instance = ServiceInstance.decode(entry) { members[instance.id] = instance }
                    }
                    change = .snapshot
                case .put(let entry):
                    guard entry.key.isChild(of: prefix), let instance = ServiceInstance.decode(entry) else {
                        change = nil
                        break
                    }
                    let old = members.updateValue(instance, forKey: instance.id)
                    change = old == nil ? .registered(instance) : (old == instance ? nil : .updated(instance))
                case .deleted(let deletion):
                    let id = String(deletion.key.name)
                    change =
                        deletion.key.isChild(of: prefix) && members.removeValue(forKey: id) != nil
                        ? .deregistered(id: id) : nil
                }
                if let change {
                    return DiscoveryEvent(change: change, instances: members.values.sorted { $0.id < $1.id })
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(events: events.makeAsyncIterator(), prefix: prefix)
    }
}
