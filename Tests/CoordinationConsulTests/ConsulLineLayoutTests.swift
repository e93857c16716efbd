@_spi(Backend) import CoordinationCore
import Testing

@testable import CoordinationConsul

@Suite("consul contender line")
struct ContenderLineTests {
    let prefix = try! Key("locks/job")

    func entry(_ name: String, create: UInt64, modify: UInt64? = nil, session: String?) -> Entry {
        Entry(
            key: try! prefix.appending(name), value: Array(name.utf8), createRevision: Revision(create),
            modifyRevision: Revision(modify ?? create), session: session.map(SessionID.init))
    }

    @Test("contenders by CreateIndex; unbound and deeper keys are not contenders")
    func ordering() {
        let reading = ConsulLineLayout.read(
            prefix: prefix,
            entries: [
                entry("s2", create: 20, session: "s2"), entry("s1", create: 10, session: "s1"),
                entry("plain", create: 5, session: nil),
                Entry(
                    key: try! Key("locks/job/s1/deep"), value: [], createRevision: Revision(1),
                    modifyRevision: Revision(1), session: SessionID("x")),
            ])
        #expect(reading.contenders.map(\.key.name) == ["s1", "s2"])
        #expect(reading.lockHolder == nil)
        #expect(reading.firstContender?.key.name == "s1")
    }

    @Test("a Go client holding .lock heads the line as a contender of its session")
    func foreignHolder() {
        let reading = ConsulLineLayout.read(
            prefix: prefix,
            entries: [entry("s1", create: 30, session: "s1"), entry(".lock", create: 8, modify: 25, session: "go")])
        #expect(reading.contenders.map(\.key.name) == [".lock", "s1"])
        #expect(reading.contenders.first?.session == SessionID("go"))
        #expect(reading.contenders.first?.order == Revision(25))
        #expect(reading.firstContender?.key.name == "s1")
    }

    @Test("our holder of .lock stands at the head; a released .lock is ignored")
    func ownHolder() {
        let held = ConsulLineLayout.read(
            prefix: prefix,
            entries: [
                entry("s1", create: 10, session: "s1"), entry("s2", create: 12, session: "s2"),
                entry(".lock", create: 11, session: "s2"),
            ])
        #expect(held.contenders.map(\.key.name) == ["s2", "s1"])
        let released = ConsulLineLayout.read(
            prefix: prefix, entries: [entry("s1", create: 10, session: "s1"), entry(".lock", create: 11, session: nil)])
        #expect(released.contenders.map(\.key.name) == ["s1"])
        #expect(released.lockHolder == nil)
    }

    @Test("api.Lock's flag value")
    func flags() {
        #expect(ConsulLineLayout.lockFlags == 3_304_740_253_564_472_344)
    }
}

@Suite("consul wire")
struct ConsulWireTests {
    @Test("KV entries decode with base64 values, null values and sessions")
    func kvPair() throws {
        let body = Array(
            #"[{"LockIndex":1,"Key":"ns/a/b","Flags":0,"Value":"aGk=","Session":"x","CreateIndex":3,"ModifyIndex":4},{"Key":"ns/e","CreateIndex":5,"ModifyIndex":5,"Value":null},{"Key":"other/x","CreateIndex":1,"ModifyIndex":1},{"Key":"ns/bad//key","CreateIndex":1,"ModifyIndex":1}]"#
                .utf8)
        let pairs = try #require(ConsulWire.decode([ConsulWire.KVPair].self, body))
        let space = ConsulKeySpace(namespace: "ns")
        let entries = pairs.compactMap(space.entry)
        #expect(entries.map(\.key.path) == ["a/b", "e"])
        #expect(entries[0].value == Array("hi".utf8))
        #expect(entries[0].session == SessionID("x"))
        #expect(entries[1].value == [])
        #expect(space.consulKey(try Key("a/b")) == "ns/a/b")
    }

    @Test("durations in Consul's syntax")
    func durations() {
        #expect(Duration.seconds(10).consulText == "10s")
        #expect(Duration.milliseconds(1500).consulText == "1500ms")
        #expect(Duration.zero.consulText == "0s")
        #expect(ConnectionString.parseDuration("250ms") == .milliseconds(250))
        #expect(ConnectionString.parseDuration("2m") == .seconds(120))
        #expect(ConnectionString.parseDuration("soon") == nil)
    }
}
