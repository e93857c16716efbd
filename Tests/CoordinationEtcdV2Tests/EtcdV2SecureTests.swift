import Coordination
import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Logging
import Testing

/// The two secured members `scripts/with-servers` starts for etcd v2, with the run's certificates
/// (ETCD_TLS_CA, ETCD_TLS_CERT, ETCD_TLS_KEY, ETCD_TLS_OTHER_CA):
/// - ETCD_V2_AUTH_ENDPOINT: the v2 keys API over HTTPS with v2 authentication on and the guest
///   role revoked (ETCD_V2_AUTH_USER / ETCD_V2_AUTH_PASSWORD, root);
/// - ETCD_TLS_ENDPOINTS: a member that requires client certificates, its v2 API on.
enum EtcdV2SecureServer {
    static func environment(_ name: String) -> String? {
        EtcdV2TestServer.environmentValue(name)
    }

    static var isAvailable: Bool {
        environment("ETCD_V2_AUTH_ENDPOINT") != nil && environment("ETCD_TLS_ENDPOINTS") != nil
    }

    static func file(_ variable: String) throws -> String {
        guard let value = environment(variable) else {
            throw ConformanceFailure("\(variable) is not set; run the tests with scripts/test")
        }
        return value
    }

    static func endpoint(_ variable: String) throws -> Endpoint {
        let text = try file(variable)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            throw ConformanceFailure("\(variable) is not host:port")
        }
        return Endpoint(host: String(text[..<colon]), port: port)
    }

    static func rootCredentials() throws -> (username: String, password: String) {
        (try file("ETCD_V2_AUTH_USER"), try file("ETCD_V2_AUTH_PASSWORD"))
    }

    /// A store of the auth member: the run's CA, and `credentials`.
    static func authStore(
        credentials: (username: String, password: String)?, ca: String = "ETCD_TLS_CA", timeout: Duration = .seconds(5)
    ) throws -> EtcdV2Store {
        try EtcdV2Store(
            configuration: .init(
                endpoint: try endpoint("ETCD_V2_AUTH_ENDPOINT"), requestTimeout: timeout, credentials: credentials,
                tls: TLSSettings(trustedCAFile: try file(ca)), logger: logger))
    }

    /// A store of the member that requires client certificates.
    static func mutualTLSStore(_ tls: TLSSettings, timeout: Duration = .seconds(5)) throws -> EtcdV2Store {
        try EtcdV2Store(
            configuration: .init(
                endpoint: try endpoint("ETCD_TLS_ENDPOINTS"), requestTimeout: timeout, tls: tls, logger: logger))
    }

    static func clientTLS(ca: String = "ETCD_TLS_CA") throws -> TLSSettings {
        TLSSettings(
            trustedCAFile: try file(ca), certificateFile: try file("ETCD_TLS_CERT"), keyFile: try file("ETCD_TLS_KEY"))
    }

    static var logger: Logger {
        var logger = Logger(label: "etcdv2-secure-tests")
        logger.logLevel = .warning
        return logger
    }
}

/// Conformance clients over HTTPS, logged in as root on the auth member.
struct EtcdV2SecureBackend: ConformanceBackend {
    let name = "etcdv2-https-auth"
    let sessionTTL: Duration = .seconds(2)
    let optOuts = EtcdV2Backend().optOuts

    func makeStore() throws -> any KeyValueStore {
        try EtcdV2SecureServer.authStore(credentials: EtcdV2SecureServer.rootCredentials())
    }
}

@Suite(
    "etcd v2 conformance over HTTPS with authentication",
    .serialized,
    .enabled(if: EtcdV2SecureServer.isAvailable, "needs ETCD_V2_AUTH_ENDPOINT and ETCD_TLS_ENDPOINTS (scripts/test)"))
struct EtcdV2SecureConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: EtcdV2SecureBackend())
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: EtcdV2SecureBackend())
    }
}

@Suite(
    "etcd v2 over TLS and with authentication",
    .enabled(if: EtcdV2SecureServer.isAvailable, "needs ETCD_V2_AUTH_ENDPOINT and ETCD_TLS_ENDPOINTS (scripts/test)"))
