import SwiftProtobuf

/// A typed RPC method: its wire name and the messages it takes and returns.
///
/// Servers register handlers against a method and clients call it, so both sides agree on the
/// types at compile time while the wire carries only the name.
public struct RPCMethod<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>: Sendable, Hashable, CustomStringConvertible {
    /// The full name, `package.Service/Method`, e.g. `kb.graph.v1.GraphStore/PutEntities`.
    public let name: String

    /// Creates a method descriptor from its full wire name.
    public init(_ name: String) {
        self.name = name
    }

    /// Creates a method descriptor from its service's full name and the method's short name.
    public init(service: String, method: String) {
        self.name = "\(service)/\(method)"
    }

    public var description: String { name }
}
