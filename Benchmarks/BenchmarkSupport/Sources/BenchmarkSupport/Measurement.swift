import Foundation

/// A duration in seconds.
public func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A duration in microseconds.
public func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}

/// The `p` quantile (0…1) of already sorted samples; 0 when there are none.
public func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))]
}

/// The median of some values (the mean of the middle two for an even count); 0 when there are none.
public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// What a closed-loop run measured: every completed call's latency, sorted, and the window.
public struct ClosedLoopFigures: Sendable {
    /// Latencies of the calls that started inside the window, in microseconds, sorted.
    public let latenciesMicros: [Double]
    /// The measured window in seconds (the warm-up excluded).
    public let windowSeconds: Double

    public init(latenciesMicros: [Double], windowSeconds: Double) {
        self.latenciesMicros = latenciesMicros
        self.windowSeconds = windowSeconds
    }

    /// Completed calls per second over the window.
    public var throughput: Double { windowSeconds > 0 ? Double(latenciesMicros.count) / windowSeconds : 0 }
    /// The median latency in microseconds.
    public var p50: Double { percentile(latenciesMicros, 0.5) }
    /// The 99th percentile latency in microseconds.
    public var p99: Double { percentile(latenciesMicros, 0.99) }
}

/// Runs `callers` closed loops (each caller calls `operation`, awaits it, and repeats) for a warm-up
/// and then the measured window; a call counts when it starts inside the window. `operation`
/// receives the caller's number (0..<callers) and the caller's own call count.
public func measureClosedLoop(
    callers: Int,
    window: Duration,
    warmUp: Duration = .milliseconds(500),
    _ operation: @escaping @Sendable (_ caller: Int, _ iteration: Int) async throws -> Void
) async throws -> ClosedLoopFigures {
    let measuredFrom = ContinuousClock.now + warmUp
    let end = measuredFrom + window
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { tasks in
        for caller in 0..<callers {
            tasks.addTask {
                var samples: [Double] = []
                samples.reserveCapacity(100_000)
                var iteration = 0
                while true {
                    let start = ContinuousClock.now
                    if start >= end { break }
                    try await operation(caller, iteration)
                    iteration += 1
                    if start >= measuredFrom { samples.append(microseconds(ContinuousClock.now - start)) }
                }
                return samples
            }
        }
        var all: [Double] = []
        for try await samples in tasks { all += samples }
        return all.sorted()
    }
    return ClosedLoopFigures(latenciesMicros: latencies, windowSeconds: seconds(window))
}

/// One row of round-trip figures as a machine-readable line (JSON), so that a reference
/// measured in another process (the gRPC reference) reports in the same shape.
public struct RoundTripLine: Codable, Sendable {
    /// What was measured, e.g. "grpc-swift-2".
    public var system: String
    /// Concurrent closed-loop callers.
    public var callers: Int
    /// Connections the callers shared.
    public var connections: Int
    /// Completed calls per second.
    public var qps: Double
    /// Median latency, µs.
    public var p50Micros: Double
    /// 99th percentile latency, µs.
    public var p99Micros: Double

    public init(system: String, callers: Int, connections: Int, figures: ClosedLoopFigures) {
        self.system = system
        self.callers = callers
        self.connections = connections
        qps = figures.throughput
        p50Micros = figures.p50
        p99Micros = figures.p99
    }

    /// The line as printed: one JSON object.
    public var encoded: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The rows among some printed lines (others are skipped).
    public static func parse(_ text: String) -> [RoundTripLine] {
        text.split(separator: "\n").compactMap { try? JSONDecoder().decode(RoundTripLine.self, from: Data($0.utf8)) }
    }
}
