import CoordinationTestKit

/// A real `etcdctl` process (Debian's etcd-client) as a peer: it takes part in locks and elections
/// through etcd's own concurrency package, so the interop tests compare against the reference.
enum EtcdctlPeer {
    static func start(endpoints: String, arguments: [String]) throws -> PeerProcess {
        try PeerProcess(
            name: "etcdctl", executable: "/usr/bin/etcdctl", arguments: ["--endpoints", endpoints] + arguments,
            environment: ["ETCDCTL_API": "3"])
    }
}
