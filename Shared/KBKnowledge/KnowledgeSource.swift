import KBProto

extension Kb_Graph_V1_Source {
    /// How the source is written in the shared-memory JSON, VKB's API, the CLIs and the graph
    /// store's counters: "auto" for automatic knowledge, "manual" for everything else (an unset
    /// source counts as manual).
    public var name: String { self == .auto ? "auto" : "manual" }

    /// The source written `name` ("manual" or "auto"); nil for any other text.
    public init?(name: String) {
        switch name {
        case "manual": self = .manual
        case "auto": self = .auto
        default: return nil
        }
    }
}
