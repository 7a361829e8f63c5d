import Foundation
import Logging

/// Writes one JSON object per line: `timestamp`, `level`, `service`, `label`, `message`, `source`,
/// then the metadata. For log collectors; a terminal gets readable text instead.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let service: String

    /// A handler for the logger `label` of `service`.
    public init(label: String, service: String) {
        self.label = label
        self.service = service
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "timestamp": ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds]),
            "level": event.level.rawValue,
            "service": service,
            "label": label,
            "message": event.message.description,
            "source": event.source,
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged where object[key] == nil { object[key] = Self.json(value) }
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        data.append(0x0A)
        FileHandle.standardOutput.write(data)
    }

    private static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): array.map(json)
        case .dictionary(let dictionary): dictionary.mapValues(json)
        }
    }
}

/// Sets up swift-log once per process: JSON lines when stdout is not a terminal (or when asked),
/// readable text when it is.
public enum LogSetup {
    /// Bootstraps the logging system for `service`; later calls in the same process do nothing.
    public static func bootstrap(service: String, level: Logger.Level, format: String) {
        let json = format == "json" || (format == "auto" && isatty(STDOUT_FILENO) == 0)
        Bootstrapper.shared.run("logging") {
            LoggingSystem.bootstrap { label in
                var handler: any LogHandler = json ? JSONLogHandler(label: label, service: service) : StreamLogHandler.standardOutput(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// Runs each named process-wide bootstrap step (logging, metrics) at most once.
final class Bootstrapper: @unchecked Sendable {
    static let shared = Bootstrapper()
    private let lock = NSLock()
    private var done: Set<String> = []
    func run(_ step: String, _ body: () -> Void) {
        lock.withLock {
            guard done.insert(step).inserted else { return }
            body()
        }
    }
}
