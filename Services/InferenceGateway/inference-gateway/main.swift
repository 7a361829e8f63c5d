// inference-gateway: every LLM call of the system, routed over the configured providers with
// circuit breakers, retries and fallback, served as kb.inference.v1.InferenceGateway, with the
// guide's circuit-breaker endpoints on the admin port.
//
//   inference-gateway      serve (configuration from the environment, README)
import InferenceKit
import KBRuntime

await ServiceRuntime.main(.inferenceGateway) { runtime in
    let configuration = try runtime.load(InferenceConfiguration.self)
    return InferenceGatewayService(configuration: configuration, dataDirectory: runtime.dataDirectory, logger: runtime.logger)
}
