/// The one error type of swift-coordination.
///
/// Every failure a store, a session or a recipe reports is a `CoordinationError`. Match on ``code``
/// (stable across releases and across backends: the same mistake gives the same code on every
/// backend); read ``message`` for a human explanation that names the key, the backend and the
/// endpoint involved. Credentials never appear in a message.
///
/// Two errors compare equal when their codes are equal, so `#expect(throws: CoordinationError.keyExists)`
/// style checks work regardless of the message.
public struct CoordinationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, backend-independent classification of a failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable {
            case invalidKey
            case valueTooLarge
            case invalidArgument
            case keyNotFound
            case keyExists
            case revisionMismatch
            case notADirectory
            case isADirectory
            case sessionExpired
            case sessionClosed
            case storeClosed
            case connectionFailed
            case timeout
            case authenticationFailed
            case permissionDenied
            case unsupported
            case invalidConnectionString
            case unknownScheme
            case historyLost
            case lockLost
            case notHolder
            case cancelled
            case protocolError
            case serverError
        }

        fileprivate let base: Base

        /// The key is not a valid path under the one rule set of ``Key``.
        public static let invalidKey = Code(base: .invalidKey)
        /// The value is larger than the store's ``StoreLimits/maxValueSize``.
        public static let valueTooLarge = Code(base: .valueTooLarge)
        /// An argument other than a key or value is out of range (for example a session TTL).
        public static let invalidArgument = Code(base: .invalidArgument)
        /// A conditional operation expected a key that does not exist.
        public static let keyNotFound = Code(base: .keyNotFound)
        /// A create-if-absent found the key already present.
        public static let keyExists = Code(base: .keyExists)
        /// A compare-and-set or compare-and-delete found another revision than the expected one.
        public static let revisionMismatch = Code(base: .revisionMismatch)
        /// A backend with directories (etcd v2) was asked to treat a plain key as a directory.
        public static let notADirectory = Code(base: .notADirectory)
        /// A backend with directories (etcd v2) was asked to put a value on a directory.
        public static let isADirectory = Code(base: .isADirectory)
        /// The session has expired; keys bound to it are gone.
        public static let sessionExpired = Code(base: .sessionExpired)
        /// The session was closed by its owner.
        public static let sessionClosed = Code(base: .sessionClosed)
        /// The store was closed; no further calls are accepted.
        public static let storeClosed = Code(base: .storeClosed)
        /// No endpoint could be reached, or the connection broke mid-call.
        public static let connectionFailed = Code(base: .connectionFailed)
        /// A call did not complete before its deadline.
        public static let timeout = Code(base: .timeout)
        /// The server rejected the credentials.
        public static let authenticationFailed = Code(base: .authenticationFailed)
        /// The credentials are valid but lack a permission.
        public static let permissionDenied = Code(base: .permissionDenied)
        /// The backend does not offer this operation or option.
        public static let unsupported = Code(base: .unsupported)
        /// A connection string could not be parsed.
        public static let invalidConnectionString = Code(base: .invalidConnectionString)
        /// No backend is registered for a connection string's scheme.
        public static let unknownScheme = Code(base: .unknownScheme)
        /// A watch could not resume from its last revision (compaction, index cleared).
        public static let historyLost = Code(base: .historyLost)
        /// A lock, permit or leadership was lost while held (session expired or key removed).
        public static let lockLost = Code(base: .lockLost)
        /// A release was attempted by a client that does not hold the lock.
        public static let notHolder = Code(base: .notHolder)
        /// The waiting task was cancelled; whatever it had queued was removed.
        public static let cancelled = Code(base: .cancelled)
        /// The server answered something this client cannot understand.
        public static let protocolError = Code(base: .protocolError)
        /// The server reported a failure this library has no more specific code for.
        public static let serverError = Code(base: .serverError)

        public var description: String { base.rawValue }
    }

    /// The stable classification of this failure.
    public let code: Code
    /// A readable explanation naming what was involved.
    public let message: String
    /// The key involved, if any.
    public let key: String?
    /// The backend that reported it (`memory`, `etcd`, `zookeeper`, `consul`, `etcdv2`), if any.
    public let backend: String?
    /// The endpoint involved, without credentials, if any.
    public let endpoint: String?
    /// A lower-level error that caused this one, if any (never shown with credentials).
    public let underlying: (any Error & Sendable)?
    public let file: String
    public let line: Int

    public init(
        _ code: Code,
        _ message: String,
        key: String? = nil,
        backend: String? = nil,
        endpoint: String? = nil,
        underlying: (any Error & Sendable)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.key = key
        self.backend = backend
        self.endpoint = endpoint
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public static func == (lhs: CoordinationError, rhs: CoordinationError) -> Bool {
        lhs.code == rhs.code
    }

    public var description: String {
        var parts = ["CoordinationError.\(code): \(message)"]
        if let key { parts.append("key '\(key)'") }
        if let backend { parts.append("backend \(backend)") }
        if let endpoint { parts.append("endpoint \(endpoint)") }
        return parts.joined(separator: "; ")
    }

    /// A copy with the backend and endpoint filled in where they were missing.
    package func attributed(backend: String, endpoint: String?) -> CoordinationError {
        CoordinationError(
            code,
            message,
            key: key,
            backend: self.backend ?? backend,
            endpoint: self.endpoint ?? endpoint,
            underlying: underlying,
            file: file,
            line: line
        )
    }
}

extension CoordinationError {
    // Static members so that `#expect(throws: CoordinationError.keyExists)` reads naturally.
    public static let invalidKey = CoordinationError(.invalidKey, "invalid key")
    public static let valueTooLarge = CoordinationError(.valueTooLarge, "value too large")
    public static let invalidArgument = CoordinationError(.invalidArgument, "invalid argument")
    public static let keyNotFound = CoordinationError(.keyNotFound, "key not found")
    public static let keyExists = CoordinationError(.keyExists, "key exists")
    public static let revisionMismatch = CoordinationError(.revisionMismatch, "revision mismatch")
    public static let notADirectory = CoordinationError(.notADirectory, "not a directory")
    public static let isADirectory = CoordinationError(.isADirectory, "is a directory")
    public static let sessionExpired = CoordinationError(.sessionExpired, "session expired")
    public static let sessionClosed = CoordinationError(.sessionClosed, "session closed")
    public static let storeClosed = CoordinationError(.storeClosed, "store closed")
    public static let connectionFailed = CoordinationError(.connectionFailed, "connection failed")
    public static let timeout = CoordinationError(.timeout, "timeout")
    public static let unsupported = CoordinationError(.unsupported, "unsupported")
    public static let historyLost = CoordinationError(.historyLost, "history lost")
    public static let lockLost = CoordinationError(.lockLost, "lock lost")
    public static let notHolder = CoordinationError(.notHolder, "not holder")
    public static let cancelled = CoordinationError(.cancelled, "cancelled")
}
