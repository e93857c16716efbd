import Coordination
import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import Testing

/// The member that serves clients over TLS and requires client certificates, started by
/// `scripts/with-servers` with certificates made for the run: ETCD_TLS_ENDPOINTS, ETCD_TLS_CA,
/// ETCD_TLS_CERT, ETCD_TLS_KEY, ETCD_TLS_OTHER_CA.
enum EtcdTLSServer {
    static var endpoint: String? { EtcdTestServer.environment("ETCD_TLS_ENDPOINTS") }
    static var isAvailable: Bool { endpoint != nil }
    static func file(_ variable: String) throws -> String {
        guard let path = EtcdTestServer.environment(variable) else {
            throw ConformanceFailure("\(variable) is not set; run the tests with scripts/test")
        }
        return path
    }

    static func makeStore(_ tls: TLSSettings, timeout: Duration = .seconds(5)) throws -> EtcdStore {
        guard let endpoint, let colon = endpoint.lastIndex(of: ":"),
            let port = Int(endpoint[endpoint.index(after: colon)...])
        else { throw ConformanceFailure("ETCD_TLS_ENDPOINTS is not set; run the tests with scripts/test") }
        var logger = Logger(label: "etcd-tls-tests")
        logger.logLevel = .critical
        return try EtcdStore(
            configuration: .init(
                endpoints: [Endpoint(host: String(endpoint[..<colon]), port: port)], requestTimeout: timeout, tls: tls,
                logger: logger))
    }

    static func clientTLS(ca: String = "ETCD_TLS_CA") throws -> TLSSettings {
        TLSSettings(
            trustedCAFile: try file(ca), certificateFile: try file("ETCD_TLS_CERT"), keyFile: try file("ETCD_TLS_KEY"))
    }
}

@Suite("etcd over TLS", .enabled(if: EtcdTLSServer.isAvailable, "needs ETCD_TLS_ENDPOINTS (scripts/test starts it)"))
struct EtcdTLSTests {
    @Test("with the run's CA and a client certificate: keys, a watch, a session and a lock all work")
    func mutualTLS() async throws {
        let store = try EtcdTLSServer.makeStore(try EtcdTLSServer.clientTLS())
        try await store.withRunning { store in
            let base = try Key("tls/\(UInt64.random(in: 0...UInt64.max))")
            let key = try base.appending("k")
            try await EtcdTestServer.expectPutSeenOnWatch(store, key, Array("v".utf8))
            #expect(try await store.get(key)?.value == Array("v".utf8))
            let session = try await store.makeSession(ttl: .seconds(5))
            let grant = try await Lock(try base.appending("lock"), session: session, store: store).acquire()
            try await grant.release()
            try await session.close()
            try await store.deleteTree(base)
        }
    }

    @Test("a server whose certificate a CA the client does not trust signed: connectionFailed naming TLS, at once")
    func untrustedServer() async throws {
        let store = try EtcdTLSServer.makeStore(
            try EtcdTLSServer.clientTLS(ca: "ETCD_TLS_OTHER_CA"), timeout: .seconds(20))
        try await store.withRunning { store in
            // Refused by the handshake, not by the 20 s deadline.
            try await expectTLSRefusal(within: .seconds(15)) { try await store.get(try Key("tls/x")) }
        }
    }

    @Test("no client certificate on a member that requires one: connectionFailed")
    func missingClientCertificate() async throws {
        let store = try EtcdTLSServer.makeStore(
            TLSSettings(trustedCAFile: try EtcdTLSServer.file("ETCD_TLS_CA")), timeout: .seconds(20))
        try await store.withRunning { store in
            _ = try await expectError(.connectionFailed) { try await store.put(try Key("tls/x"), [1]) }
        }
    }

    @Test("the tests-only switch accepts a member no trusted CA signed (and only it does)")
    func insecureSwitch() async throws {
        var tls = try EtcdTLSServer.clientTLS(ca: "ETCD_TLS_OTHER_CA")
        tls.insecureSkipServerVerificationForTestsOnly = true
        let store = try EtcdTLSServer.makeStore(tls)
        try await store.withRunning { store in
            _ = try await store.get(try Key("tls/x"))
        }
    }

    @Test("TLS files that cannot be used are invalidArgument when the store is made")
    func badFiles() throws {
        #expect(throws: CoordinationError.invalidArgument) {
            try EtcdTLSServer.makeStore(TLSSettings(trustedCAFile: "/nonexistent/ca.pem"))
        }
        #expect(throws: CoordinationError.invalidArgument) {
            try EtcdTLSServer.makeStore(TLSSettings(certificateFile: try EtcdTLSServer.file("ETCD_TLS_CERT")))
        }
        // A key file given as the CA: no certificate in it.
        #expect(throws: CoordinationError.invalidArgument) {
            try EtcdTLSServer.makeStore(TLSSettings(trustedCAFile: try EtcdTLSServer.file("ETCD_TLS_KEY")))
        }
    }

    @Test("a connection string with ca, cert and key connects over TLS")
    func connectionString() async throws {
        var registry = StoreRegistry()
        EtcdStore.register(in: &registry)
        let endpoint = try #require(EtcdTLSServer.endpoint)
        let store = try registry.makeStore(
            "etcd://\(endpoint)?ca=\(try EtcdTLSServer.file("ETCD_TLS_CA"))&cert=\(try EtcdTLSServer.file("ETCD_TLS_CERT"))"
                + "&key=\(try EtcdTLSServer.file("ETCD_TLS_KEY"))")
        try await store.withRunning { store in
            let key = try Key("tls/connection-string-\(UInt64.random(in: 0...UInt64.max))")
            try await store.put(key, [7])
            #expect(try await store.get(key)?.value == [7])
            try await store.delete(key)
        }
        let refused = #expect(throws: CoordinationError.self) { try registry.makeStore("etcd://\(endpoint)?tls=maybe") }
        #expect(refused?.code == .invalidConnectionString)
    }
}
