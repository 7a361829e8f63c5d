import KBProto

/// The failure of an RPC: a status code a caller can switch on and a message a person can act on.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A status code of the gRPC set, with the gRPC numbering (ARCHITECTURE §3).
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

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong, in words a person can act on.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The error carried by a response's status, or nil when the status is OK.
    public init?(status: Kb_Rpc_V1_Status) {
        guard status.code != .ok else { return nil }
        self.init(Code(status.code), status.message)
    }

    /// The error as a protobuf status for a response envelope.
    public var status: Kb_Rpc_V1_Status {
        var status = Kb_Rpc_V1_Status()
        status.code = code.proto
        status.message = message
        return status
    }

    public var description: String { "\(code.name): \(message)" }
}

extension RPCError {
    /// `INVALID_ARGUMENT` naming the field and the rule it broke.
    public static func invalidArgument(field: String, _ rule: String) -> RPCError {
        RPCError(.invalidArgument, "\(field): \(rule)")
    }
}
