/// TLS for a backend's connections, as PEM files read when the store is made (etcdctl's
/// `--cacert`, `--cert`, `--key`). Every backend that speaks TLS takes this one type, in its
/// `Configuration` and from the same connection-string options (`ca=`, `cert=`, `key=`,
/// `servername=`, `tls=true`).
///
/// The server's certificate is always verified (TLS 1.2 or later), against ``serverName`` or else
/// the endpoint's host: a name, or an IP address matched against the certificate's IP entries.
/// The files are read once, when the store is made; a file that cannot be read or holds no usable
/// certificate or key is `invalidArgument` then. To rotate certificates, make a new store with the
/// new files and close the old one (calls in flight on the old store finish on its connections).
public struct TLSSettings: Sendable, Hashable {
    /// The certificate authorities to trust (PEM, one or more); `nil`: the system's.
    public var trustedCAFile: String?
    /// A client certificate (PEM chain) and its private key, for client-certificate
    /// authentication.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name to verify the server's certificate against and send as SNI.
    public var serverName: String?
    /// **Tests only.** Accepts any server certificate: no chain, name or address check, so anyone
    /// on the path can read and change the traffic, credentials included. A store made with it
    /// logs a warning. Not settable from a connection string.
    public var insecureSkipServerVerificationForTestsOnly: Bool

    public init(
        trustedCAFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
        insecureSkipServerVerificationForTestsOnly: Bool = false
    ) {
        self.trustedCAFile = trustedCAFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipServerVerificationForTestsOnly = insecureSkipServerVerificationForTestsOnly
    }
}
