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

/// Finds the instances of services registered with ``ServiceRegistration`` under the same base
/// (or, with `catalog: .nativeWhenAvailable`, the healthy instances in the store's own catalog).
public struct ServiceDiscovery: Sendable {
    public let base: Key
    public let store: any KeyValueStore
    public let catalog: ServiceCatalog

    public init(base: Key, store: any KeyValueStore, catalog: ServiceCatalog = .keyValue) {
        self.base = base
        self.store = store
        self.catalog = catalog
    }

    private var nativeRegistry: (any NativeServiceRegistry)? {
        catalog == .nativeWhenAvailable ? store as? any NativeServiceRegistry : nil
    }

    /// The live instances of `service`, sorted by id.
    public func instances(of service: String) async throws(CoordinationError) -> [ServiceInstance] {
        let prefix = try serviceKey(service)
        if let native = nativeRegistry {
            return try await native.healthyServices(named: service).map(ServiceInstance.init).sorted { $0.id < $1.id }
        }
        return try await store.list(prefix)
            .filter { $0.key.isChild(of: prefix) }
            .compactMap(ServiceInstance.decode)
            .sorted { $0.id < $1.id }
    }

    /// A snapshot of `service`'s instances, then every change.
    public func watch(_ service: String) async throws(CoordinationError) -> DiscoveryStream {
        let prefix = try serviceKey(service)
        if let native = nativeRegistry {
            return DiscoveryStream(memberships: try await native.watchHealthyServices(named: service), prefix: prefix)
        }
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

    private enum Source: Sendable {
        case keyValue(WatchStream)
        case native(NativeMembershipStream)
    }

    private let source: Source
    let prefix: Key

    init(events: WatchStream, prefix: Key) {
        self.source = .keyValue(events)
        self.prefix = prefix
    }

    init(memberships: NativeMembershipStream, prefix: Key) {
        self.source = .native(memberships)
        self.prefix = prefix
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = DiscoveryEvent
        public typealias Failure = CoordinationError

        var events: WatchStream.AsyncIterator?
        var memberships: NativeMembershipStream.AsyncIterator?
        let prefix: Key
        var members: [String: ServiceInstance] = [:]
        /// Changes from one native membership to the next, not yet returned.
        var pending: [DiscoveryEvent.Change] = []
        var started = false

        public mutating func next() async throws(CoordinationError) -> DiscoveryEvent? {
            if memberships != nil { return try await nextNative() }
            guard events != nil else { return nil }
            while let event = try await events!.next() {
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

        /// A native catalog reports whole memberships; each is diffed against the last into the
        /// same events the key/value layout gives.
        private mutating func nextNative() async throws(CoordinationError) -> DiscoveryEvent? {
            while pending.isEmpty {
                let records: [NativeServiceRecord]?
                do {
                    records = try await memberships!.next()
                } catch {
                    throw (error as? CoordinationError)
                        ?? CoordinationError(.serverError, "service watch failed: \(error)", key: prefix.path)
                }
                guard let records else { return nil }
                let fresh = Dictionary(
                    records.map { ($0.id, ServiceInstance($0)) }, uniquingKeysWith: { _, last in last })
                if !started {
                    started = true
                    members = fresh
                    pending = [.snapshot]
                    break
                }
                for (id, instance) in fresh.sorted(by: { $0.key < $1.key }) {
                    if let old = members[id] {
                        if old != instance { pending.append(.updated(instance)) }
                    } else {
                        pending.append(.registered(instance))
                    }
                }
                for id in members.keys.sorted() where fresh[id] == nil { pending.append(.deregistered(id: id)) }
            }
            // `members` is the view before this change: apply the change, then report it.
            let change = pending.removeFirst()
            switch change {
            case .registered(let instance), .updated(let instance): members[instance.id] = instance
            case .deregistered(let id): members.removeValue(forKey: id)
            case .snapshot: break
            }
            return DiscoveryEvent(change: change, instances: members.values.sorted { $0.id < $1.id })
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch source {
        case .keyValue(let events):
            AsyncIterator(events: events.makeAsyncIterator(), memberships: nil, prefix: prefix)
        case .native(let memberships):
            AsyncIterator(events: nil, memberships: memberships.makeAsyncIterator(), prefix: prefix)
        }
    }
}
