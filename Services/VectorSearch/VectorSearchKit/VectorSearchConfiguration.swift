import KBRuntime

/// Vector search's own configuration (README, "Configuration"), each key declared once.
public struct VectorSearchConfiguration: ServiceOwnConfiguration {
    /// Vector search's keys.
    public enum Keys {
        public static let snapshotEvery = ConfigKey.integer(
            "KB_VECTOR_SNAPSHOT_EVERY", default: 20_000, range: 1...10_000_000,
            meaning: "write log entries between two graph snapshots of a collection (fewer: faster restarts, more disk writes)"
        )
        public static let qdrantPort = ConfigKey<Int?>(
            "KB_VECTOR_QDRANT_PORT", default: 6333, documentedDefault: "`6333`",
            meaning: "the port of vector-search's Qdrant-compatible REST API (Qdrant's own port, so the guide's runbooks and `qdrant-client` work unchanged); 0 picks a free one, `off` serves none"
        ) { raw in
            if raw.trimmingCharacters(in: .whitespaces).lowercased() == "off" { return nil }
            guard let port = Int(raw.trimmingCharacters(in: .whitespaces)), (0...65535).contains(port) else {
                throw InvalidConfigValue("'\(raw)' is not a TCP port (1-65535), 0 for any free port, or off")
            }
            return port
        }
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [Keys.snapshotEvery.documentation, Keys.qdrantPort.documentation]

    /// Write-log entries between two snapshots of a collection's graph.
    public var snapshotEvery: Int
    /// The Qdrant-compatible port (0: any free one), nil when it is off.
    public var qdrantPort: Int?

    /// Reads the keys; the error names the bad one.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        snapshotEvery = try source.value(of: Keys.snapshotEvery)
        qdrantPort = try source.value(of: Keys.qdrantPort)
    }
}
