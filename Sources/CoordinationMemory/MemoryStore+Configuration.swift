@_spi(Backend) import CoordinationCore
import Logging

extension MemoryStore {
    public struct Configuration: Sendable {
        public var limits: StoreLimits
        public var clock: any MemoryClock
        public var logger: Logger

        public init(
            maxValueSize: Int = 512 * 1024,
            minimumSessionTTL: Duration = .milliseconds(10),
            maximumSessionTTL: Duration = .seconds(7 * 24 * 3600),
            clock: any MemoryClock = ContinuousMemoryClock(),
            logger: Logger = Logger(label: "swift-coordination.memory")
        ) {
            self.limits = StoreLimits(
                maxValueSize: maxValueSize,
                minimumSessionTTL: minimumSessionTTL,
                maximumSessionTTL: maximumSessionTTL
            )
            self.clock = clock
            self.logger = logger
        }
    }

    /// Adds the `memory://` scheme to `registry`. `memory://NAME` names the store; the query may
    /// set `maxValueSize` (bytes).
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "memory") { (connection, configuration) throws(CoordinationError) in
            let options = try ConnectionOptions(connection, backend: "memory", known: ["maxValueSize"])
            try options.refuseCredentials()
            var settings = Configuration(logger: configuration.logger)
            if let size = try options.positiveInteger("maxValueSize") { settings.limits.maxValueSize = size }
            return MemoryStore(configuration: settings, name: connection.addresses.first?.host)
        }
    }
}
