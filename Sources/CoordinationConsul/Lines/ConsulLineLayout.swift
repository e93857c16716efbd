@_spi(Backend) import CoordinationCore

/// How a contender line under a prefix reads on Consul. Pure.
///
/// Contenders are `prefix/<session id>`, acquired with their session, first in line by CreateIndex
/// (the layout of Go's `api.Semaphore` contender keys). Go's `api.Lock` — and `consul lock` — hold a
/// lock through one key instead, `prefix/.lock`, acquired with flags `0x2ddccbc058a50c18`. So that
/// both kinds of client exclude each other, that key counts too: whoever's session holds it is at
/// the head of the line. If that session has a contender of its own in the line (one of our
/// clients), its contender is moved to the head; otherwise (a Go client) the lock key itself stands
/// at the head, as a contender of that session, and the first of ours waits for it to be released.
enum ConsulLineLayout {
    /// `api.Lock`'s flag value: a `.lock` key with other flags belongs to something else.
    static let lockFlags: UInt64 = 0x2ddc_cbc0_58a5_0c18
    /// The single key `api.Lock` / `consul lock PREFIX` hold (`<prefix>/.lock`).
    static let lockKeyName = ".lock"

    static func lockKey(under prefix: Key) -> Key {
        // `.lock` is a valid segment under the one key rule set.
        try! prefix.appending(lockKeyName)
    }

    struct Reading: Equatable {
        /// The line, first in line first.
        var contenders: [Contender]
        /// The session holding the lock key, if any.
        var lockHolder: SessionID?
        /// The first contender by CreateIndex (not counting a Go client's lock key).
        var firstContender: Contender?
    }

    /// Orders the entries read below `prefix` (a recursive read; deeper keys are ignored).
    static func read(prefix: Key, entries: [Entry]) -> Reading {
        let lockKey = lockKey(under: prefix)
        var line =
            entries
            .filter { $0.key.isChild(of: prefix) && $0.key != lockKey && $0.session != nil }
            .sorted { $0.createRevision < $1.createRevision }
            .map(Contender.init(entry:))
        let first = line.first
        let lockEntry = entries.first { $0.key == lockKey }
        let holder = lockEntry?.session
        if let holder, let lockEntry {
            if let index = line.firstIndex(where: { $0.session == holder }) {
                let holding = line.remove(at: index)
                line.insert(holding, at: 0)
            } else {
                // A Go client: its lock key heads the line. Its ordering number is the index at
                // which it took the key, so our later grants carry larger fencing tokens.
                line.insert(
                    Contender(
                        key: lockKey,
                        order: lockEntry.modifyRevision,
                        createRevision: lockEntry.createRevision,
                        modifyRevision: lockEntry.modifyRevision,
                        session: holder,
                        value: lockEntry.value
                    ),
                    at: 0
                )
            }
        }
        return Reading(contenders: line, lockHolder: holder, firstContender: first)
    }
}
