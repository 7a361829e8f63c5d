import KBKnowledge
import KBRPC

/// One observation of an entity: a typed piece of text with its date, tags and metadata.
public struct Observation: Sendable, Hashable {
    public var type: String
    public var content: String
    /// As given (ISO 8601 in the shared-memory JSON), kept verbatim for lossless round trips.
    public var date: String
    public var tags: [String]
    public var metadata: [String: String]

    public init(type: String = "", content: String, date: String = "", tags: [String] = [], metadata: [String: String] = [:]) {
        self.type = type
        self.content = content
        self.date = date
        self.tags = tags
        self.metadata = metadata
    }
}

/// An entity as stored: every field has its value (defaults filled in by the store).
public struct Entity: Sendable, Hashable {
    public var team: String
    public var name: String
    public var entityType: String
    public var observations: [Observation]
    /// 1–10.
    public var significance: Int32
    /// In (0, 1].
    public var confidence: Double
    public var source: KnowledgeSource
    public var metadata: [String: String]
    /// Unix milliseconds.
    public var createdAtMs: Int64
    /// Unix milliseconds.
    public var lastModifiedMs: Int64

    public init(team: String, name: String, entityType: String, observations: [Observation] = [], significance: Int32 = 5, confidence: Double = 1,
                source: KnowledgeSource = .manual, metadata: [String: String] = [:], createdAtMs: Int64, lastModifiedMs: Int64) {
        self.team = team
        self.name = name
        self.entityType = entityType
        self.observations = observations
        self.significance = significance
        self.confidence = confidence
        self.source = source
        self.metadata = metadata
        self.createdAtMs = createdAtMs
        self.lastModifiedMs = lastModifiedMs
    }
}

/// What a caller writes about one entity: a new name creates it (the type is then required), a
/// known one takes the fields given (nil: keep) and gains the observations it does not have yet.
public struct EntityInput: Sendable, Hashable {
    public var name: String
    /// Required for a new entity; nil keeps an existing entity's type.
    public var entityType: String?
    public var observations: [Observation]
    /// nil: 5 for a new entity, unchanged for an existing one.
    public var significance: Int32?
    /// nil: 1 for a new entity, unchanged for an existing one.
    public var confidence: Double?
    /// nil: manual for a new entity, unchanged for an existing one.
    public var source: KnowledgeSource?
    /// Merged into an existing entity's metadata (a key given replaces the old value).
    public var metadata: [String: String]
    /// nil: the last-modified time given, else now (only for a new entity).
    public var createdAtMs: Int64?
    /// nil: now.
    public var lastModifiedMs: Int64?

    public init(name: String, entityType: String? = nil, observations: [Observation] = [], significance: Int32? = nil, confidence: Double? = nil,
                source: KnowledgeSource? = nil, metadata: [String: String] = [:], createdAtMs: Int64? = nil, lastModifiedMs: Int64? = nil) {
        self.name = name
        self.entityType = entityType
        self.observations = observations
        self.significance = significance
        self.confidence = confidence
        self.source = source
        self.metadata = metadata
        self.createdAtMs = createdAtMs
        self.lastModifiedMs = lastModifiedMs
    }
}

/// Which relation: its two ends (entity names of one team) and its type.
public struct RelationID: Sendable, Hashable {
    public var from: String
    public var relationType: String
    public var to: String

    public init(from: String, relationType: String, to: String) {
        self.from = from
        self.relationType = relationType
        self.to = to
    }
}

/// A relation as stored: every field has its value.
public struct Relation: Sendable, Hashable {
    public var team: String
    public var id: RelationID
    /// In (0, 1].
    public var confidence: Double
    /// 1–10.
    public var significance: Int32
    /// Unix milliseconds.
    public var createdAtMs: Int64
    public var metadata: [String: String]

    public init(team: String, id: RelationID, confidence: Double = 1, significance: Int32 = 5, createdAtMs: Int64, metadata: [String: String] = [:]) {
        self.team = team
        self.id = id
        self.confidence = confidence
        self.significance = significance
        self.createdAtMs = createdAtMs
        self.metadata = metadata
    }
}

/// What a caller writes to create one relation; an existing one (same ends and type) is left as
/// it is.
public struct RelationInput: Sendable, Hashable {
    public var id: RelationID
    /// nil: 1.
    public var confidence: Double?
    /// nil: 5.
    public var significance: Int32?
    /// nil: now.
    public var createdAtMs: Int64?
    public var metadata: [String: String]

    public init(id: RelationID, confidence: Double? = nil, significance: Int32? = nil, createdAtMs: Int64? = nil, metadata: [String: String] = [:]) {
        self.id = id
        self.confidence = confidence
        self.significance = significance
        self.createdAtMs = createdAtMs
        self.metadata = metadata
    }
}

/// One entity with the relations that start and end at it.
public struct EntityWithRelations: Sendable, Hashable {
    public var entity: Entity
    public var outbound: [Relation]
    public var inbound: [Relation]
}

/// What a graph store operation could not do: a code a caller can switch on, a message a person
/// can act on, and the input it is about (e.g. `entities[2].entity_type`), when there is one.
/// The RPC face turns it into a status (`GraphStoreService`).
public struct GraphStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Sendable, Hashable {
        /// An input is not acceptable in the store's current state (e.g. a new entity without a type).
        case invalidArgument
        /// The entity asked for does not exist.
        case notFound
        /// The write needs something that is not there (e.g. a relation's end entity).
        case failedPrecondition
        /// A stored record does not decode.
        case dataLoss
        /// The store is shutting down.
        case unavailable
        /// LevelDB failed.
        case internalError
    }

    public var code: Code
    public var message: String
    /// The input the error is about, in the request's terms; nil when it is about none.
    public var field: String?
    /// Which rule it broke, machine-readable; sent in the status beside the field.
    public var reason: RPCError.Reason?

    public init(_ code: Code, _ message: String, field: String? = nil, reason: RPCError.Reason? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }
}
