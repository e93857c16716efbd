import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Testing

/// The Consul agent that serves HTTPS only, requires client certificates and denies what no token
/// allows, started by `scripts/with-servers` with certificates made for the run: CONSUL_TLS_ADDR,
/// CONSUL_TLS_CA, CONSUL_TLS_CERT, CONSUL_TLS_KEY, CONSUL_TLS_OTHER_CA, CONSUL_TLS_TOKEN.
enum ConsulTLSServer {
    static var address: (host: String, port: Int)? {
        guard let text = ConsulTestServer.environment("CONSUL_TLS_ADDR"), let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...])
        else { return nil }
        return (String(text[..<colon]), port)
    }

    static var isAvailable: Bool { address != nil }

    static func file(_ variable: String) throws -> String {
        guard let path = ConsulTestServer.environment(variable) else {
            throw ConformanceFailure("\(variable) is not set; run the tests with scripts/test")
        }
        return path
    }

    /// The run's CA and the client certificate: what the agent accepts.
    static func clientTLS(ca: String = "CONSUL_TLS_CA", serverName: String? = nil) throws -> TLSSettings {
        TLSSettings(
            trustedCAFile: try file(ca), certificateFile: try file("CONSUL_TLS_CERT"),
            keyFile: try file("CONSUL_TLS_KEY"),
            serverName: serverName)
    }

    static func token() throws -> String { try file("CONSUL_TLS_TOKEN") }

    /// The suites' settings (``ConsulTestServer/configuration(namespace:)``) on the TLS agent.
    static func configuration(
        _ tls: TLSSettings?, token: String?, namespace: String = "", timeout: Duration = .seconds(5)
    ) throws -> ConsulStore.Configuration {
        guard let address else {
            throw ConformanceFailure("CONSUL_TLS_ADDR is not set; run the tests with scripts/test")
        }
        var configuration = try ConsulTestServer.configuration(namespace: namespace)
        configuration.endpoint = Endpoint(host: address.host, port: address.port)
        configuration.token = token
        configuration.tls = tls
        configuration.requestTimeout = timeout
        return configuration
    }

    static func makeStore(_ tls: TLSSettings?, token: String?, timeout: Duration = .seconds(5)) throws -> ConsulStore {
        try ConsulStore(configuration: configuration(tls, token: token, timeout: timeout))
    }

    /// The whole connection string of the agent with the run's certificates and `token`.
    static func connectionString(scheme: String = "consul", token: String) throws -> String {
        guard let address else {
            throw ConformanceFailure("CONSUL_TLS_ADDR is not set; run the tests with scripts/test")
        }
        return
            "\(scheme)://\(address.host):\(address.port)?ca=\(try file("CONSUL_TLS_CA"))&cert=\(try file("CONSUL_TLS_CERT"))"
            + "&key=\(try file("CONSUL_TLS_KEY"))&token=\(token)&lock-delay=0s&ttl-min=1s"
    }
}

/// Conformance clients over HTTPS with a client certificate and the management token.
struct ConsulTLSBackend: ConformanceBackend {
    let name = "consul-tls"
    let sessionTTL: Duration = .seconds(2)
    /// The plain agent's opt-out.
    let optOuts = ConsulBackend().optOuts

    var peerConnectionString: String? { try? ConsulTLSServer.connectionString(token: ConsulTLSServer.token()) }

    func makeStore() throws -> any KeyValueStore {
        try ConsulTLSServer.makeStore(ConsulTLSServer.clientTLS(), token: ConsulTLSServer.token())
    }
}

@Suite(
    "consul conformance over TLS",
    .serialized,
    .enabled(if: ConsulTLSServer.isAvailable, "needs CONSUL_TLS_ADDR (scripts/test starts the TLS agent)"))
struct ConsulTLSConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ConsulTLSBackend())
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ConsulTLSBackend()) == .passed)
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ConsulTLSBackend()) == .passed)
    }
}

@Suite(
    "consul over TLS",
    .enabled(if: ConsulTLSServer.isAvailable, "needs CONSUL_TLS_ADDR (scripts/test starts the TLS agent)"))
struct ConsulTLSTests {
    @Test("a server whose certificate a CA the client does not trust signed: connectionFailed naming TLS, at once")
    func untrustedServer() async throws {
        let store = try ConsulTLSServer.makeStore(
            try ConsulTLSServer.clientTLS(ca: "CONSUL_TLS_OTHER_CA"), token: try ConsulTLSServer.token(),
            timeout: .seconds(20))
        try await store.withRunning { store in
            // Refused by the handshake, not by the 20 s deadline.
            try await expectTLSRefusal { try await store.get(try Key("tls/x")) }
        }
    }

