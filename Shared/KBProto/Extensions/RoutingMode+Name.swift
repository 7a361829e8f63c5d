extension Kb_Budget_V1_RoutingMode {
    /// The mode as operators and scripts read it: `normal`, `prefer_local`, `local_only`, `blocked`.
    public var name: String {
        switch self {
        case .normal: "normal"
        case .preferLocal: "prefer_local"
        case .localOnly: "local_only"
        case .blocked: "blocked"
        case .UNRECOGNIZED(let value): "unknown(\(value))"
        }
    }
}
