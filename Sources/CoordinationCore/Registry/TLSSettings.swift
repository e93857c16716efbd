/// TLS for a backend's connections, as PEM files read when the store is made (etcdctl's
/// `--cacert`, `--cert`, `--key`). The server's certificate is always verified, against
/// ``serverName`` or else the endpoint's host (a name, or an IP address matched against the
/// certificate's IP entries).
public struct TLSSettings: Sendable, Hashable {
    /// The certificate authorities to trust (PEM, one or more); `nil`: the system's.
    public var trustedCAFile: String?
    /// A client certificate (PEM chain) and its private key, for client-certificate
    /// authentication.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name to verify the server's certificate against and send as SNI.
    public var serverName: String?

    public init(
        trustedCAFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil
    ) {
        self.trustedCAFile = trustedCAFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}
