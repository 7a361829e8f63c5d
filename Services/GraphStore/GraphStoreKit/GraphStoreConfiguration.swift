import KBRuntime

/// The graph store's own configuration (README, "Configuration"), each key declared once; the
/// shared keys (`KB_DATA_DIR`, `KB_GRAPH_STORE_PORT`, `KB_RPC_MAX_FRAME_BYTES`, …) come from
/// `ServiceConfiguration`.
public struct GraphStoreConfiguration: ServiceOwnConfiguration {
    /// The graph store's keys.
    public enum Keys {
        public static let maxObservations = ConfigKey.integer(
            "KB_GRAPH_MAX_OBSERVATIONS", default: 10_000, range: 1...1_000_000,
            meaning: "most observations one entity may hold; a write or merge past it is refused (`INVALID_ARGUMENT`, field `observations`)"
        )
        public static let maxEntityBytes = ConfigKey.integer(
            "KB_GRAPH_MAX_ENTITY_BYTES", default: 4_194_304, range: 1024...(1 << 30),
            meaning: "most bytes one entity may take, observations and metadata included; a write or merge past it is refused, so every entity fits in an answer (never more than `KB_RPC_MAX_FRAME_BYTES` less 64 KiB)"
        )
        public static let feedMaxChanges = ConfigKey.integer(
            "KB_GRAPH_FEED_MAX_CHANGES", default: 1_000_000, range: 1...1_000_000_000,
            meaning: "most changes the change feed keeps (`Changes`); older ones are removed with later writes, and a follower whose cursor is older gets `OUT_OF_RANGE` and resynchronises from a snapshot"
        )
        public static let feedMaxAgeSeconds = ConfigKey.integer(
            "KB_GRAPH_FEED_MAX_AGE_SECONDS", default: 604_800, range: 1...315_360_000,
            meaning: "oldest change the change feed keeps, in seconds (7 days by default); whichever of this and `KB_GRAPH_FEED_MAX_CHANGES` keeps fewer applies"
        )
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [
        Keys.maxObservations.documentation, Keys.maxEntityBytes.documentation, Keys.feedMaxChanges.documentation, Keys.feedMaxAgeSeconds.documentation,
    ]

    /// The store's limits: entity size from the keys above, answer size from the frame limit.
    public var limits: GraphLimits
    /// How much of the change feed the store keeps.
    public var feedWindow: FeedWindow

    /// Reads the keys; the error names the bad one.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        let answerBytes = GraphLimits.answerBytes(frameLimit: shared.rpc.maxFrameLength)
        // Never more than one answer holds, whatever the frame limit.
        let maxEntityBytes = min(try source.value(of: Keys.maxEntityBytes), answerBytes)
        limits = GraphLimits(maxObservations: try source.value(of: Keys.maxObservations), maxEntityBytes: maxEntityBytes, maxAnswerBytes: answerBytes)
        feedWindow = FeedWindow(maxChanges: Int64(try source.value(of: Keys.feedMaxChanges)), maxAgeMs: Int64(try source.value(of: Keys.feedMaxAgeSeconds)) * 1000)
    }
}
