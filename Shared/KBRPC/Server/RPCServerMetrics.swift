import CoreMetrics
import Synchronization

/// The server's metrics: per-method request counts, error counts by code and latency histograms,
/// malformed frames by reason, and connection counts.
final class RPCServerMetrics: Sendable {
    private struct MethodMetrics {
        let requests: Counter
        let duration: Timer
    }

    private let factory: any MetricsFactory
    /// The registered methods' metrics, made once so the hot path reads them without a lock.
    private let known: [String: MethodMetrics]
    private let methods = Mutex<[String: MethodMetrics]>([:])
    private let errors = Mutex<[String: Counter]>([:])
    let connectionsActive: Meter
    let connectionsTotal: Counter
    let connectionsRejected: Counter

    init(factory: any MetricsFactory, methods: [String] = []) {
        self.factory = factory
        var known: [String: MethodMetrics] = [:]
        for method in methods + ["unknown"] { known[method] = Self.metrics(for: method, factory: factory) }
        self.known = known
        connectionsActive = Meter(label: "kb_rpc_connections_active", factory: factory)
        connectionsTotal = Counter(label: "kb_rpc_connections_total", factory: factory)
        connectionsRejected = Counter(label: "kb_rpc_connections_rejected_total", factory: factory)
    }

    /// Records one finished request. `method` must be a registered name or a fixed label such as
    /// "unknown", so that label values stay bounded.
    func record(method: String, code: RPCError.Code, nanoseconds: Int64) {
        let metrics = known[method] ?? methods.withLock { table in
            if let found = table[method] { return found }
            let made = Self.metrics(for: method, factory: factory)
            table[method] = made
            return made
        }
        metrics.requests.increment()
        metrics.duration.recordNanoseconds(nanoseconds)
        if code != .ok {
            let key = "\(method)|\(code.name)"
            let counter = errors.withLock { table in
                if let found = table[key] { return found }
                let made = Counter(label: "kb_rpc_errors_total", dimensions: [("method", method), ("code", code.name)], factory: factory)
                table[key] = made
                return made
            }
            counter.increment()
        }
    }

    private static func metrics(for method: String, factory: any MetricsFactory) -> MethodMetrics {
        MethodMetrics(
            requests: Counter(label: "kb_rpc_requests_total", dimensions: [("method", method)], factory: factory),
            duration: Timer(label: "kb_rpc_request_duration_seconds", dimensions: [("method", method)], factory: factory)
        )
    }

    /// Records a frame that broke the protocol and ended its connection.
    func recordMalformedFrame(reason: String) {
        Counter(label: "kb_rpc_malformed_frames_total", dimensions: [("reason", reason)], factory: factory).increment()
    }
}
