import Foundation
import KBRPC
import Logging

/// The settings every service shares, read from the environment (README, "Configuration").
public struct ServiceConfiguration: Sendable {
    /// Every key read here, with its default and meaning, as the README documents them.
    public static let documentedKeys: [(key: String, defaultValue: String, meaning: String)] = [
        ("KB_DATA_DIR", ".data", "where every service keeps its data, each in its own folder"),
        ("KB_AUTH_TOKEN", "(unset)", "shared token; when set every RPC but health checks needs 'authorization: Bearer <token>'"),
        ("KB_BIND_HOST", "127.0.0.1", "the address services bind unless KB_<SERVICE>_HOST says otherwise"),
        ("KB_<SERVICE>_HOST", "KB_BIND_HOST", "one service's bind address"),
        ("KB_<SERVICE>_PORT", "7101-7104", "one service's RPC port (graph-store 7101, vector-search 7102, inference-gateway 7103, budget-service 7104); 0 picks a free one"),
        ("KB_<SERVICE>_ADMIN_PORT", "9101-9104", "one service's HTTP admin port (/health, /health/live, /health/ready, /metrics)"),
        ("KB_<SERVICE>_ADDR", "127.0.0.1:<port>", "where clients find a service, e.g. KB_GRAPH_STORE_ADDR=127.0.0.1:7101"),
        ("KB_LOG_LEVEL", "info", "trace, debug, info, notice, warning, error or critical"),
        ("KB_LOG_FORMAT", "auto", "json (one object per line), text, or auto: text on a terminal, json otherwise"),
        ("KB_RPC_MAX_FRAME_BYTES", "16777216", "largest frame accepted; a longer one is refused before its body is read"),
        ("KB_RPC_MAX_CONCURRENT_PER_CONNECTION", "64", "requests handled at once per connection; more wait unread (backpressure)"),
        ("KB_RPC_MAX_CONNECTIONS", "4096", "connections served at once; more are refused with RESOURCE_EXHAUSTED"),
        ("KB_RPC_IDLE_TIMEOUT_SECONDS", "300", "a connection silent this long with nothing in flight is closed"),
        ("KB_RPC_DEFAULT_DEADLINE_MS", "30000", "deadline of a request that names none"),
        ("KB_SHUTDOWN_GRACE_SECONDS", "10", "how long SIGTERM waits for in-flight requests"),
        ("KB_CONFIG_FILE", "(unset)", "a file of KEY=VALUE lines read under the environment"),
    ]

    /// Which service this is.
    public var descriptor: ServiceDescriptor
    /// The service's version, reported by health.
    public var version: String
    /// The root data directory.
    public var dataDirectory: URL
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
        dataDirectory = URL(fileURLWithPath: source.string("KB_DATA_DIR", default: ".data"), isDirectory: true).standardizedFileURL
        host = source.string(descriptor.hostKey) ?? source.string("KB_BIND_HOST", default: "127.0.0.1")
        if let defaultPort = descriptor.defaultPort {
            port = try source.port(descriptor.portKey, default: defaultPort)
        }
        adminPort = try source.port(descriptor.adminPortKey, default: descriptor.defaultAdminPort)
        authToken = source.string("KB_AUTH_TOKEN")
        let level = try source.choice("KB_LOG_LEVEL", default: "info", from: Logger.Level.allCases.map(\.rawValue))
        logLevel = Logger.Level(rawValue: level)!
        logFormat = try source.choice("KB_LOG_FORMAT", default: "auto", from: ["auto", "json", "text"])

        var rpc = RPCServer.Configuration()
        rpc.host = host
        rpc.port = port ?? 0
        rpc.authToken = authToken
        rpc.maxFrameLength = try source.integer("KB_RPC_MAX_FRAME_BYTES", default: Frame.defaultMaxLength, range: 1024...(1 << 30))
        rpc.maxConcurrentRequestsPerConnection = try source.integer("KB_RPC_MAX_CONCURRENT_PER_CONNECTION", default: 64, range: 1...100_000)
        rpc.maxConnections = try source.integer("KB_RPC_MAX_CONNECTIONS", default: 4096, range: 1...1_000_000)
        rpc.idleTimeout = .seconds(try source.integer("KB_RPC_IDLE_TIMEOUT_SECONDS", default: 300, range: 1...86_400))
        rpc.defaultDeadline = .milliseconds(try source.integer("KB_RPC_DEFAULT_DEADLINE_MS", default: 30_000, range: 1...3_600_000))
        rpc.shutdownGracePeriod = .seconds(try source.integer("KB_SHUTDOWN_GRACE_SECONDS", default: 10, range: 0...3600))
        self.rpc = rpc
    }

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
        guard let defaultPort = peer.defaultPort else {
            throw ConfigError(key: peer.addressKey, "\(peer.name) has no RPC port")
        }
        let port = try self.port(peer.portKey, default: defaultPort, allowZero: false)
        let address = string(peer.addressKey) ?? "127.0.0.1:\(port)"
        var configuration: RPCClient.Configuration
        do {
            configuration = try RPCClient.Configuration(address: address)
        } catch {
            throw ConfigError(key: peer.addressKey, "'\(address)' is not host:port")
        }
        configuration.authToken = string("KB_AUTH_TOKEN")
        configuration.maxFrameLength = try integer("KB_RPC_MAX_FRAME_BYTES", default: Frame.defaultMaxLength, range: 1024...(1 << 30))
        return configuration
    }
}
