import BenchSupport

/// The ZooKeeper server's packet counters, read with the four-letter word `srvr` as kazoo_bench.py
/// reads them: `Received` counts every request packet the server read (pings included; the `srvr`
/// itself counts as one too), `Sent` every packet it wrote (replies and watch notifications).
struct ServerCounters: Sendable {
    let host: String
    let port: Int

    /// (received, sent), or `nil` (with a note on stderr) when the server does not tell.
    func read() -> (received: Int, sent: Int)? {
        let text: String
        do {
            text = try tcpExchange(host: host, port: port, request: "srvr")
        } catch {
            note("could not read the server's counters on \(host):\(port): \(error)")
            return nil
        }
        func counter(_ name: String) -> Int? {
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let line = line.hasSuffix("\r") ? line.dropLast() : line
                if line.hasPrefix(name + ": "), let value = Int(line.dropFirst(name.count + 2)) { return value }
            }
            return nil
        }
        guard let received = counter("Received"), let sent = counter("Sent") else {
            note("`srvr` answered without Received/Sent counters (is `srvr` in 4lw.commands.whitelist?)")
            return nil
        }
        return (received, sent)
    }

    /// The differences between two readings, or `nil` when either is missing.
    static func delta(_ before: (received: Int, sent: Int)?, _ after: (received: Int, sent: Int)?)
        -> (received: Int, sent: Int)?
    {
        guard let before, let after else { return nil }
        return (after.received - before.received, after.sent - before.sent)
    }
}
