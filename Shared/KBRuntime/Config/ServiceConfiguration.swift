import Foundation
import KBRPC
import Logging

/// The settings every service shares, read from the environment (README, "Configuration"); each
/// key is declared once in `ServiceConfiguration.Keys`.
public struct ServiceConfiguration: DeclaredConfiguration {
    /// The keys every service reads. Those named after a service (`KB_<SERVICE>_PORT`) are
    /// functions of its descriptor, whose default ports are the catalog's.
    public enum Keys {
        public static let dataDirectory = ConfigKey.text("KB_DATA_DIR", default: ".data", meaning: "where every service keeps its data, each in its own folder; also the launcher's `run/` and `logs/`")
        public static let authToken = ConfigKey.optionalText("KB_AUTH_TOKEN", meaning: "shared token; when set every RPC but health checks needs `authorization: Bearer <token>`")
        public static let backupDirectory = ConfigKey.optionalText("KB_BACKUP_DIR", documentedDefault: "`backups` beside `KB_DATA_DIR`", meaning: "the only folder backups are written to and restored from over RPC (`ukb backup`, `kb budget backup`, `kb vectors snapshot/restore`): relative paths are taken inside it; paths outside it, `..` and symbolic links are refused")
        public static let allowedHosts = ConfigKey<[String]>("KB_HTTP_ALLOWED_HOSTS", default: [], documentedDefault: "the bind address, `localhost`, `127.0.0.1`, `[::1]`", meaning: "comma-separated `host[:port]` names every HTTP surface (VKB, admin ports) answers to (a name without a port takes the listening port); other `Host`s get 421 and writes from other origins 403, so a web page cannot reach them by DNS rebinding") { raw in
            let names = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for name in names where HTTPHostAllowList.authority(name) == nil {
                throw InvalidConfigValue("'\(name)' is not host or host:port")
            }
            return names
        }
        public static let bindHost = ConfigKey.text("KB_BIND_HOST", default: "127.0.0.1", meaning: "the address services bind unless `KB_<SERVICE>_HOST` says otherwise")
        public static let logLevel = ConfigKey.choice("KB_LOG_LEVEL", default: "info", from: Logger.Level.allCases.map(\.rawValue), meaning: "`trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`")
        public static let logFormat = ConfigKey.choice("KB_LOG_FORMAT", default: "auto", from: ["auto", "json", "text"], meaning: "`json` (one object per line), `text`, or `auto`: text on a terminal, JSON otherwise")
        public static let maxFrameBytes = ConfigKey.integer("KB_RPC_MAX_FRAME_BYTES", default: Frame.defaultMaxLength, range: 1024...(1 << 30), meaning: "largest frame accepted (1024 … 1 GiB)")
        public static let maxConcurrentPerConnection = ConfigKey.integer("KB_RPC_MAX_CONCURRENT_PER_CONNECTION", default: 64, range: 1...100_000, meaning: "requests handled at once per connection; further frames wait unread (backpressure)")
        public static let maxConnections = ConfigKey.integer("KB_RPC_MAX_CONNECTIONS", default: 4096, range: 1...1_000_000, meaning: "connections served at once; more are refused with `RESOURCE_EXHAUSTED`")
        public static let maxConnectionsPerAddress = ConfigKey.integer("KB_RPC_MAX_CONNECTIONS_PER_ADDRESS", default: 1024, range: 1...1_000_000, meaning: "connections served at once from one client address, so one client cannot lock the others out")
        public static let frameTimeoutSeconds = ConfigKey.integer("KB_RPC_FRAME_TIMEOUT_SECONDS", default: 10, range: 1...3600, meaning: "how long one frame may take to arrive whole from its first byte (a client dripping bytes is closed)")
        public static let partialFrameBudgetBytes = ConfigKey.integer("KB_RPC_PARTIAL_FRAME_BUDGET_BYTES", default: 268_435_456, range: 1_048_576...68_719_476_736, meaning: "bytes the service holds in unfinished frames over 64 KiB; a new large frame past it is refused with `RESOURCE_EXHAUSTED`")
        public static let idleTimeoutSeconds = ConfigKey.integer("KB_RPC_IDLE_TIMEOUT_SECONDS", default: 300, range: 1...86_400, meaning: "a connection silent this long with nothing in flight is closed")
        public static let defaultDeadlineMilliseconds = ConfigKey.integer("KB_RPC_DEFAULT_DEADLINE_MS", default: 30_000, range: 1...3_600_000, meaning: "deadline of a request that names none")
        public static let shutdownGraceSeconds = ConfigKey.integer("KB_SHUTDOWN_GRACE_SECONDS", default: 10, range: 0...3600, meaning: "how long SIGTERM waits for in-flight requests")
        /// Read by `ConfigSource` itself, before every other key.
        public static let configFile = ConfigKey.optionalText("KB_CONFIG_FILE", meaning: "a file of `KEY=VALUE` lines (`#` comments) read under the environment")
        public static let learnWatch = ConfigKey<[String]>("KB_LEARN_WATCH", default: [], documentedDefault: "unset (no learner)", meaning: "folders of coding-session transcripts, `:`-separated (e.g. `~/.claude/projects/my-app:./.specstory/history`): `kb up` then also starts the session learner, `ukb learn --watch` over them for `KB_TEAM`, with `/health` and `/metrics` on `KB_LEARNER_PORT` (9106)") { raw in
            let folders = raw.split(separator: ":").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return folders.map { $0 == "~" || $0.hasPrefix("~/") ? (ProcessInfo.processInfo.environment["HOME"] ?? "~") + $0.dropFirst() : $0 }
        }