struct EtcdV2SecureTests {
    @Test("with the run's CA and a client certificate: keys, a session and a lock over the v2 API")
    func mutualTLS() async throws {
        let store = try EtcdV2SecureServer.mutualTLSStore(try EtcdV2SecureServer.clientTLS())
        try await store.withRunning { store in
            let base = try Key("v2tls/\(UInt64.random(in: 0...UInt64.max))")
            try await store.put(try base.appending("k"), Array("v".utf8))
            #expect(try await store.get(try base.appending("k"))?.value == Array("v".utf8))
            let session = try await store.makeSession(ttl: .seconds(5))
            let grant = try await Lock(try base.appending("lock"), session: session, store: store).acquire()
            try await grant.release()
            try await session.close()
            try await store.deleteTree(base)
        }
    }

    @Test("a member whose certificate a CA the client does not trust signed: connectionFailed naming TLS, at once")
    func untrustedServer() async throws {
        let store = try EtcdV2SecureServer.mutualTLSStore(
            try EtcdV2SecureServer.clientTLS(ca: "ETCD_TLS_OTHER_CA"), timeout: .seconds(20))
        try await store.withRunning { store in
            try await expectTLSRefusal { try await store.get(try Key("v2tls/x")) }
        }
    }

    @Test("no client certificate on a member that requires one: connectionFailed, at once")
    func missingClientCertificate() async throws {
        let store = try EtcdV2SecureServer.mutualTLSStore(
            TLSSettings(trustedCAFile: try EtcdV2SecureServer.file("ETCD_TLS_CA")), timeout: .seconds(20))
        try await store.withRunning { store in
            let clock = ContinuousClock()
            let started = clock.now
            _ = try await expectError(.connectionFailed) { try await store.put(try Key("v2tls/x"), [1]) }
            #expect(started.duration(to: clock.now) < .seconds(10))
        }
    }

    @Test("root's password is accepted; a wrong one and none are authenticationFailed, and no error shows a password")
    func credentials() async throws {
        let root = try EtcdV2SecureServer.rootCredentials()
        let key = try Key("v2auth/\(UInt64.random(in: 0...UInt64.max))")
        try await EtcdV2SecureServer.authStore(credentials: root).withRunning { store in
            try await store.put(key, [1])
            #expect(try await store.get(key)?.value == [1])
            try await store.delete(key)
        }
        let wrong = "wrong-\(UInt64.random(in: 0...UInt64.max))"
        try await EtcdV2SecureServer.authStore(credentials: (root.username, wrong)).withRunning { store in
            let failure = try await expectError(.authenticationFailed) { try await store.put(key, [1]) }
            #expect(!"\(failure)".contains(wrong))
            #expect(!"\(failure)".contains(root.password))
            _ = try await expectError(.authenticationFailed) { try await store.get(key) }
        }
        try await EtcdV2SecureServer.authStore(credentials: nil).withRunning { store in
            _ = try await expectError(.authenticationFailed) { try await store.get(key) }
        }
    }

    @Test("a connection string with user:password@ and ca= logs in over HTTPS")
    func connectionString() async throws {
        var registry = StoreRegistry()
        EtcdV2Store.register(in: &registry)
        let endpoint = try EtcdV2SecureServer.endpoint("ETCD_V2_AUTH_ENDPOINT")
        let root = try EtcdV2SecureServer.rootCredentials()
        let store = try registry.makeStore(
            "etcdv2://\(root.username):\(root.password)@\(endpoint)?ca=\(try EtcdV2SecureServer.file("ETCD_TLS_CA"))")
        try await store.withRunning { store in
            let key = try Key("v2auth/connection-string-\(UInt64.random(in: 0...UInt64.max))")
            try await store.put(key, [7])
            #expect(try await store.get(key)?.value == [7])
            try await store.delete(key)
        }
    }

    @Test("TLS files that cannot be used are invalidArgument when the store is made")
    func badFiles() throws {
        #expect(throws: CoordinationError.invalidArgument) {
            try EtcdV2SecureServer.mutualTLSStore(TLSSettings(trustedCAFile: "/nonexistent/ca.pem"))
        }
        #expect(throws: CoordinationError.invalidArgument) {
            try EtcdV2SecureServer.mutualTLSStore(TLSSettings(keyFile: try EtcdV2SecureServer.file("ETCD_TLS_KEY")))
        }
    }
}
