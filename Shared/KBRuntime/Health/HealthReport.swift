import Foundation
import KBProto
import Synchronization
import KBTime

/// The state of a service or of one of its parts.
public enum HealthStatus: String, Sendable, Codable, Comparable {
    case healthy, degraded, unhealthy

    private var severity: Int {
        switch self {
        case .healthy: 0
        case .degraded: 1
        case .unhealthy: 2
        }
    }

    public static func < (lhs: HealthStatus, rhs: HealthStatus) -> Bool { lhs.severity < rhs.severity }
}

/// One detail of a component's health, kept as its JSON type.
public enum HealthDetail: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }

    var json: Any {
        switch self {
        case .string(let value): value
        case .integer(let value): value
        case .number(let value): value
        case .boolean(let value): value
        }
    }

    var text: String {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .number(let value): String(value)
        case .boolean(let value): String(value)
        }
    }
}

/// The health of one part of a service: a store, a peer, a cache.
public struct ComponentHealth: Sendable, Hashable {
    public var status: HealthStatus
    public var details: [String: HealthDetail]

    /// A component's state with its details (counts, sizes, the error that made it unhealthy).
    public init(_ status: HealthStatus, _ details: [String: HealthDetail] = [:]) {
        self.status = status
        self.details = details
    }
}

/// A whole service's health: the worst of its components.
public struct HealthReport: Sendable {
    public var status: HealthStatus
    public var service: String
    public var version: String
    public var uptimeSeconds: Double
    public var components: [String: ComponentHealth]

    /// The JSON of `GET /health` (docs/ARCHITECTURE.md §4).
    public func jsonData() -> Data {
        var componentObjects: [String: Any] = [:]
        for (name, component) in components {
            var object: [String: Any] = component.details.mapValues(\.json)
            object["status"] = component.status.rawValue
            componentObjects[name] = object
        }
        let object: [String: Any] = [
            "status": status.rawValue,
            "service": service,
            "version": version,
            "uptime_seconds": (uptimeSeconds * 1000).rounded() / 1000,
            "components": componentObjects,
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    /// The report as the health RPC's response.
    public var proto: Kb_Health_V1_HealthCheckResponse {
        var response = Kb_Health_V1_HealthCheckResponse()
        response.status = status == .unhealthy ? .notServing : .serving
        response.service = service
        response.version = version
        response.uptimeSeconds = uptimeSeconds
        for (name, component) in components {
            var health = Kb_Health_V1_ComponentHealth()
            health.status = component.status.rawValue
            health.details = component.details.mapValues(\.text)
            response.components[name] = health
        }
        return response
    }
}

/// Collects a service's health checks and answers `/health`, `/health/ready` and the health RPC.
public final class HealthRegistry: Sendable {
    /// A check of one component; it should answer quickly and never throw.
    public typealias Check = @Sendable () async -> ComponentHealth

    private let service: String
    private let version: String
    private let started = ContinuousClock.now
    private let checks = Mutex<[(name: String, check: Check)]>([])
    private let ready = Atomic<Bool>(false)

    /// A registry for `service` at `version`.
    public init(service: String, version: String) {
        self.service = service
        self.version = version
    }

    /// Adds a component check; its name is the key under `components`.
    public func register(_ name: String, check: @escaping Check) {
        checks.withLock { $0.append((name, check)) }
    }

    /// Marks the service ready (serving) or not (starting, draining).
    public func setReady(_ value: Bool) {
        ready.store(value, ordering: .releasing)
    }

    /// Whether the service has finished starting and is not shutting down.
    public var isReady: Bool { ready.load(ordering: .acquiring) }

    /// Runs every check and combines them: the service is as healthy as its worst component.
    public func report() async -> HealthReport {
        let registered = checks.withLock { $0 }
        var components: [String: ComponentHealth] = [:]
        for (name, check) in registered { components[name] = await check() }
        let uptime = ContinuousClock.now - started
        return HealthReport(
            status: components.values.map(\.status).max() ?? .healthy,
            service: service,
            version: version,
            uptimeSeconds: uptime.inSeconds,
            components: components
        )
    }
}
