import ArgumentParser

/// `coordctl`: poke at keys, locks, leaders and registrations on any backend the library runs on,
/// the way `etcdctl`, `consul kv` / `consul lock` and `zkCli` do for their own servers.
@main
struct Coordctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordctl",
        abstract: "Keys, locks, leaders and registrations on etcd, ZooKeeper, Consul, etcd v2 or in memory.",
        discussion: """
            The store is a connection string (--store, or COORD_STORE): etcd://host:2379,
            zookeeper://host:2181/chroot, consul://host:8500, etcdv2://host:2379, memory://.
            Exit status: 0 success; 1 a store error (unreachable, refused, timed out); 2 the key or
            lock is not there (get, lock --no-wait); 3 the lock was lost while the command ran;
            64 a usage error; a command run by 'lock' gives its own status.
            """,
        subcommands: [
            Get.self, Put.self, Delete.self, List.self, Watch.self, LockCommand.self, Elect.self, Register.self,
            Discover.self, SessionCommand.self,
        ]
    )

    /// `--store` and `--verbose` before the subcommand (`coordctl --store etcd://… get k`); given
    /// after it, the subcommand's own win.
    @OptionGroup var global: StoreOptions
}
