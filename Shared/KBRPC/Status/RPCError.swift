import KBProto

/// The failure of an RPC: a status code a caller can switch on and a message a person can act on.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A status code of the gRPC set, with the gRPC numbering (docs/ARCHITECTURE.md §3).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The wire value.
        public let rawValue: Int

        /// Wraps a wire value; values outside the known set are kept as they are.
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let `internal` = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        /// The gRPC name, e.g. `INVALID_ARGUMENT`; used in logs and metric labels.
        public var name: String {
            Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
        }

        public var description: String { name }

        /// The code as the generated protobuf enum.
        public var proto: Kb_Rpc_V1_Code { Kb_Rpc_V1_Code(rawValue: rawValue) ?? .unknown }

        /// The code carried by a protobuf status.
        public init(_ proto: Kb_Rpc_V1_Code) { self.rawValue = proto.rawValue }
    }

    /// Why a request failed, machine-readable: an `UPPER_SNAKE` word a client can switch on, carried
    /// in `kb.rpc.v1.Status.reason` and in the `reason` of HTTP error bodies. The set is small and
    /// closed on our side; a client treats an unknown value like none (new ones may be added).
    public struct Reason: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
        /// The wire value, e.g. `TOO_LONG`.
        public let rawValue: String

        /// Wraps a wire value; values outside the known set are kept as they are.
        public init(rawValue: String) { self.rawValue = rawValue }

        public init(stringLiteral value: String) { self.rawValue = value }

        /// A required value is missing or empty.
        public static let required = Reason(rawValue: "REQUIRED")
        /// A text is longer than its limit.
        public static let tooLong = Reason(rawValue: "TOO_LONG")
        /// A list holds more items than its limit.
        public static let tooMany = Reason(rawValue: "TOO_MANY")
        /// A number is outside its range (not finite counts as outside).
        public static let outOfRange = Reason(rawValue: "OUT_OF_RANGE")
        /// A name (entity, team, collection) holds characters its rule does not allow.
        public static let nameInvalid = Reason(rawValue: "NAME_INVALID")
        /// A value is malformed: not a cursor, not a path, control characters, wrong JSON type.
        public static let invalidFormat = Reason(rawValue: "INVALID_FORMAT")
        /// An enumerated value outside its known set (a sort, a direction, a period).
        public static let unknownValue = Reason(rawValue: "UNKNOWN_VALUE")
        /// A value contradicts another field or the stored state (a vector's dimension, `to_ms`
        /// before `from_ms`, a cursor of another query).
        public static let inconsistent = Reason(rawValue: "INCONSISTENT")
        /// The value names something that does not exist (a relation's end, a model's price).
        public static let notFound = Reason(rawValue: "NOT_FOUND")

        /// A model's answer did not follow the JSON Schema the request gave, even after a retry
        /// (the inference gateway's structured output): not a fault of the request's fields.
        public static let schemaMismatch = Reason(rawValue: "SCHEMA_MISMATCH")

        /// Every reason this system sends, in the order the README documents them.
        public static let all: [Reason] = [.required, .tooLong, .tooMany, .outOfRange, .nameInvalid, .invalidFormat, .unknownValue, .inconsistent, .notFound, .schemaMismatch]

        public var description: String { rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong, in words a person can act on; starts with `field: ` when `field` is set.
    public var message: String
    /// The request field at fault, a dotted path with zero-based indexes (`entities[0].name`,
    /// `events[3].cost_usd`); nil when no one field is at fault.
    public var field: String?
    /// Why, machine-readable; nil when unspecified.
    public var reason: Reason?

    /// Creates an error with a code and a message, naming no field.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Creates an error about one request field: the message reads `field: rule` for people,
    /// and `field` and `reason` travel structured for programs.
    public init(_ code: Code, field: String, reason: Reason?, _ rule: String) {
        self.code = code
        self.message = "\(field): \(rule)"
        self.field = field
        self.reason = reason
    }

    /// Creates an error from its parts as they are (the message is not prefixed).
    public init(code: Code, message: String, field: String?, reason: Reason?) {
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
    }

    /// The error carried by a response's status, or nil when the status is OK.
    public init?(status: Kb_Rpc_V1_Status) {
        guard status.code != .ok else { return nil }
        self.init(
            code: Code(status.code),
            message: status.message,
            field: status.field.isEmpty ? nil : status.field,
            reason: status.reason.isEmpty ? nil : Reason(rawValue: status.reason)
        )
    }

    /// The error as a protobuf status for a response envelope.
    public var status: Kb_Rpc_V1_Status {
        var status = Kb_Rpc_V1_Status()
        status.code = code.proto
        status.message = message
        status.field = field ?? ""
        status.reason = reason?.rawValue ?? ""
        return status
    }

    public var description: String { "\(code.name): \(message)" }
}

extension RPCError {
    /// `INVALID_ARGUMENT` about `field` (structured, and first in the message: `field: rule`),
    /// with the machine-readable `reason` it broke.
    public static func invalidArgument(field: String, reason: Reason? = nil, _ rule: String) -> RPCError {
        RPCError(.invalidArgument, field: field, reason: reason, rule)
    }
}
