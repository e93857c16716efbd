@_spi(Backend) import CoordinationCore

/// The `err` field of a reply (`KeeperException.Code` in ZooKeeper 3.8). Unknown values are kept,
/// so a newer server's code is reported rather than dropped.
struct ZooKeeperErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Error {
    let rawValue: Int32
    init(rawValue: Int32) { self.rawValue = rawValue }

    static let ok = Self(rawValue: 0)
    static let systemError = Self(rawValue: -1)
    static let runtimeInconsistency = Self(rawValue: -2)
    static let dataInconsistency = Self(rawValue: -3)
    static let connectionLoss = Self(rawValue: -4)
    static let marshallingError = Self(rawValue: -5)
    static let unimplemented = Self(rawValue: -6)
    static let operationTimeout = Self(rawValue: -7)
    static let badArguments = Self(rawValue: -8)
    static let unknownSession = Self(rawValue: -12)
    static let newConfigNoQuorum = Self(rawValue: -13)
    static let reconfigInProgress = Self(rawValue: -14)
    static let apiError = Self(rawValue: -100)
    static let noNode = Self(rawValue: -101)
    static let noAuth = Self(rawValue: -102)
    static let badVersion = Self(rawValue: -103)
    static let noChildrenForEphemerals = Self(rawValue: -108)
    static let nodeExists = Self(rawValue: -110)
    static let notEmpty = Self(rawValue: -111)
    static let sessionExpired = Self(rawValue: -112)
    static let invalidCallback = Self(rawValue: -113)
    static let invalidACL = Self(rawValue: -114)
    static let authFailed = Self(rawValue: -115)
    static let sessionMoved = Self(rawValue: -118)
    static let notReadOnly = Self(rawValue: -119)
    static let ephemeralOnLocalSession = Self(rawValue: -120)
    static let noWatcher = Self(rawValue: -121)
    static let requestTimeout = Self(rawValue: -122)
    static let reconfigDisabled = Self(rawValue: -123)
    static let sessionClosedRequireSASLAuth = Self(rawValue: -124)
    static let quotaExceeded = Self(rawValue: -125)
    static let throttled = Self(rawValue: -127)

    private static let names: [Int32: String] = [
        0: "ok", -1: "systemError", -2: "runtimeInconsistency", -3: "dataInconsistency",
        -4: "connectionLoss", -5: "marshallingError", -6: "unimplemented", -7: "operationTimeout",
        -8: "badArguments", -12: "unknownSession", -13: "newConfigNoQuorum", -14: "reconfigInProgress",
        -100: "apiError", -101: "noNode", -102: "noAuth", -103: "badVersion",
        -108: "noChildrenForEphemerals", -110: "nodeExists", -111: "notEmpty", -112: "sessionExpired",
        -113: "invalidCallback", -114: "invalidACL", -115: "authFailed", -118: "sessionMoved",
        -119: "notReadOnly", -120: "ephemeralOnLocalSession", -121: "noWatcher", -122: "requestTimeout",
        -123: "reconfigDisabled", -124: "sessionClosedRequireSASLAuth", -125: "quotaExceeded",
        -127: "throttled",
    ]

    var description: String { Self.names[rawValue].map { "\($0) (\(rawValue))" } ?? "error \(rawValue)" }

    /// The library-wide classification of this server error.
    var coordinationCode: CoordinationError.Code {
        switch self {
        case .noNode: .keyNotFound
        case .nodeExists: .keyExists
        case .badVersion: .revisionMismatch
        case .sessionExpired, .unknownSession: .sessionExpired
        case .connectionLoss, .sessionMoved, .operationTimeout, .requestTimeout: .connectionFailed
        case .noAuth: .permissionDenied
        case .authFailed, .sessionClosedRequireSASLAuth: .authenticationFailed
        case .badArguments, .invalidACL, .noChildrenForEphemerals, .notEmpty: .invalidArgument
        case .unimplemented: .unsupported
        case .marshallingError: .protocolError
        default: .serverError
        }
    }
}

/// A server's refusal of one request: its error code and the zxid in the reply header (the
/// server's last committed zxid when it answered, so a `noNode` also tells how recent it is).
struct ZooKeeperReplyError: Error, Hashable, Sendable, CustomStringConvertible {
    var code: ZooKeeperErrorCode
    var zxid: Int64
    var description: String { "\(code) at zxid \(zxid)" }
}

extension CoordinationError {
    /// The ZooKeeper error code behind this error, if a server refused a request.
    var zooKeeperCode: ZooKeeperErrorCode? { (underlying as? ZooKeeperReplyError)?.code }
    /// The zxid of the refusing reply, if a server refused a request.
    var zooKeeperZxid: Int64? { (underlying as? ZooKeeperReplyError)?.zxid }
}
