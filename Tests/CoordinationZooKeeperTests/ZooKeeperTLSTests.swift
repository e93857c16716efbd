import Coordination
import CoordinationCore
import CoordinationTestKit
import CoordinationZooKeeper
import NIOCore
import NIOPosix
import Testing

/// The TLS ports `scripts/with-servers` opens on the standalone server and on each ensemble member
/// (Netty's connection factory, client certificates required), with certificates made for the run:
/// ZOOKEEPER_TLS_CONNECT, ZOOKEEPER_ENSEMBLE_TLS_CONNECT, ZOOKEEPER_TLS_CA, ZOOKEEPER_TLS_CERT,
/// ZOOKEEPER_TLS_KEY, ZOOKEEPER_TLS_OTHER_CA.
enum ZooKeeperTLSServer {
    static var standalone: [Endpoint]? { ZooKeeperTestServer.endpoints("ZOOKEEPER_TLS_CONNECT") }
    static var ensemble: [Endpoint]? { ZooKeeperTestServer.endpoints("ZOOKEEPER_ENSEMBLE_TLS_CONNECT") }
    static var isAvailable: Bool { standalone != nil && ensemble != nil }

    static func file(_ variable: String) throws -> String {
        guard let value = ZooKeeperTestServer.environment(variable) else {
            throw ConformanceFailure("\(variable) is not set; run the tests with scripts/test")
        }
        return value
    }

    /// The index of the first of `members` that accepts a TCP connection.
    static func firstListening(_ members: [Endpoint]) async -> Int? {
        for (index, member) in members.enumerated() {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(1))
            if let channel = try? await bootstrap.connect(host: member.host, port: member.port).get() {
                try? await channel.close()
                return index
            }
        }
        return nil
    }

    static func clientTLS(ca: String = "ZOOKEEPER_TLS_CA") throws -> TLSSettings {
        TLSSettings(
            trustedCAFile: try file(ca), certificateFile: try file("ZOOKEEPER_TLS_CERT"),
            keyFile: try file("ZOOKEEPER_TLS_KEY"))
    }

    /// A store on the standalone server's TLS port (or `endpoints`), follower bound zero.
    static func store(
        _ tls: TLSSettings, endpoints: [Endpoint]? = standalone, connectTimeout: Duration = .seconds(5),
        credentials: (username: String, password: String)? = nil, followerBound: Duration = .zero
    ) throws -> ZooKeeperStore {
        var configuration = try ZooKeeperTestServer.configuration(endpoints, chroot: "/swift-coordination-tls")
        configuration.tls = tls
        configuration.connectTimeout = connectTimeout
        configuration.credentials = credentials
        configuration.followerBound = followerBound
        configuration.shuffleEndpoints = false
        return try ZooKeeperStore(configuration: configuration)
    }
}

/// Conformance clients over TLS against the standalone server.
struct ZooKeeperTLSBackend: ConformanceBackend {
    let name = "zookeeper-tls"
    let sessionTTL: Duration = .seconds(2)
    let optOuts = ZooKeeperBackend().optOuts

    func makeStore() throws -> any KeyValueStore { try ZooKeeperTLSServer.store(ZooKeeperTLSServer.clientTLS()) }
}

@Suite(
    "ZooKeeper conformance over TLS",
    .serialized,
    .enabled(if: ZooKeeperTLSServer.isAvailable, "needs ZOOKEEPER_TLS_CONNECT (scripts/test starts ZooKeeper)"))
struct ZooKeeperTLSConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ZooKeeperTLSBackend())
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ZooKeeperTLSBackend()) == .passed)
    }
}

@Suite(
    "ZooKeeper over TLS",
    .serialized,
    .enabled(if: ZooKeeperTLSServer.isAvailable, "needs ZOOKEEPER_TLS_CONNECT (scripts/test starts ZooKeeper)"))
struct ZooKeeperTLSTests {
    @Test("a server whose certificate a CA the client does not trust signed: connectionFailed naming TLS, at once")
    func untrustedServer() async throws {
        let store = try ZooKeeperTLSServer.store(
            try ZooKeeperTLSServer.clientTLS(ca: "ZOOKEEPER_TLS_OTHER_CA"), connectTimeout: .seconds(20))
        defer { Task { await store.close() } }
        // Refused by the handshake, not by the 20 s connect timeout.
        try await expectTLSRefusal { try await store.get(try Key("tls/x")) }
    }

