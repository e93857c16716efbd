@_spi(Backend) import CoordinationCore

/// A session as the in-memory store tracks it.
struct SessionRecord {
    let session: Session
    let ttl: Duration
    /// `nil` while the owner keeps the session alive; set once it is abandoned.
    var deadline: Duration?
    var keys: Set<String> = []

    init(session: Session, ttl: Duration) {
        self.session = session
        self.ttl = ttl
    }
}

/// Everything a ``MemoryStore`` holds, guarded by its mutex. Every mutation bumps ``revision`` once
/// and notifies watchers while still under the lock, so all watchers see changes in one order.
struct MemoryState {
    var revision: UInt64 = 0
    var entries: [String: Entry] = [:]
    /// parent path ("" for the root) → paths of its direct children that exist as entries or as
    /// ancestors of entries.
    var children: [String: Set<String>] = [:]
    var sessions: [SessionID: SessionRecord] = [:]
    var sessionCounter: UInt64 = 0
    var keyWatchers: [String: [Int: WatchStream.Continuation]] = [:]
    var treeWatchers: [String: [Int: WatchStream.Continuation]] = [:]
    var nextWatcherID = 0
    var closed = false
    /// The earliest deadline of an abandoned session, so that calls need not scan every session.
    var earliestDeadline: Duration?

    /// Writes an entry at a new revision and notifies watchers.
    @discardableResult
    mutating func write(_ key: Key, _ value: [UInt8], session: SessionID?) -> Entry {
        revision += 1
        let now = Revision(revision)
        let entry: Entry
        if var existing = entries[key.path] {
            if existing.session != session {
                if let old = existing.session { sessions[old]?.keys.remove(key.path) }
            }
            existing.value = value
            existing.modifyRevision = now
            existing.session = session
            entry = existing
        } else {
            entry = Entry(key: key, value: value, createRevision: now, modifyRevision: now, session: session)
            link(key.path)
        }
        entries[key.path] = entry
        if let session { sessions[session]?.keys.insert(key.path) }
        notify(key.path, .put(entry))
        return entry
    }

    /// Removes an entry at the current revision (the caller bumped it) and notifies watchers.
    mutating func remove(_ path: String, reason: Deletion.Reason) {
        guard let entry = entries.removeValue(forKey: path) else { return }
        if let session = entry.session { sessions[session]?.keys.remove(path) }
        unlink(path)
        notify(path, .deleted(Deletion(key: entry.key, revision: Revision(revision), reason: reason)))
    }

    /// Ends a session: removes its keys at one new revision (the caller bumped it).
    mutating func endSession(_ id: SessionID, reason: Deletion.Reason) {
        guard let record = sessions.removeValue(forKey: id) else { return }
        for path in record.keys.sorted() {
            guard let entry = entries[path], entry.session == id else { continue }
            remove(path, reason: reason)
        }
    }

    /// Expires every abandoned session whose deadline has passed. The owner is told first, then
    /// its keys go: a holder's loss is visible before anyone can observe the deletion.
    mutating func expireDue(now: Duration, store: MemoryStore) {
        guard let earliest = earliestDeadline, earliest <= now else { return }
        defer { earliestDeadline = nextDeadline() }
        let due = sessions.values.filter { $0.deadline.map { $0 <= now } ?? false }.sorted {
            $0.deadline! < $1.deadline!
        }
        for record in due {
            record.session.transition(to: .expired)
            revision += 1
            endSession(record.session.id, reason: .expired)
        }
    }

    /// The earliest deadline of an abandoned session.
    func nextDeadline() -> Duration? {
        sessions.values.compactMap(\.deadline).min()
    }

    /// Every path strictly below `path` that exists (as entry or ancestor).
    func descendants(of path: String) -> [String] {
        var result: [String] = []
        var stack = [path]
        while let next = stack.popLast() {
            guard let kids = children[next] else { continue }
            for kid in kids {
                result.append(kid)
                stack.append(kid)
            }
        }
        return result
    }

    private mutating func link(_ path: String) {
        var child = path
        while true {
            let parent = Self.parent(of: child)
            let inserted = children[parent, default: []].insert(child).inserted
            if !inserted || parent.isEmpty { return }
            child = parent
        }
    }

    /// Removes a path that no longer exists from its parent's index. Its ancestors stay indexed as
    /// empty directories, so a line that empties and fills again on every grant does not rebuild the
    /// chain up to the root each time (listings skip paths without an entry). The index grows with
    /// the number of distinct directories ever used, not with the number of keys.
    private mutating func unlink(_ path: String) {
        guard children[path]?.isEmpty ?? true, entries[path] == nil else { return }
        children.removeValue(forKey: path)
        children[Self.parent(of: path)]?.remove(path)
    }

    private static func parent(of path: String) -> String {
        // The UTF-8 view: keys are ASCII, and Character-wise search pays for grapheme breaking.
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return String(path[..<slash])
    }

    private func notify(_ path: String, _ event: WatchEvent) {
        if let watchers = keyWatchers[path] {
            for watcher in watchers.values { watcher.yield(event) }
        }
        guard !treeWatchers.isEmpty else { return }
        var ancestor = Substring(path)
        while let slash = ancestor.lastIndex(of: "/") {
            ancestor = ancestor[..<slash]
            if let watchers = treeWatchers[String(ancestor)] {
                for watcher in watchers.values { watcher.yield(event) }
            }
        }
    }
}
