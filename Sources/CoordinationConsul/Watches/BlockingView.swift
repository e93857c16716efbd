@_spi(Backend) import CoordinationCore

/// What a watch knows between two blocking queries: the last index and the entries it has
/// reported. Pure: it turns each answer into watch events by Consul's blocking-query rules.
///
/// - An answer with the same index as the last one is a timeout of `wait`: nothing changed.
/// - An index of 0 is treated as 1, as Consul's documentation asks, so the next query still blocks.
/// - An index that goes backwards (a server restored from a snapshot, a leader that lost its
///   state) means the view can no longer be trusted: the answer becomes a new snapshot with
///   `historyLost`, and the index is reset to it.
/// - Otherwise the answer is diffed against the view: created or changed entries (by ModifyIndex)
///   become `.put`s, vanished ones `.deleted`s, in index order. Consul reports the latest state,
///   not every write in between (docs/architecture.md, note 4 of section 4).
struct BlockingView: Sendable, Equatable {
    private(set) var index: UInt64
    private(set) var entries: [Key: Entry]

    /// The view of a first, non-blocking read.
    init(index: UInt64?, entries: [Entry]) {
        self.index = Self.sanitized(index)
        self.entries = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
    }

    var snapshot: WatchSnapshot {
        WatchSnapshot(entries: entries.values.sorted { $0.key < $1.key }, revision: Revision(index))
    }

    static func sanitized(_ index: UInt64?) -> UInt64 { max(index ?? 1, 1) }

    /// Applies one answer of a blocking query and returns the events it implies.
    mutating func apply(index rawIndex: UInt64?, entries fresh: [Entry]) -> [WatchEvent] {
        let newIndex = Self.sanitized(rawIndex)
        if newIndex == index { return [] }
        let freshByKey = Dictionary(fresh.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        if newIndex < index {
            index = newIndex
            entries = freshByKey
            return [
                .snapshot(
                    WatchSnapshot(
                        entries: fresh.sorted { $0.key < $1.key }, revision: Revision(newIndex), historyLost: true))
            ]
        }
        var events: [(order: UInt64, rank: Int, event: WatchEvent)] = []
        for (key, entry) in freshByKey {
            if let old = entries[key] {
                if old.createRevision != entry.createRevision {
                    // Deleted and created again in between: both, the deletion first.
                    events.append(
                        (
                            entry.createRevision.value, 0,
                            .deleted(Deletion(key: key, revision: entry.createRevision, reason: .unspecified))
                        ))
                    events.append((entry.modifyRevision.value, 1, .put(entry)))
                } else if old.modifyRevision != entry.modifyRevision || old.value != entry.value
                    || old.session != entry.session
                {
                    events.append((entry.modifyRevision.value, 1, .put(entry)))
                }
            } else {
                events.append((entry.modifyRevision.value, 1, .put(entry)))
            }
        }
        for key in entries.keys where freshByKey[key] == nil {
            events.append(
                (newIndex, 2, .deleted(Deletion(key: key, revision: Revision(newIndex), reason: .unspecified))))
        }
        index = newIndex
        entries = freshByKey
        return events.sorted { ($0.order, $0.rank, $0.event.keyPath) < ($1.order, $1.rank, $1.event.keyPath) }.map(
            \.event)
    }
}

extension WatchEvent {
    fileprivate var keyPath: String {
        switch self {
        case .snapshot: ""
        case .put(let entry): entry.key.path
        case .deleted(let deletion): deletion.key.path
        }
    }
}
