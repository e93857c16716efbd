@_spi(Backend) import CoordinationCore
import Testing

@Suite("ConnectionString")
struct ConnectionStringTests {
    typealias Address = ConnectionString.Address

    @Test("memory:// has a scheme and nothing else")
    func memory() throws {
        let parsed = try ConnectionString("memory://")
        #expect(parsed.scheme == "memory")
        #expect(parsed.addresses.isEmpty)
        #expect(parsed.path == "")
        #expect(parsed.query.isEmpty)
        #expect(parsed.user == nil)
        #expect(parsed.password == nil)
        #expect(parsed.description == "memory://")
    }

    @Test("a named memory store with a query")
    func memoryWithNameAndQuery() throws {
        let parsed = try ConnectionString("memory://name?maxValueSize=10")
        #expect(parsed.addresses == [Address(host: "name", port: nil)])
        #expect(parsed.query == ["maxValueSize": "10"])
    }

    @Test("the scheme is lower-cased")
    func schemeIsLowerCased() throws {
        #expect(try ConnectionString("ETCD://h:1").scheme == "etcd")
    }

    @Test("a host list with ports")
    func etcdHostList() throws {
        let parsed = try ConnectionString("etcd://h1:1,h2:2")
        #expect(parsed.scheme == "etcd")
        #expect(parsed.addresses == [Address(host: "h1", port: 1), Address(host: "h2", port: 2)])
        #expect(parsed.path == "")
        #expect(parsed.description == "etcd://h1:1,h2:2")
    }

    @Test("a host without a port, and the default port filled in")
    func defaultPort() throws {
        let parsed = try ConnectionString("etcd://h1,h2:22379")
        #expect(parsed.addresses == [Address(host: "h1", port: nil), Address(host: "h2", port: 22379)])
        #expect(parsed.endpoints(defaultPort: 2379).map(\.description) == ["h1:2379", "h2:22379"])
    }

    @Test("a ZooKeeper chroot path")
    func zookeeperChroot() throws {
        let parsed = try ConnectionString("zookeeper://h:2181/chroot")
        #expect(parsed.scheme == "zookeeper")
        #expect(parsed.addresses == [Address(host: "h", port: 2181)])
        #expect(parsed.path == "chroot")
        #expect(parsed.description == "zookeeper://h:2181/chroot")

        let nested = try ConnectionString("zookeeper://h1:2181,h2:2181/app/locks/")
        #expect(nested.addresses.count == 2)
        #expect(nested.path == "app/locks")
    }

    @Test("a Consul query string")
    func consulQuery() throws {
        let parsed = try ConnectionString("consul://127.0.0.1:8500?dc=dc1&token=x")
        #expect(parsed.scheme == "consul")
        #expect(parsed.addresses == [Address(host: "127.0.0.1", port: 8500)])
        #expect(parsed.query == ["dc": "dc1", "token": "x"])
        #expect(parsed.path == "")
    }

    @Test("a query flag without a value")
    func queryFlag() throws {
        let parsed = try ConnectionString("consul://h:8500?stale&dc=dc1")
        #expect(parsed.query == ["stale": "", "dc": "dc1"])
    }

    @Test("a path and a query together")
    func pathAndQuery() throws {
        let parsed = try ConnectionString("zookeeper://h:2181/chroot?timeout=5")
        #expect(parsed.path == "chroot")
        #expect(parsed.query == ["timeout": "5"])
    }

