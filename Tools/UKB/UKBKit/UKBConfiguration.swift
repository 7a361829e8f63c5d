import KBRuntime

/// `ukb`'s own configuration (README, "Configuration"), beside `KB_GRAPH_STORE_ADDR` and
/// `KB_AUTH_TOKEN`, which every client of the graph store reads.
public struct UKBConfiguration: DeclaredConfiguration {
    /// The team used when neither `--team` nor `KB_TEAM` names one.
    public static let defaultTeam = "default"

    /// `ukb`'s keys.
    public enum Keys {
        public static let team = ConfigKey.optionalText(
            "KB_TEAM", documentedDefault: "`\(defaultTeam)`",
            meaning: "the team `ukb` reads and writes when `--team` is not given"
        )
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [Keys.team.documentation]

    /// The team named by `KB_TEAM` in `source`, if any.
    public static func team(in source: ConfigSource) -> String? {
        try? source.value(of: Keys.team)
    }
}
