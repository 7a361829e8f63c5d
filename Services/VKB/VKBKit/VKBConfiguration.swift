import Foundation
import KBRPC
import KBRuntime
import NIOCore

/// VKB's own settings (README, "Configuration"), beside the ones every service shares
/// (`KB_VKB_PORT`, `KB_VKB_HOST`, `KB_AUTH_TOKEN`, `KB_GRAPH_STORE_ADDR`, `KB_VECTOR_SEARCH_ADDR`,
/// `KB_INFERENCE_GATEWAY_ADDR`, …); each key declared once.
public struct VKBConfiguration: ServiceOwnConfiguration {
    /// VKB's keys.
    public enum Keys {
        public static let writeRateLimit = ConfigKey.integer("KB_VKB_WRITE_RATE_LIMIT", default: 100, range: 0...1_000_000, meaning: "VKB writes (POST, PUT, PATCH, DELETE) per minute per client address; 0 turns the limit off")
        public static let readRateLimit = ConfigKey.integer("KB_VKB_READ_RATE_LIMIT", default: 0, range: 0...100_000_000, meaning: "VKB reads per minute per client address; 0 means no limit")
        public static let maxBodyBytes = ConfigKey.integer("KB_VKB_MAX_BODY_BYTES", default: 16 << 20, range: 1024...(1 << 30), meaning: "largest request body VKB reads (an import file); larger is 413")
        public static let graphMaxNodes = ConfigKey.integer("KB_VKB_GRAPH_MAX_NODES", default: 5000, range: 1...20_000, meaning: "default cap of `/api/graph` (a request may ask for up to 20,000)")
        public static let d3Path = ConfigKey.text("KB_VKB_D3_PATH", default: "/usr/share/nodejs/d3/dist/d3.min.js", meaning: "the d3 bundle served to the page (Debian's `node-d3`)")
        public static let webDirectory = ConfigKey.optionalText("KB_VKB_WEB_DIR", documentedDefault: "built in", meaning: "serve the page's files from this folder instead (edits show without a rebuild)")
        public static let publicReads = ConfigKey.choice("KB_VKB_PUBLIC_READS", default: "false", from: ["true", "false"], meaning: "`true` lets `/api/*` reads through without the token when `KB_AUTH_TOKEN` is set (writes still need it); by default reads need it too")
        public static let headerTimeoutSeconds = ConfigKey.integer("KB_VKB_HEADER_TIMEOUT_SECONDS", default: 10, range: 1...3600, meaning: "how long a request's header may take to arrive whole, from the connection's opening or the request's first byte; a slower client is disconnected")
        public static let idleTimeoutSeconds = ConfigKey.integer("KB_VKB_IDLE_TIMEOUT_SECONDS", default: 60, range: 1...86_400, meaning: "a connection silent this long (between requests, or in the middle of one) is closed")
        public static let maxConnections = ConfigKey.integer("KB_VKB_MAX_CONNECTIONS", default: 1024, range: 1...1_000_000, meaning: "connections VKB serves at once; one more is answered 503 and closed")
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [
        Keys.writeRateLimit.documentation,
        Keys.readRateLimit.documentation,
        Keys.maxBodyBytes.documentation,
        Keys.graphMaxNodes.documentation,
        Keys.d3Path.documentation,
        Keys.webDirectory.documentation,
        Keys.publicReads.documentation,
        Keys.headerTimeoutSeconds.documentation,
        Keys.idleTimeoutSeconds.documentation,
        Keys.maxConnections.documentation,
    ]

    /// Writes allowed per minute per client address; 0 means no limit.
    public var writeRatePerMinute: Int
    /// Reads allowed per minute per client address; 0 means no limit.
    public var readRatePerMinute: Int
    /// The largest request body read.
    public var maxBodyBytes: Int
    /// The default node cap of `/api/graph`.
    public var graphMaxNodes: Int
    /// The d3 bundle served to the page.
    public var d3Path: String
    /// The page's files on disk, when not the built-in copy.
    public var webDirectory: URL?
    /// The shared token writes (and, unless `publicReads`, `/api/*` reads) need, if any (`KB_AUTH_TOKEN`).
    public var authToken: String?
    /// Whether `/api/*` reads go through without the token (`KB_VKB_PUBLIC_READS`).
    public var publicReads: Bool
    /// The connection bounds: header and idle timeouts, the connection count.
    public var connectionLimits: HTTPConnectionLimits
    /// Where and how VKB calls the graph store.
    public var graphStore: RPCClient.Configuration
    /// Where VKB finds vector-search and the inference gateway for search by meaning
    /// (`KB_VECTOR_SEARCH_ADDR`, `KB_INFERENCE_GATEWAY_ADDR`); when either does not answer, the
    /// search box falls back to the graph's word search and says so.
    public var vectorSearch: RPCClient.Configuration
    public var inferenceGateway: RPCClient.Configuration

    /// Reads and checks the keys; the error names the first bad one.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        writeRatePerMinute = try source.value(of: Keys.writeRateLimit)
        readRatePerMinute = try source.value(of: Keys.readRateLimit)
        maxBodyBytes = try source.value(of: Keys.maxBodyBytes)
        graphMaxNodes = try source.value(of: Keys.graphMaxNodes)
        d3Path = try source.value(of: Keys.d3Path)
        webDirectory = try source.value(of: Keys.webDirectory).map { URL(fileURLWithPath: $0, isDirectory: true) }
        authToken = shared.authToken
        publicReads = try source.value(of: Keys.publicReads) == "true"
        connectionLimits = HTTPConnectionLimits(
            headerTimeout: .seconds(Int64(try source.value(of: Keys.headerTimeoutSeconds))),
            idleTimeout: .seconds(Int64(try source.value(of: Keys.idleTimeoutSeconds))),
            maxConnections: try source.value(of: Keys.maxConnections)
        )
        var graphStore = try source.clientConfiguration(for: .graphStore)
        graphStore.connectTimeout = .seconds(2)
        graphStore.defaultTimeout = .seconds(15)
        self.graphStore = graphStore
        func meaningClient(_ service: ServiceDescriptor) throws -> RPCClient.Configuration {
            var configuration = try source.clientConfiguration(for: service)
            configuration.connections = 1
            configuration.connectTimeout = .seconds(2)
            configuration.defaultTimeout = .seconds(10)
            configuration.maxBackoff = .seconds(1)
            configuration.failFast = true
            return configuration
        }
        vectorSearch = try meaningClient(.vectorSearch)
        inferenceGateway = try meaningClient(.inferenceGateway)
    }
}
