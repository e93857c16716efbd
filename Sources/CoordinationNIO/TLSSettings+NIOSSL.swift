@_spi(Backend) import CoordinationCore
import Logging
import NIOCore
import NIOSSL

extension TLSSettings {
    /// The swift-nio-ssl client configuration of these settings, with the PEM files read now: TLS
    /// 1.2 or later, the server's certificate verified (chain and name or IP address) unless the
    /// tests-only switch is on. A file that cannot be read or holds no certificate or key, or a
    /// certificate without its key, is `invalidArgument` of `store`. With the tests-only switch on,
    /// `logger` gets a warning.
    @_spi(Backend) public func clientConfiguration(
        applicationProtocols: [String] = [],
        store: StoreDescription,
        logger: Logger
    ) throws(CoordinationError) -> TLSConfiguration {
        if insecureSkipServerVerificationForTestsOnly {
            logger.warning(
                "TLS server verification is OFF (insecureSkipServerVerificationForTestsOnly): anyone on the path can read and change this store's traffic",
                metadata: ["store": "\(store)"])
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = insecureSkipServerVerificationForTestsOnly ? .none : .fullVerification
        configuration.applicationProtocols = applicationProtocols
        func load<T>(_ what: String, _ path: String, _ body: () throws -> T) throws(CoordinationError) -> T {
            do {
                return try body()
            } catch {
                throw store.error(.invalidArgument, "cannot read the TLS \(what) '\(path)': \(error)")
            }
        }
        if let path = trustedCAFile {
            let authorities = try load("CA file", path) { try NIOSSLCertificate.fromPEMFile(path) }
            guard !authorities.isEmpty else {
                throw store.error(.invalidArgument, "no certificate in the TLS CA file '\(path)'")
            }
            configuration.trustRoots = .certificates(authorities)
        }
        switch (certificateFile, keyFile) {
        case (let certificate?, let key?):
            let chain = try load("certificate file", certificate) { try NIOSSLCertificate.fromPEMFile(certificate) }
            guard !chain.isEmpty else {
                throw store.error(.invalidArgument, "no certificate in the TLS certificate file '\(certificate)'")
            }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(
                try load("key file", key) { try NIOSSLPrivateKey(file: key, format: .pem) })
        case (nil, nil):
            break
        default:
            throw store.error(.invalidArgument, "a TLS client certificate needs both certificateFile and keyFile")
        }
        return configuration
    }

    /// ``clientConfiguration(applicationProtocols:store:logger:)`` made into a context once, for a backend
    /// that opens its connections itself; a configuration BoringSSL refuses (a key that does not
    /// match its certificate, say) is `invalidArgument` too.
    @_spi(Backend) public func clientContext(
        applicationProtocols: [String] = [],
        store: StoreDescription,
        logger: Logger
    ) throws(CoordinationError) -> NIOSSLContext {
        let configuration = try clientConfiguration(
            applicationProtocols: applicationProtocols, store: store, logger: logger)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw store.error(.invalidArgument, "cannot set up TLS with these files: \(error)")
        }
    }

    /// What to verify the server's certificate against and send as SNI when connecting to `host`:
    /// ``serverName``, or else `host` when it is a name; `nil` for an IP address (swift-nio-ssl then
    /// matches the certificate's IP entries against the address connected to).
    @_spi(Backend) public func expectedServerName(connectingTo host: String) -> String? {
        if let serverName { return serverName }
        return (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }
}