    @Test("no client certificate on an agent that requires one (verify_incoming): connectionFailed, at once")
    func missingClientCertificate() async throws {
        let store = try ConsulTLSServer.makeStore(
            TLSSettings(trustedCAFile: try ConsulTLSServer.file("CONSUL_TLS_CA")), token: try ConsulTLSServer.token(),
            timeout: .seconds(20))
        try await store.withRunning { store in
            let clock = ContinuousClock()
            let started = clock.now
            _ = try await expectError(.connectionFailed) { try await store.put(try Key("tls/x"), [1]) }
            #expect(started.duration(to: clock.now) < .seconds(10))
        }
    }

    @Test("a wrong ACL token over TLS: authenticationFailed, and the token is in no error")
    func wrongToken() async throws {
        let wrong = "not-a-token-\(UInt64.random(in: 0...UInt64.max))"
        let store = try ConsulTLSServer.makeStore(try ConsulTLSServer.clientTLS(), token: wrong)
        try await store.withRunning { store in
            let failure = try await expectError(.authenticationFailed) { try await store.put(try Key("tls/x"), [1]) }
            #expect(!"\(failure)".contains(wrong))
        }
        // Without a token the agent's default policy denies: permissionDenied, not a login failure.
        let anonymous = try ConsulTLSServer.makeStore(try ConsulTLSServer.clientTLS(), token: nil)
        try await anonymous.withRunning { store in
            _ = try await expectError(.permissionDenied) { try await store.put(try Key("tls/x"), [1]) }
        }
    }

    @Test("servername: the URL and SNI carry the name, the connection goes to the endpoint's address")
    func serverName() async throws {
        // The agent's certificate names `localhost` and 127.0.0.1. (swift-nio-ssl also accepts a
        // certificate whose IP entries hold the address connected to, whatever the name, so a
        // mismatched name cannot be shown to fail against this certificate.)
        let named = try ConsulTLSServer.makeStore(
            try ConsulTLSServer.clientTLS(serverName: "localhost"), token: try ConsulTLSServer.token())
        try await named.withRunning { store in
            let key = try Key("tls/servername-\(UInt64.random(in: 0...UInt64.max))")
            try await store.put(key, [3])
            #expect(try await store.get(key)?.value == [3])
            try await store.delete(key)
        }
    }

    @Test("the tests-only switch accepts an agent no trusted CA signed (and only it does)")
    func insecureSwitch() async throws {
        var tls = try ConsulTLSServer.clientTLS(ca: "CONSUL_TLS_OTHER_CA")
        tls.insecureSkipServerVerificationForTestsOnly = true
        let store = try ConsulTLSServer.makeStore(tls, token: try ConsulTLSServer.token())
        try await store.withRunning { store in
            _ = try await store.get(try Key("tls/x"))
        }
    }

    @Test("TLS files that cannot be used are invalidArgument when the store is made")
    func badFiles() throws {
        #expect(throws: CoordinationError.invalidArgument) {
            try ConsulTLSServer.makeStore(TLSSettings(trustedCAFile: "/nonexistent/ca.pem"), token: nil)
        }
        #expect(throws: CoordinationError.invalidArgument) {
            try ConsulTLSServer.makeStore(
                TLSSettings(certificateFile: try ConsulTLSServer.file("CONSUL_TLS_CERT")), token: nil)
        }
        #expect(throws: CoordinationError.invalidArgument) {
            try ConsulTLSServer.makeStore(
                TLSSettings(trustedCAFile: try ConsulTLSServer.file("CONSUL_TLS_KEY")), token: nil)
        }
    }

    @Test("connection strings: consul:// with ca, cert and key, and consuls://, connect over HTTPS; a lock works")
    func connectionStrings() async throws {
        var registry = StoreRegistry()
        ConsulStore.register(in: &registry)
        let token = try ConsulTLSServer.token()
        for scheme in ["consul", "consuls"] {
            let store = try registry.makeStore(try ConsulTLSServer.connectionString(scheme: scheme, token: token))
            try await store.withRunning { store in
                let base = try Key("tls/\(scheme)-\(UInt64.random(in: 0...UInt64.max))")
                let session = try await store.makeSession(ttl: .seconds(2))
                let grant = try await Lock(try base.appending("lock"), session: session, store: store).acquire()
                try await grant.release()
                try await session.close()
                try await store.deleteTree(base)
            }
        }
        let address = try #require(ConsulTLSServer.address)
        // consuls:// without ca= trusts the system's CAs, which did not sign the run's agent.
        let system = try registry.makeStore("consuls://\(address.host):\(address.port)?token=\(token)&timeout=20s")
        try await system.withRunning { store in
            try await expectTLSRefusal { try await store.get(try Key("tls/x")) }
        }
        let refused = #expect(throws: CoordinationError.self) {
            try registry.makeStore("consuls://\(address.host):\(address.port)?tls=false")
        }
        #expect(refused?.code == .invalidConnectionString)
    }
}
