import Coordination
import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import Testing

/// The member with authentication on that `scripts/with-servers` starts: ETCD_AUTH_ENDPOINTS,
/// ETCD_AUTH_USER, ETCD_AUTH_PASSWORD.
enum EtcdAuthServer {
    static var endpoint: Endpoint? {
        guard let text = EtcdTestServer.environment("ETCD_AUTH_ENDPOINTS"), let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...])
        else { return nil }
        return Endpoint(host: String(text[..<colon]), port: port)
    }

    static var isAvailable: Bool { endpoint != nil }

    static func makeStore(password: String? = nil, user: String? = nil, anonymous: Bool = false) throws -> EtcdStore {
        guard let endpoint else {
            throw ConformanceFailure("ETCD_AUTH_ENDPOINTS is not set; run the tests with scripts/test")
        }
        var logger = Logger(label: "etcd-auth-tests")
        logger.logLevel = .warning
        let credentials: (username: String, password: String)? =
            anonymous
            ? nil
            : (
                user ?? EtcdTestServer.environment("ETCD_AUTH_USER") ?? "root",
                password ?? EtcdTestServer.environment("ETCD_AUTH_PASSWORD") ?? ""
            )
        return try EtcdStore(
            configuration: .init(
                endpoints: [endpoint], requestTimeout: .seconds(5), credentials: credentials, logger: logger))
    }
}

@Suite(
    "etcd authentication",
    .enabled(if: EtcdAuthServer.isAvailable, "needs ETCD_AUTH_ENDPOINTS (scripts/test starts it)"))
struct EtcdAuthTests {
    @Test("with the right password: keys, watches, sessions and a lock all work")
    func rightPassword() async throws {
        let store = try EtcdAuthServer.makeStore()
        try await store.withRunning { store in
            let base = try Key("auth/\(UInt64.random(in: 0...UInt64.max))")
            let key = try base.appending("k")
            try await EtcdTestServer.expectPutSeenOnWatch(store, key, Array("v".utf8))

            let session = try await store.makeSession(ttl: .seconds(5))
            let grant = try await Lock(try base.appending("lock"), session: session, store: store).acquire()
            // The session outlives a few keep-alive rounds (TTL/3) on the authenticated lease stream.
            try await Task.sleep(for: .seconds(4))
            #expect(session.isActive)
            try await grant.release()
            try await session.close()
            try await store.deleteTree(base)
        }
    }

    @Test("a wrong password is authenticationFailed, and prints no password")
    func wrongPassword() async throws {
        let store = try EtcdAuthServer.makeStore(password: "definitely-not-it")
        try await store.withRunning { store in
            let failure = try await expectError(.authenticationFailed) { try await store.get(try Key("auth/x")) }
            #expect(!failure.description.contains("definitely-not-it"))
            _ = try await expectError(.authenticationFailed) { try await store.watch(try Key("auth/x")) }
        }
    }

    @Test("no credentials on a member with authentication on: a typed refusal, and watches are refused too")
    func anonymous() async throws {
        let store = try EtcdAuthServer.makeStore(anonymous: true)
        try await store.withRunning { store in
            let failure = try await expectOneOf(.permissionDenied, .authenticationFailed) {
                try await store.put(try Key("auth/anonymous"), Array("v".utf8))
            }
            #expect(failure.backend == "etcd")
            _ = try await expectOneOf(.permissionDenied, .authenticationFailed) {
                try await store.watch(try Key("auth/anonymous"))
            }
        }
    }
}

/// Runs `body`, which must fail with one of `codes`; returns the error.
@discardableResult
func expectOneOf(
    _ codes: CoordinationError.Code...,
    in body: @Sendable () async throws -> some Sendable
) async throws -> CoordinationError {
    do {
        let value = try await body()
        throw ConformanceFailure("expected \(codes), got the value \(value)")
    } catch let error as CoordinationError {
        if !codes.contains(error.code) { throw ConformanceFailure("expected \(codes), got \(error)") }
        return error
    }
}
