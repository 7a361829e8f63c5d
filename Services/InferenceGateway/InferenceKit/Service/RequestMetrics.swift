import Metrics
import Synchronization

/// The per-request metric handles, made once per provider and operation: creating a
/// `Timer`/`Counter` goes through the metrics factory (label building and a registry lookup
/// under a lock), too much to do on every request of the hot path.
final class RequestMetrics: Sendable {
    struct Handles: Sendable {
        /// `knowledge_inference_latency_seconds{provider,operation}`
        let latency: Timer
        /// `knowledge_inference_tokens_total{provider,direction}`
        let inputTokens: Counter
        let outputTokens: Counter
        /// `knowledge_inference_fallbacks_total{provider}`
        let fallbacks: Counter
    }

    /// `knowledge_inference_overhead_seconds`: the gateway's own time per answered request.
    let overhead = Timer(label: "knowledge_inference_overhead_seconds")
    private let handles = Mutex<[String: Handles]>([:])

    func handles(provider: String, operation: String) -> Handles {
        let key = provider + "\u{1F}" + operation
        if let known = handles.withLock({ $0[key] }) { return known }
        let made = Handles(
            latency: Timer(label: "knowledge_inference_latency_seconds", dimensions: [("provider", provider), ("operation", operation)]),
            inputTokens: Counter(label: "knowledge_inference_tokens_total", dimensions: [("provider", provider), ("direction", "input")]),
            outputTokens: Counter(label: "knowledge_inference_tokens_total", dimensions: [("provider", provider), ("direction", "output")]),
            fallbacks: Counter(label: "knowledge_inference_fallbacks_total", dimensions: [("provider", provider)])
        )
        // Operations are caller-chosen names: past a bound, handles are made per request instead of kept.
        handles.withLock { if $0.count < 1024 { $0[key] = made } }
        return made
    }
}
