/// Optional behaviour a backend declares, so that portable code and the conformance suite can ask
/// instead of guessing. A suite that needs a capability the backend lacks says so by name.
public struct StoreCapabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A key may hold a value and have children at the same time (all but etcd v2).
    public static let valuesOnInnerNodes = StoreCapabilities(rawValue: 1 << 0)
    /// Delete events say whether the key was deleted explicitly or expired with its session.
    public static let distinguishesExpiry = StoreCapabilities(rawValue: 1 << 1)
    /// A session can be revoked by another client holding only its id.
    public static let revokeForeignSession = StoreCapabilities(rawValue: 1 << 2)
}
