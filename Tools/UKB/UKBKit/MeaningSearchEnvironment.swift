import Foundation
import KBKnowledge
import KBRPC
import KBRuntime

extension MeaningSearch {
    /// Clients of the gateway and vector-search from the environment (`KB_INFERENCE_GATEWAY_ADDR`,
    /// `KB_VECTOR_SEARCH_ADDR`, `KB_AUTH_TOKEN`), failing fast when one is down.
    public static func fromEnvironment() throws -> MeaningSearch {
        let source = try ConfigSource.fromProcess()
        func client(_ service: ServiceDescriptor) throws -> RPCClient {
            var configuration = try source.clientConfiguration(for: service)
            configuration.connections = 1
            configuration.connectTimeout = .seconds(2)
            return RPCClient(configuration: configuration)
        }
        return MeaningSearch(gateway: try client(.inferenceGateway), vectors: try client(.vectorSearch))
    }
}
