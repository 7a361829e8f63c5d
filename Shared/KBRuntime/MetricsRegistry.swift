import CoreMetrics
import Prometheus

/// The process's Prometheus registry: swift-metrics is bootstrapped onto it once, and `/metrics`
/// renders it in the Prometheus text format.
public enum MetricsRegistry {
    /// The registry every metric of this process lands in.
    public static let shared: PrometheusCollectorRegistry = PrometheusCollectorRegistry()

    /// A factory writing into `shared`, with histogram buckets suited to our latencies.
    public static let factory: PrometheusMetricsFactory = {
        var factory = PrometheusMetricsFactory(registry: shared)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
            .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        return factory
    }()

    /// Makes `factory` the process's swift-metrics backend (once; later calls do nothing).
    public static func bootstrap() {
        Bootstrapper.shared.run("metrics") { MetricsSystem.bootstrap(factory) }
    }

    /// The registry's content in the Prometheus text exposition format.
    public static func render() -> String {
        shared.emitToString()
    }
}
