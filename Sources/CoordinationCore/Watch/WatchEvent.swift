/// One element of a ``WatchStream``.
///
/// A watch starts with a ``snapshot(_:)`` of the current state (an empty one when the key is
/// absent), then delivers every change after the snapshot's revision, in order, with no gap. If a
/// backend cannot resume after a reconnect (history compacted, index cleared) it says so with a new
/// snapshot whose ``WatchSnapshot/historyLost`` is `true`; changes then continue from it.
public enum WatchEvent: Sendable, Hashable {
    /// The state at a revision: the entries that exist (one or none for a key watch).
    case snapshot(WatchSnapshot)
    /// A key was created or its value changed.
    case put(Entry)
    /// A key was removed, explicitly or with the end of its session.
    case deleted(Deletion)

    /// The revision this event brings the watcher to.
    public var revision: Revision {
        switch self {
        case .snapshot(let snapshot): snapshot.revision
        case .put(let entry): entry.modifyRevision
        case .deleted(let deletion): deletion.revision
        }
    }
}

/// The current state a watch starts from (or restarts from after history was lost).
public struct WatchSnapshot: Sendable, Hashable {
    /// The entries present at ``revision``, sorted by key.
    public var entries: [Entry]
    /// The store revision the snapshot was taken at.
    public var revision: Revision
    /// `false` for the first snapshot; `true` when the watch could not resume from its last
    /// revision and changes in between may have been missed.
    public var historyLost: Bool

    public init(entries: [Entry], revision: Revision, historyLost: Bool = false) {
        self.entries = entries
        self.revision = revision
        self.historyLost = historyLost
    }
}

/// The removal of a key.
public struct Deletion: Sendable, Hashable {
    /// Why a key went away, where the backend can tell.
    public enum Reason: Sendable, Hashable {
        /// Someone deleted it.
        case deleted
        /// The session it was bound to ended.
        case expired
        /// The backend does not say (etcd v3, ZooKeeper and Consul report both the same way).
        case unspecified
    }

    public var key: Key
    /// The revision of the removal (or, where the backend reports none, the first revision known
    /// to follow it).
    public var revision: Revision
    public var reason: Reason

    public init(key: Key, revision: Revision, reason: Reason) {
        self.key = key
        self.revision = revision
        self.reason = reason
    }
}
