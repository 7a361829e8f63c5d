/// What the runtime and the launcher know about one service: its name, its configuration prefix,
/// its default ports and where its data lives.
public struct ServiceDescriptor: Sendable, Hashable {
    /// The executable's name, e.g. `graph-store`.
    public let name: String
    /// The prefix of its own configuration keys, e.g. `KB_GRAPH_STORE` (→ `KB_GRAPH_STORE_PORT`).
    public let envPrefix: String
    /// The default RPC port; nil for a service with no RPC port (VKB is HTTP only).
    public let defaultPort: Int?
    /// The default admin HTTP port (`/health`, `/metrics`).
    public let defaultAdminPort: Int
    /// The folder under `KB_DATA_DIR` that the service owns and locks; nil when it owns none.
    public let dataSubdirectory: String?

    /// Describes a service.
    public init(name: String, envPrefix: String, defaultPort: Int?, defaultAdminPort: Int, dataSubdirectory: String?) {
        self.name = name
        self.envPrefix = envPrefix
        self.defaultPort = defaultPort
        self.defaultAdminPort = defaultAdminPort
        self.dataSubdirectory = dataSubdirectory
    }

    /// The key of the RPC port, e.g. `KB_GRAPH_STORE_PORT`.
    public var portKey: String { "\(envPrefix)_PORT" }
    /// The key of the admin port, e.g. `KB_GRAPH_STORE_ADMIN_PORT` (`KB_VKB_PORT` for VKB, whose
    /// only port is its HTTP one).
    public var adminPortKey: String { defaultPort == nil ? "\(envPrefix)_PORT" : "\(envPrefix)_ADMIN_PORT" }
    /// The key of the bind host, e.g. `KB_GRAPH_STORE_HOST`.
    public var hostKey: String { "\(envPrefix)_HOST" }
    /// The key other services use to find this one, e.g. `KB_GRAPH_STORE_ADDR=host:port`.
    public var addressKey: String { "\(envPrefix)_ADDR" }
}

extension ServiceDescriptor {
    /// The graph store: entities and relations in LevelDB.
    public static let graphStore = ServiceDescriptor(name: "graph-store", envPrefix: "KB_GRAPH_STORE", defaultPort: 7101, defaultAdminPort: 9101, dataSubdirectory: "knowledge-graph")
    /// Vector search: HNSW collections.
    public static let vectorSearch = ServiceDescriptor(name: "vector-search", envPrefix: "KB_VECTOR_SEARCH", defaultPort: 7102, defaultAdminPort: 9102, dataSubdirectory: "vectors")
    /// The inference gateway: LLM providers, circuit breakers, caches, embeddings.
    public static let inferenceGateway = ServiceDescriptor(name: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", defaultPort: 7103, defaultAdminPort: 9103, dataSubdirectory: "inference")
    /// The budget service: cost ledger and monthly budget in SQLite.
    public static let budgetService = ServiceDescriptor(name: "budget-service", envPrefix: "KB_BUDGET_SERVICE", defaultPort: 7104, defaultAdminPort: 9104, dataSubdirectory: "budget")
    /// VKB: the HTTP API and the browser visualization.
    public static let vkb = ServiceDescriptor(name: "vkb", envPrefix: "KB_VKB", defaultPort: nil, defaultAdminPort: 8080, dataSubdirectory: nil)

    /// The session learner: `ukb learn --watch` over `KB_LEARN_WATCH`'s folders, which `kb up`
    /// starts after the services when that key is set. Not a service executable of its own (it
    /// is `ukb`), so not in `catalog`; its admin port serves `/health` and `/metrics`.
    public static let sessionLearner = ServiceDescriptor(name: "session-learner", envPrefix: "KB_LEARNER", defaultPort: nil, defaultAdminPort: 9106, dataSubdirectory: nil)

    /// Every service of the system, in start order (stores before the fronts that call them).
    public static let catalog: [ServiceDescriptor] = [.graphStore, .vectorSearch, .budgetService, .inferenceGateway, .vkb]

    /// The catalog entry with this executable name.
    public static func named(_ name: String) -> ServiceDescriptor? {
        catalog.first { $0.name == name }
    }
}
