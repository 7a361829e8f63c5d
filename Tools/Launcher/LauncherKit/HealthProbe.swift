import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Reads a service's admin endpoints.
public enum HealthProbe {
    /// What `/health` said, or why it could not be read.
    public struct Reading: Sendable {
        /// `healthy`, `degraded`, `unhealthy`, or `down` when nothing answered.
        public let status: String
        /// HTTP status, 0 when nothing answered.
        public let httpStatus: Int
        /// Seconds since the service started, when reported.
        public let uptimeSeconds: Double?
        /// The components and their status.
        public let components: [String: String]
        /// The raw body.
        public let body: String

        /// Whether the service serves (healthy or degraded).
        public var isServing: Bool { status == "healthy" || status == "degraded" }
    }

    /// GETs `http://host:port/path`; nil when nothing answers.
    public static func get(host: String, port: Int, path: String, timeout: TimeInterval = 2) async -> (status: Int, body: String)? {
        let printable = host.contains(":") ? "[\(host)]" : host
        guard let url = URL(string: "http://\(printable):\(port)\(path)") else { return nil }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else {
            return nil
        }
        return (http.statusCode, String(decoding: data, as: UTF8.self))
    }

    /// Reads `/health`.
    public static func health(host: String, port: Int) async -> Reading {
        guard let (status, body) = await get(host: host, port: port, path: "/health") else {
            return Reading(status: "down", httpStatus: 0, uptimeSeconds: nil, components: [:], body: "")
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        var components: [String: String] = [:]
        for (name, value) in json["components"] as? [String: Any] ?? [:] {
            components[name] = (value as? [String: Any])?["status"] as? String ?? "?"
        }
        return Reading(
            status: json["status"] as? String ?? (status == 200 ? "healthy" : "unhealthy"),
            httpStatus: status,
            uptimeSeconds: json["uptime_seconds"] as? Double,
            components: components,
            body: body
        )
    }

    /// Whether `/health/ready` answers 200.
    public static func isReady(host: String, port: Int) async -> Bool {
        await get(host: host, port: port, path: "/health/ready", timeout: 1)?.status == 200
    }
}