        /// One service's bind address; unset means `KB_BIND_HOST`.
        public static func host(_ service: ServiceDescriptor) -> ConfigKey<String?> {
            .optionalText(service.hostKey, documentedDefault: "`KB_BIND_HOST`", meaning: "one service's bind address")
        }
        /// One service's RPC port.
        public static func port(_ service: ServiceDescriptor, allowZero: Bool = true) -> ConfigKey<Int> {
            .port(service.portKey, default: service.defaultPort ?? 0, documentedDefault: "7101–7104 (`KB_VKB_PORT`: 8080)", allowZero: allowZero, meaning: "one service's RPC port; 0 picks a free one")
        }
        /// One service's admin HTTP port (VKB's only port).
        public static func adminPort(_ service: ServiceDescriptor) -> ConfigKey<Int> {
            .port(service.adminPortKey, default: service.defaultAdminPort, documentedDefault: "9101–9104", meaning: "one service's admin HTTP port")
        }
        /// Where clients find a service; unset means loopback on its port.
        public static func address(_ service: ServiceDescriptor) -> ConfigKey<String?> {
            .optionalText(service.addressKey, documentedDefault: "`127.0.0.1:<port>`", meaning: "where clients find a service, e.g. `KB_GRAPH_STORE_ADDR=127.0.0.1:7101`")
        }

        /// A pattern row (`KB_<SERVICE>_PORT`) of the README for a key declared per service.
        static func pattern<Value>(_ key: (ServiceDescriptor) -> ConfigKey<Value>, suffix: String) -> ConfigKeyDocumentation {
            let documentation = key(.graphStore).documentation
            return ConfigKeyDocumentation(name: "KB_<SERVICE>_\(suffix)", documentedDefault: documentation.documentedDefault, meaning: documentation.meaning)
        }
    }

