import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a connection could not be made, in words a user can act on: "connection refused",
/// "unknown host 'db-1.internal'", "no answer within 5 s", "TLS: …". The raw descriptions of
/// SwiftNIO's errors nest and repeat themselves ("connection reset (error set): Connection refused
/// (errno: 111)"); every backend reports through this instead.
@_spi(Backend) public enum ConnectFailure {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first {
                return describe(first.error)
            }
            if error.dnsAError != nil || error.dnsAAAAError != nil {
                return "unknown host '\(error.host)'"
            }
            return "no address to connect to for '\(error.host)'"
        case let error as SocketAddressError:
            if case .unknown(let host, _) = error { return "unknown host '\(host)'" }
            return "\(error)"
        case let error as IOError:
            return systemMessage(error.errnoCode)
        case let error as ChannelError:
            switch error {
            case .connectTimeout(let amount):
                return "no answer within \(Duration.nanoseconds(amount.nanoseconds))"
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return "the connection closed"
            default:
                return "\(error)"
            }
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            return "TLS: \(error)"
        default:
            return "\(error)"
        }
    }

    /// `strerror`'s text, lower-cased as a clause, with the number: "connection refused (errno 111)".
    static func systemMessage(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "system error \(code)" }
        let message = String(cString: text)
        return message.prefix(1).lowercased() + message.dropFirst() + " (errno \(code))"
    }
}
