/// Per-call settings.
public struct CallOptions: Sendable {
    /// How long the caller waits, sent to the server as the request's deadline; nil means the
    /// client's default.
    public var timeout: Duration?
    /// Extra request metadata (e.g. `trace-id`); the client adds `authorization` itself.
    public var metadata: [String: String]

    /// Creates options; the defaults use the client's configuration.
    public init(timeout: Duration? = nil, metadata: [String: String] = [:]) {
        self.timeout = timeout
        self.metadata = metadata
    }
}
