/// The methods of `kb.inference.v1.InferenceGateway`.
public enum InferenceGatewayMethods {
    /// The service's full name on the wire.
    public static let service = "kb.inference.v1.InferenceGateway"
    public static let complete = RPCMethod<Kb_Inference_V1_CompletionRequest, Kb_Inference_V1_CompletionResponse>(service: service, method: "Complete")
    public static let embed = RPCMethod<Kb_Inference_V1_EmbedRequest, Kb_Inference_V1_EmbedResponse>(service: service, method: "Embed")
    public static let listProviders = RPCMethod<Kb_Inference_V1_ListProvidersRequest, Kb_Inference_V1_ListProvidersResponse>(service: service, method: "ListProviders")
    public static let getCircuitBreakers = RPCMethod<Kb_Inference_V1_GetCircuitBreakersRequest, Kb_Inference_V1_GetCircuitBreakersResponse>(service: service, method: "GetCircuitBreakers")
    public static let resetCircuitBreaker = RPCMethod<Kb_Inference_V1_ResetCircuitBreakerRequest, Kb_Inference_V1_CircuitBreakerStatus>(service: service, method: "ResetCircuitBreaker")
    public static let getCacheStats = RPCMethod<Kb_Inference_V1_GetCacheStatsRequest, Kb_Inference_V1_GetCacheStatsResponse>(service: service, method: "GetCacheStats")
    public static let clearCache = RPCMethod<Kb_Inference_V1_ClearCacheRequest, Kb_Inference_V1_ClearCacheResponse>(service: service, method: "ClearCache")
}
