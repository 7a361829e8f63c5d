import Foundation
import KBKnowledge
import KBRPC
import KBRuntime

extension MeaningSearch {
    /// Clients of the gateway and vector-search from the environment (`KB_INFERENCE_GATEWAY_ADDR`,
    /// `KB_VECTOR_SEARCH_ADDR`, `KB_AUTH_TOKEN`), failing fast when one is down.
    public static func fromEnvironment() throws -> MeaningSearch {
        let source = try ConfigSource.fromProcess()
        return MeaningSearch(
            gateway: try CommandLineClient.makeClient(.inferenceGateway, source: source),
            vectors: try CommandLineClient.makeClient(.vectorSearch, source: source)
        )
    }
}
