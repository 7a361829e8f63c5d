import KBRuntime

/// The graph store's own configuration: none beyond the keys every service shares
/// (`KB_DATA_DIR`, `KB_GRAPH_STORE_PORT`, …). Declared so the graph store takes the same shape as
/// every other service; a key it needs later is declared here.
public struct GraphStoreConfiguration: ServiceOwnConfiguration {
    /// No keys of its own.
    public static let keys: [ConfigKeyDocumentation] = []

    /// Reads nothing beyond the shared settings.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {}
}
