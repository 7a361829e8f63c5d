/// Why the embedding engine cannot run: a code a caller can switch on and a message that says
/// what to do about it.
public struct EmbeddingError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The name shown in messages.
        public let description: String

        /// The model's files are not where they were looked for.
        public static let modelNotFound = Code(description: "MODEL_NOT_FOUND")
        /// The model's files are there but cannot be read as all-MiniLM-L6-v2.
        public static let modelInvalid = Code(description: "MODEL_INVALID")
        /// OpenBLAS (libopenblas.so.0) cannot be loaded or lacks a symbol.
        public static let blasUnavailable = Code(description: "BLAS_UNAVAILABLE")
        /// The caller asked for something the engine cannot do (e.g. zero threads).
        public static let invalidArgument = Code(description: "INVALID_ARGUMENT")
    }

    /// What kind of failure it is.
    public let code: Code
    /// What went wrong and what would fix it.
    public let message: String

    /// A failure with its code and an actionable message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
