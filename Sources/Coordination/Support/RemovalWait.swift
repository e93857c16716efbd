import CoordinationCore

/// How a wait for a key's removal ended.
enum RemovalWait: Sendable {
    case removed
    case storeClosed
}

extension KeyValueStore {
    /// Waits until the incarnation of `key` created at `createRevision` is gone (with `owner`: or no
    /// longer bound to that session), for as long as `session` lives. A watch that fails (its
    /// connection moving to another member) is opened again, with backoff: only the key's removal
    /// counts. Returns `nil` when the task is cancelled or `session` ends first — whoever waits on
    /// the session says why.
    func waitUntilGone(_ key: Key, createdAt createRevision: Revision, owner: SessionID?, while session: Session)
        async -> RemovalWait?
    {
        var attempt = 0
        while !Task.isCancelled {
            do throws(CoordinationError) {
                try await waitUntilGone(key, createdAt: createRevision, session: owner)
                return .removed
            } catch  where error.code == .cancelled {
                return nil
            } catch  where error.code == .storeClosed {
                return .storeClosed
            } catch {
                if !session.isActive { return nil }
                try? await Task.sleep(for: Cleanup.backoff(min(attempt, 3)))
                attempt += 1
            }
        }
        return nil
    }
}

extension KeyValueStore {
    /// Waits until `key` does not exist (returns at once if it is already absent).
    func waitUntilAbsent(_ key: Key) async throws {
        try await waitUntilGone(key, createdAt: nil, session: nil)
    }
}