    @Test("IPv6 addresses in brackets")
    func ipv6() throws {
        let parsed = try ConnectionString("etcd://[::1]:2379")
        #expect(parsed.addresses == [Address(host: "::1", port: 2379)])
        #expect(parsed.description == "etcd://[::1]:2379")

        let list = try ConnectionString("etcd://[::1]:2379,[fe80::1],127.0.0.1:2380")
        #expect(
            list.addresses == [
                Address(host: "::1", port: 2379),
                Address(host: "fe80::1", port: nil),
                Address(host: "127.0.0.1", port: 2380),
            ]
        )
        #expect(
            list.endpoints(defaultPort: 2379).map(\.description) == ["[::1]:2379", "[fe80::1]:2379", "127.0.0.1:2380"])
    }

    @Test("user and password are parsed; the password never shows in the description")
    func credentials() throws {
        let parsed = try ConnectionString("etcd://root:s3cr3t-pw@h1:2379,h2:2379")
        #expect(parsed.user == "root")
        #expect(parsed.password == "s3cr3t-pw")
        #expect(parsed.addresses == [Address(host: "h1", port: 2379), Address(host: "h2", port: 2379)])
        #expect(!parsed.description.contains("s3cr3t"))
        #expect(parsed.description.contains("root"))
        #expect(parsed.description.contains("h1:2379,h2:2379"))
        #expect(!String(describing: parsed).contains("s3cr3t"))
        #expect(!"\(parsed)".contains("s3cr3t"))

        let userOnly = try ConnectionString("etcd://root@h:2379")
        #expect(userOnly.user == "root")
        #expect(userOnly.password == nil)
    }

    @Test("a password containing '@' and ':' is kept whole and hidden")
    func passwordWithSpecialCharacters() throws {
        let parsed = try ConnectionString("etcd://root:p@ss:word@h:2379")
        #expect(parsed.user == "root")
        #expect(parsed.password == "p@ss:word")
        #expect(parsed.addresses == [Address(host: "h", port: 2379)])
        #expect(!parsed.description.contains("p@ss"))
        #expect(!parsed.description.contains("word"))
    }

    @Test("a token in the query never shows in the description")
    func queryTokenHidden() throws {
        // DESIGN.md: nothing leaks a credential into a message or log. A Consul ACL token is a
        // credential just like a password, and stores put `description` into logs and errors.
        let parsed = try ConnectionString("consul://127.0.0.1:8500?dc=dc1&token=s3cr3t-token")
        #expect(parsed.query["token"] == "s3cr3t-token")
        #expect(parsed.description.contains("dc=dc1"))
        #expect(!parsed.description.contains("s3cr3t-token"), "description was: \(parsed.description)")
    }

    @Test("the description round-trips through the parser (password aside)")
    func descriptionRoundTrips() throws {
        for text in [
            "memory://", "etcd://h1:1,h2:2", "zookeeper://h:2181/chroot", "consul://127.0.0.1:8500?dc=dc1",
            "etcd://[::1]:2379", "etcdv2://127.0.0.1:2379",
        ] {
            let parsed = try ConnectionString(text)
            #expect(try ConnectionString(parsed.description) == parsed, "\(text)")
        }
    }

    // MARK: - Rejection

    @Test(
        "invalid connection strings give invalidConnectionString",
        arguments: [
            "",
            "127.0.0.1:2379",
            "etcd:127.0.0.1:2379",
            "etcd:/127.0.0.1:2379",
            "://127.0.0.1:2379",
            "et cd://h:1",
            "etcd://h:0",
            "etcd://h:70000",
            "etcd://h:65536",
            "etcd://h:-1",
            "etcd://h:abc",
            "etcd://h:",
            "etcd://:2379",
            "etcd://h1:1,,h2:2",
            "etcd://h1:1,",
            "etcd://,h1:1",
            "etcd://[::1",
            "etcd://[::1]x",
            "etcd://[::1]:0",
            "etcd://[]:2379",
        ]
    )
    func invalid(_ text: String) throws {
        let error = try #require(throws: CoordinationError.self) { try ConnectionString(text) }
        #expect(error.code == .invalidConnectionString)
        #expect(error.message.contains("invalid connection string"))
    }

    @Test("durations: 500ms, 2s, 1m, 1h and bare seconds on every backend; a timeout must be longer than zero")
    func durations() throws {
        let options = try ConnectionOptions(
            ConnectionString("etcd://h:2379?a=500ms&b=2s&c=1m&d=1h&e=1.5&f=0s&g=soon"), backend: "etcd",
            known: ["a", "b", "c", "d", "e", "f", "g", "missing"])
        #expect(try options.duration("a") == .milliseconds(500))
        #expect(try options.duration("b") == .seconds(2))
        #expect(try options.duration("c") == .seconds(60))
        #expect(try options.duration("d") == .seconds(3600))
        #expect(try options.duration("e") == .milliseconds(1500))
        #expect(try options.duration("f") == .zero)
        #expect(try options.duration("missing") == nil)
        #expect(throws: CoordinationError.self) { try options.duration("g") }
        #expect(throws: CoordinationError.self) { try options.positiveDuration("f") }
        #expect(try options.positiveDuration("a") == .milliseconds(500))
    }

    @Test("an option the backend does not know is refused, naming the ones it knows")
    func unknownOption() throws {
        let error = try #require(throws: CoordinationError.self) {
            try ConnectionOptions(ConnectionString("etcd://h:2379?timout=5s"), backend: "etcd", known: ["timeout"])
        }
        #expect(error.code == .invalidConnectionString)
        #expect(error.message.contains("'timout'") && error.message.contains("timeout"))
        // The TLS options are known where the backend takes TLS.
        _ = try ConnectionOptions(
            ConnectionString("etcd://h:2379?ca=/ca.pem"), backend: "etcd", known: ["timeout"], acceptsTLS: true)
        #expect(throws: CoordinationError.self) {
            try ConnectionOptions(ConnectionString("consul://h:8500?ca=/ca.pem"), backend: "consul", known: [])
        }
    }

    @Test("flags, whole numbers, TLS files and endpoints read the same way for every backend")
    func optionKinds() throws {
        let options = try ConnectionOptions(
            ConnectionString("etcd://h1,h2:22379?on=true&off=0&n=3&z=0&bad=yes&ca=/ca.pem&servername=etcd"),
            backend: "etcd", known: ["on", "off", "n", "z", "bad"], acceptsTLS: true)
        #expect(try options.flag("on") == true)
        #expect(try options.flag("off") == false)
        #expect(throws: CoordinationError.self) { try options.flag("bad") }
        #expect(try options.positiveInteger("n") == 3)
        #expect(throws: CoordinationError.self) { try options.positiveInteger("z") }
        #expect(try options.tls() == TLSSettings(trustedCAFile: "/ca.pem", serverName: "etcd"))
        #expect(
            try options.endpoints(defaultPort: 2379) == [
                Endpoint(host: "h1", port: 2379), Endpoint(host: "h2", port: 22379),
            ])
        #expect(throws: CoordinationError.self) { try options.endpoints(defaultPort: 2379, single: true) }

        let plain = try ConnectionOptions(
            ConnectionString("etcd://h?tls=false&ca=/ca.pem"), backend: "etcd", known: [], acceptsTLS: true)
        #expect(try plain.tls() == nil)
        let halfCertificate = try ConnectionOptions(
            ConnectionString("etcd://h?cert=/c.pem"), backend: "etcd", known: [], acceptsTLS: true)
        #expect(throws: CoordinationError.self) { try halfCertificate.tls() }
        let noHost = try ConnectionOptions(ConnectionString("etcd://"), backend: "etcd", known: [])
        #expect(throws: CoordinationError.self) { try noHost.endpoints(defaultPort: 2379) }
        let credentials = try ConnectionOptions(ConnectionString("zookeeper://u:p@h"), backend: "zookeeper", known: [])
        #expect(throws: CoordinationError.self) { try credentials.refuseCredentials() }
    }

    @Test("rejection messages say what is wrong")
    func rejectionMessages() throws {
        let noScheme = try #require(throws: CoordinationError.self) { try ConnectionString("127.0.0.1:2379") }
        #expect(noScheme.message.contains("scheme"))

        let badPort = try #require(throws: CoordinationError.self) { try ConnectionString("etcd://h:70000") }
        #expect(!badPort.message.contains("70000"), "port text is never quoted: a forgotten '@' would show a password")
        #expect(badPort.message.contains("host 'h'"))
        #expect(badPort.message.contains("1 to 65535"))

        let emptyHost = try #require(throws: CoordinationError.self) { try ConnectionString("etcd://h1:1,,h2:2") }
        #expect(emptyHost.message.contains("empty host"))
    }

    @Test("a rejection never quotes the password")
    func rejectionHidesPassword() throws {
        let error = try #require(throws: CoordinationError.self) {
            try ConnectionString("etcd://root:s3cr3t-pw@h:70000")
        }
        #expect(error.code == .invalidConnectionString)
        #expect(!error.message.contains("s3cr3t"))
        #expect(!error.description.contains("s3cr3t"))
    }
}