    @Test("no client certificate on a server that requires one (ssl.clientAuth=need): connectionFailed")
    func missingClientCertificate() async throws {
        let store = try ZooKeeperTLSServer.store(
            TLSSettings(trustedCAFile: try ZooKeeperTLSServer.file("ZOOKEEPER_TLS_CA")), connectTimeout: .seconds(5))
        defer { Task { await store.close() } }
        _ = try await expectError(.connectionFailed) { try await store.put(try Key("tls/x"), "v") }
    }

    @Test(
        "digest over TLS: the owner's lock works; a plain client without the digest is refused, one with the same certificate is not (x509 identity)"
    )
    func digestOverTLS() async throws {
        let user = ("tls\(UInt32.random(in: 0 ... .max))", "pw-\(UInt64.random(in: 0 ... .max))")
        let chroot = "/swift-coordination-tls-\(user.0)"
        var configuration = try ZooKeeperTestServer.configuration(ZooKeeperTLSServer.standalone, chroot: chroot)
        configuration.tls = try ZooKeeperTLSServer.clientTLS()
        configuration.credentials = user
        let owner = try ZooKeeperStore(configuration: configuration)
        configuration.credentials = nil
        let sameCertificate = try ZooKeeperStore(configuration: configuration)
        let plain = try ZooKeeperStore(
            configuration: ZooKeeperTestServer.configuration(ZooKeeperTestServer.standalone, chroot: chroot))
        defer {
            Task {
                await owner.close()
                await sameCertificate.close()
                await plain.close()
            }
        }
        let key = try Key("tls-auth/value")
        try await owner.put(key, "secret")
        let session = try await owner.makeSession(ttl: .seconds(5))
        let grant = try await Lock(try Key("tls-auth/lock"), session: session, store: owner).acquire()
        try await grant.release()
        try await session.close()
        _ = try await expectError(.permissionDenied) { try await plain.get(key) }
        // ZooKeeper also authenticates a TLS connection as `x509:<certificate subject>`, and the
        // `auth` ACL grants every identity of the creator: the same certificate is the same client.
        #expect(try await sameCertificate.get(key)?.value == Array("secret".utf8))
        try await owner.deleteTree(try Key("tls-auth"))
    }

    @Test("ensemble over TLS: a held lock's session resumes on another member when its connection is cut")
    func ensembleResumesOverTLS() async throws {
        // Another suite may have stopped one member for good; the proxy fronts one that serves.
        var members = try #require(ZooKeeperTLSServer.ensemble)
        let live = try #require(await ZooKeeperTLSServer.firstListening(members), "no ensemble member listens")
        members.swapAt(0, live)
        let proxy = try await CuttingProxy.start(to: members[0])
        defer { Task { try? await proxy.close() } }
        // The first endpoint is the proxy in front of member 1; after the cut the session resumes
        // on member 2 (endpoints are tried in order).
        let endpoints = [Endpoint(host: "127.0.0.1", port: proxy.port)] + members.dropFirst()
        let store = try ZooKeeperTLSServer.store(
            try ZooKeeperTLSServer.clientTLS(), endpoints: endpoints,
            followerBound: ZooKeeperTestServer.ensembleFollowerBound)
        defer { Task { await store.close() } }
        let ttl = ZooKeeperTestServer.ensembleFollowerBound + .seconds(6)
        let session = try await store.makeSession(ttl: ttl)
        let name = try Key("tls-ensemble/lock-\(UInt32.random(in: 0 ... .max))")
        let key = try Key("tls-ensemble/value-\(UInt32.random(in: 0 ... .max))")
        try await store.put(key, "before")
        let grant = try await Lock(name, session: session, store: store).acquire()

        proxy.cutAll()
        #expect(proxy.cuts >= 1, "the proxy cut the client connections")
        let value = try await withDeadline(.seconds(20), "a read is answered on the resumed session") {
            try await store.get(key)
        }
        #expect(value?.value == Array("before".utf8))
        // The session moves to another member and is alive again there (it is `suspended` from
        // the cut until the first reply on the new connection); it never expires.
        try await withDeadline(.seconds(20), "the session resumed on another member") {
            while await store.endpoint(of: session) == endpoints[0] || session.state != .alive {
                if session.state == .expired || session.state == .closed {
                    throw ConformanceFailure("the session ended (\(session.state)) instead of resuming")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(!grant.isLost)
        try await grant.release()
        try await session.close()
        try await store.deleteTree(try Key("tls-ensemble"))
    }
}
