import Synchronization

/// A value that a benchmark's setup hook makes and its iterations use (package-benchmark's hooks
/// return nothing, so the value is handed over through this slot).
public final class SetupValue<Value: Sendable>: Sendable {
    private let storage = Mutex<Value?>(nil)

    public init() {}

    /// The value set by the setup hook.
    public var value: Value {
        storage.withLock { value in
            guard let value else { preconditionFailure("SetupValue read before the setup hook ran") }
            return value
        }
    }

    /// Sets (or, with `nil`, clears) the value.
    public func set(_ newValue: Value?) {
        storage.withLock { $0 = newValue }
    }
}
