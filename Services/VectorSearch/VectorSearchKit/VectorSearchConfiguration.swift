import KBRuntime

/// Vector search's own configuration (README, "Configuration"), each key declared once.
public struct VectorSearchConfiguration: ServiceOwnConfiguration {
    /// Vector search's keys.
    public enum Keys {
        public static let snapshotEvery = ConfigKey.integer(
            "KB_VECTOR_SNAPSHOT_EVERY", default: 20_000, range: 1...10_000_000,
            meaning: "write log entries between two graph snapshots of a collection (fewer: faster restarts, more disk writes)"
        )
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [Keys.snapshotEvery.documentation]

    /// Write-log entries between two snapshots of a collection's graph.
    public var snapshotEvery: Int

    /// Reads the keys; the error names the bad one.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        snapshotEvery = try source.value(of: Keys.snapshotEvery)
    }
}
