import KBProto

/// Where an entity's knowledge came from. Everything not marked automatic counts as manual.
public enum KnowledgeSource: Sendable, Hashable {
    /// Written by a person (and anything not marked automatic).
    case manual
    /// Extracted by a program.
    case auto

    /// How the source is written in the shared-memory JSON, VKB's API, the CLIs and the graph
    /// store's counters: "manual" or "auto".
    public var name: String { self == .auto ? "auto" : "manual" }

    /// The source written `name` ("manual" or "auto"); nil for any other text.
    public init?(name: String) {
        switch name {
        case "manual": self = .manual
        case "auto": self = .auto
        default: return nil
        }
    }

    /// The source of a message: automatic, or manual for anything else (unset included).
    public init(_ source: Kb_Graph_V1_Source) {
        self = source == .auto ? .auto : .manual
    }
}

extension Kb_Graph_V1_Source {
    /// The source as a message field.
    public init(_ source: KnowledgeSource) {
        self = source == .auto ? .auto : .manual
    }

    /// "auto" for automatic knowledge, "manual" for everything else (unset included).
    public var name: String { KnowledgeSource(self).name }

    /// The source written `name` ("manual" or "auto"); nil for any other text.
    public init?(name: String) {
        guard let source = KnowledgeSource(name: name) else { return nil }
        self.init(source)
    }
}
