@_spi(Backend) import CoordinationCore
import Testing

@testable import CoordinationConsul

@Suite("consul blocking-query view")
struct BlockingViewTests {
    func entry(_ path: String, _ value: String, create: UInt64, modify: UInt64, session: String? = nil) -> Entry {
        Entry(
            key: try! Key(path), value: Array(value.utf8), createRevision: Revision(create),
            modifyRevision: Revision(modify), session: session.map(SessionID.init))
    }

    @Test("same index: a wait that timed out, nothing changed")
    func sameIndex() {
        var view = BlockingView(index: 10, entries: [entry("a", "1", create: 5, modify: 10)])
        #expect(view.apply(index: 10, entries: [entry("a", "1", create: 5, modify: 10)]).isEmpty)
    }

    @Test("index 0 is treated as 1")
    func zeroIndex() {
        let view = BlockingView(index: 0, entries: [])
        #expect(view.index == 1)
        #expect(BlockingView(index: nil, entries: []).index == 1)
    }

    @Test("creates, changes and deletes in index order; deletions at the answer's index")
    func diff() {
        var view = BlockingView(
            index: 10, entries: [entry("d/a", "1", create: 5, modify: 5), entry("d/b", "1", create: 6, modify: 6)])
        let events = view.apply(
            index: 14, entries: [entry("d/b", "2", create: 6, modify: 13), entry("d/c", "1", create: 12, modify: 12)])
        #expect(
            events == [
                .put(entry("d/c", "1", create: 12, modify: 12)),
                .put(entry("d/b", "2", create: 6, modify: 13)),
                .deleted(Deletion(key: try! Key("d/a"), revision: Revision(14), reason: .unspecified)),
            ])
        #expect(view.index == 14)
    }

    @Test("a key deleted and created again gives a delete, then a put")
    func recreated() {
        var view = BlockingView(index: 10, entries: [entry("k", "1", create: 5, modify: 5)])
        let events = view.apply(index: 20, entries: [entry("k", "2", create: 18, modify: 18)])
        #expect(
            events == [
                .deleted(Deletion(key: try! Key("k"), revision: Revision(18), reason: .unspecified)),
                .put(entry("k", "2", create: 18, modify: 18)),
            ])
    }

    @Test("a session released from a key is a change")
    func released() {
        var view = BlockingView(index: 10, entries: [entry("l/.lock", "", create: 5, modify: 9, session: "s")])
        let events = view.apply(index: 11, entries: [entry("l/.lock", "", create: 5, modify: 11)])
        #expect(events == [.put(entry("l/.lock", "", create: 5, modify: 11))])
    }

    @Test("an index that goes backwards resets the view: a snapshot with historyLost")
    func backwards() {
        var view = BlockingView(index: 100, entries: [entry("k", "1", create: 5, modify: 90)])
        let events = view.apply(index: 40, entries: [entry("k", "0", create: 5, modify: 30)])
        #expect(
            events == [
                .snapshot(
                    WatchSnapshot(
                        entries: [entry("k", "0", create: 5, modify: 30)], revision: Revision(40), historyLost: true))
            ])
        #expect(view.index == 40)
    }
}