    /// Every shared key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [
        Keys.dataDirectory.documentation,
        Keys.backupDirectory.documentation,
        Keys.authToken.documentation,
        Keys.bindHost.documentation,
        Keys.allowedHosts.documentation,
        Keys.pattern(Keys.host, suffix: "HOST"),
        Keys.pattern({ Keys.port($0) }, suffix: "PORT"),
        Keys.pattern(Keys.adminPort, suffix: "ADMIN_PORT"),
        Keys.pattern(Keys.address, suffix: "ADDR"),
        Keys.logLevel.documentation,
        Keys.logFormat.documentation,
        Keys.maxFrameBytes.documentation,
        Keys.maxConcurrentPerConnection.documentation,
        Keys.maxConnections.documentation,
        Keys.maxConnectionsPerAddress.documentation,
        Keys.frameTimeoutSeconds.documentation,
        Keys.partialFrameBudgetBytes.documentation,
        Keys.idleTimeoutSeconds.documentation,
        Keys.defaultDeadlineMilliseconds.documentation,
        Keys.shutdownGraceSeconds.documentation,
        Keys.configFile.documentation,
        Keys.learnWatch.documentation,
    ]

    /// Which service this is.
    public var descriptor: ServiceDescriptor
    /// The service's version, reported by health.
    public var version: String
    /// The root data directory.
    public var dataDirectory: URL
    /// The only folder backups go to and come from over RPC (`KB_BACKUP_DIR`).
    public var backupDirectory: URL
    /// The names the HTTP surfaces answer to (`KB_HTTP_ALLOWED_HOSTS`); empty means the defaults.
    public var allowedHosts: [String]
    /// The address to bind.
    public var host: String
    /// The RPC port (0: any free port); nil for a service without one.
    public var port: Int?
    /// The admin HTTP port (0: any free port).
    public var adminPort: Int
    /// The shared token, if any.
    public var authToken: String?
    /// The log level.
    public var logLevel: Logger.Level
    /// `json`, `text` or `auto`.
    public var logFormat: String
    /// The RPC server's settings.
    public var rpc: RPCServer.Configuration
    /// Everything read, for service-specific keys.
    public var source: ConfigSource

    /// Reads and checks the configuration of `descriptor`; the error names the first bad key.
    public init(descriptor: ServiceDescriptor, version: String = KnowledgeBaseVersion.current, source: ConfigSource) throws {
        self.descriptor = descriptor
        self.version = version
        self.source = source
        dataDirectory = URL(fileURLWithPath: try source.value(of: Keys.dataDirectory), isDirectory: true).standardizedFileURL
        backupDirectory = try source.value(of: Keys.backupDirectory).map { URL(fileURLWithPath: $0, isDirectory: true).standardizedFileURL }
            ?? dataDirectory.deletingLastPathComponent().appendingPathComponent("backups", isDirectory: true)
        host = try source.value(of: Keys.host(descriptor)) ?? source.value(of: Keys.bindHost)
        allowedHosts = try source.value(of: Keys.allowedHosts)
        if descriptor.defaultPort != nil {
            port = try source.value(of: Keys.port(descriptor))
        }
        adminPort = try source.value(of: Keys.adminPort(descriptor))
        authToken = try source.value(of: Keys.authToken)
        logLevel = Logger.Level(rawValue: try source.value(of: Keys.logLevel))!
        logFormat = try source.value(of: Keys.logFormat)

        var rpc = RPCServer.Configuration()
        rpc.host = host
        rpc.port = port ?? 0
        rpc.authToken = authToken
        rpc.maxFrameLength = try source.value(of: Keys.maxFrameBytes)
        rpc.maxConcurrentRequestsPerConnection = try source.value(of: Keys.maxConcurrentPerConnection)
        rpc.maxConnections = try source.value(of: Keys.maxConnections)
        rpc.maxConnectionsPerAddress = try source.value(of: Keys.maxConnectionsPerAddress)
        rpc.frameArrivalTimeout = .seconds(try source.value(of: Keys.frameTimeoutSeconds))
        rpc.partialFrameBudget = try source.value(of: Keys.partialFrameBudgetBytes)
        rpc.idleTimeout = .seconds(try source.value(of: Keys.idleTimeoutSeconds))
        rpc.defaultDeadline = .milliseconds(try source.value(of: Keys.defaultDeadlineMilliseconds))
        rpc.shutdownGracePeriod = .seconds(try source.value(of: Keys.shutdownGraceSeconds))
        self.rpc = rpc
    }

    /// The backup root every backup and restore over RPC is checked against.
    public var backupRoot: BackupRoot { BackupRoot(directory: backupDirectory) }

    /// The service's own data folder (`KB_DATA_DIR/<subdirectory>`), nil when it owns none.
    public var serviceDataDirectory: URL? {
        descriptor.dataSubdirectory.map { dataDirectory.appendingPathComponent($0, isDirectory: true) }
    }
}

/// The version of the whole system, reported by every health endpoint.
public enum KnowledgeBaseVersion {
    /// The current version.
    public static let current = "0.1.0"
}

extension ConfigSource {
    /// Where to reach `peer`: `KB_<PEER>_ADDR` when set, else loopback on the peer's configured
    /// (or default) RPC port, with the shared token. For services and CLIs that call another
    /// service (`ukb` → graph-store, VKB → graph-store, gateway → budget-service).
    public func clientConfiguration(for peer: ServiceDescriptor) throws -> RPCClient.Configuration {
        guard peer.defaultPort != nil else {
            throw ConfigError(key: peer.addressKey, "\(peer.name) has no RPC port")
        }
        let port = try value(of: ServiceConfiguration.Keys.port(peer, allowZero: false))
        let address = try value(of: ServiceConfiguration.Keys.address(peer)) ?? "127.0.0.1:\(port)"
        var configuration: RPCClient.Configuration
        do {
            configuration = try RPCClient.Configuration(address: address)
        } catch {
            throw ConfigError(key: peer.addressKey, "'\(address)' is not host:port")
        }
        configuration.authToken = try value(of: ServiceConfiguration.Keys.authToken)
        configuration.maxFrameLength = try value(of: ServiceConfiguration.Keys.maxFrameBytes)
        return configuration
    }
}
