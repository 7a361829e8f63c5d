import Foundation
import KBRPC
import KBRuntime

/// VKB's own settings (README, "Configuration"), beside the ones every service shares
/// (`KB_VKB_PORT`, `KB_VKB_HOST`, `KB_AUTH_TOKEN`, …).
public struct VKBConfiguration: Sendable {
    /// Every VKB key, with its default and meaning, as the README documents them.
    public static let documentedKeys: [(key: String, defaultValue: String, meaning: String)] = [
        ("KB_VKB_PORT", "8080", "VKB's HTTP port (API, page, /health, /metrics); 0 picks a free one"),
        ("KB_VKB_HOST", "127.0.0.1", "VKB's bind address; loopback unless set (e.g. 0.0.0.0 in a container)"),
        ("KB_VKB_WRITE_RATE_LIMIT", "100", "write requests (POST, PATCH, DELETE) per minute per client address; 0 turns the limit off"),
        ("KB_VKB_READ_RATE_LIMIT", "0", "read requests per minute per client address; 0 (default) means no limit"),
        ("KB_VKB_MAX_BODY_BYTES", "16777216", "largest request body (an import file); larger is 413"),
        ("KB_VKB_GRAPH_MAX_NODES", "5000", "default cap of /api/graph (a request may ask for up to 20000)"),
        ("KB_VKB_D3_PATH", "/usr/share/nodejs/d3/dist/d3.min.js", "the d3 bundle served to the page (Debian's node-d3)"),
        ("KB_VKB_WEB_DIR", "(built in)", "serve the page's files from this folder instead of the built-in copy"),
        ("KB_GRAPH_STORE_ADDR", "127.0.0.1:7101", "where VKB finds the graph store"),
    ]

    public var writeRatePerMinute: Int
    public var readRatePerMinute: Int
    public var maxBodyBytes: Int
    public var graphMaxNodes: Int
    public var d3Path: String
    public var webDirectory: URL?
    public var authToken: String?
    public var graphStore: RPCClient.Configuration

    /// Reads and checks the keys; the error names the first bad one.
    public init(source: ConfigSource, authToken: String?) throws {
        writeRatePerMinute = try source.integer("KB_VKB_WRITE_RATE_LIMIT", default: 100, range: 0...1_000_000)
        readRatePerMinute = try source.integer("KB_VKB_READ_RATE_LIMIT", default: 0, range: 0...100_000_000)
        maxBodyBytes = try source.integer("KB_VKB_MAX_BODY_BYTES", default: 16 << 20, range: 1024...(1 << 30))
        graphMaxNodes = try source.integer("KB_VKB_GRAPH_MAX_NODES", default: 5000, range: 1...20_000)
        d3Path = source.string("KB_VKB_D3_PATH", default: "/usr/share/nodejs/d3/dist/d3.min.js")
        webDirectory = source.string("KB_VKB_WEB_DIR").map { URL(fileURLWithPath: $0, isDirectory: true) }
        self.authToken = authToken
        var graphStore = try source.clientConfiguration(for: .graphStore)
        graphStore.connectTimeout = .seconds(2)
        graphStore.defaultTimeout = .seconds(15)
        self.graphStore = graphStore
    }
}
