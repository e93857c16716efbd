import CoordinationCore
import Testing

@Suite("CoordinationError")
struct CoordinationErrorTests {
    @Test("errors compare equal on code alone")
    func equalityOnCode() {
        let a = CoordinationError(.keyExists, "one message", key: "a", backend: "etcd", endpoint: "h:1")
        let b = CoordinationError(.keyExists, "another message", key: "b", backend: "memory")
        let c = CoordinationError(.keyNotFound, "one message", key: "a", backend: "etcd", endpoint: "h:1")
        #expect(a == b)
        #expect(a == .keyExists)
        #expect(a != c)
        #expect(c == .keyNotFound)
        #expect(a.code == b.code)
        #expect(a.code != c.code)
    }

    @Test("the static members carry their own codes")
    func staticMembers() {
        let pairs: [(CoordinationError, CoordinationError.Code)] = [
            (.invalidKey, .invalidKey), (.valueTooLarge, .valueTooLarge), (.invalidArgument, .invalidArgument),
            (.keyNotFound, .keyNotFound), (.keyExists, .keyExists), (.revisionMismatch, .revisionMismatch),
            (.notADirectory, .notADirectory), (.isADirectory, .isADirectory), (.sessionExpired, .sessionExpired),
            (.sessionClosed, .sessionClosed), (.storeClosed, .storeClosed), (.connectionFailed, .connectionFailed),
            (.timeout, .timeout), (.unsupported, .unsupported), (.historyLost, .historyLost),
            (.lockLost, .lockLost), (.notHolder, .notHolder), (.cancelled, .cancelled),
        ]
        for (error, code) in pairs {
            #expect(error.code == code)
        }
        // Every static error is distinct from every other.
        for (i, lhs) in pairs.enumerated() {
            for (j, rhs) in pairs.enumerated() where i != j {
                #expect(lhs.0 != rhs.0)
            }
        }
    }

    @Test("codes are distinct and describe themselves by name")
    func codeDescriptions() {
        let codes: [CoordinationError.Code] = [
            .invalidKey, .valueTooLarge, .invalidArgument, .keyNotFound, .keyExists, .revisionMismatch,
            .notADirectory, .isADirectory, .sessionExpired, .sessionClosed, .storeClosed, .connectionFailed,
            .timeout, .authenticationFailed, .permissionDenied, .unsupported, .invalidConnectionString,
            .unknownScheme, .historyLost, .lockLost, .notHolder, .cancelled, .protocolError, .serverError,
        ]
        #expect(Set(codes).count == codes.count)
        #expect(Set(codes.map(\.description)).count == codes.count)
        #expect(CoordinationError.Code.keyExists.description == "keyExists")
        #expect(CoordinationError.Code.invalidConnectionString.description == "invalidConnectionString")
    }

    @Test("the description names the code, message, key, backend and endpoint")
    func descriptionNamesEverything() {
        let error = CoordinationError(
            .revisionMismatch,
            "compare-and-set failed",
            key: "locks/job",
            backend: "etcd",
            endpoint: "127.0.0.1:2379"
        )
        let text = error.description
        #expect(text.contains("revisionMismatch"))
        #expect(text.contains("compare-and-set failed"))
        #expect(text.contains("locks/job"))
        #expect(text.contains("etcd"))
        #expect(text.contains("127.0.0.1:2379"))
        #expect(String(describing: error) == text)
    }

    @Test("the description leaves out what is absent")
    func descriptionWithoutOptionalParts() {
        let error = CoordinationError(.timeout, "no answer")
        #expect(error.description.contains("timeout"))
        #expect(error.description.contains("no answer"))
        #expect(!error.description.contains("key"))
        #expect(!error.description.contains("backend"))
        #expect(!error.description.contains("endpoint"))
        #expect(error.key == nil)
        #expect(error.backend == nil)
        #expect(error.endpoint == nil)
        #expect(error.underlying == nil)
    }

    @Test("the error records where it was made")
    func sourceLocation() {
        let line = #line + 1
        let error = CoordinationError(.serverError, "boom")
        #expect(error.line == line)
        #expect(error.file.hasSuffix("CoordinationErrorTests.swift"))
    }

    @Test("an underlying error is kept")
    func underlying() {
        struct Cause: Error, Sendable {}
        let error = CoordinationError(.connectionFailed, "refused", underlying: Cause())
        #expect(error.underlying is Cause)
    }

    @Test("thrown errors can be matched by code with #expect(throws:)")
    func matchingWithExpectThrows() {
        #expect(throws: CoordinationError.keyExists) {
            throw CoordinationError(.keyExists, "create failed", key: "k", backend: "memory")
        }
    }
}
