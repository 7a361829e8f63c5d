import Foundation
import Synchronization

/// The names a browser may use to reach one HTTP surface (VKB, a service's admin port): the
/// defence against DNS rebinding, where a hostile page resolves its own name to 127.0.0.1 and
/// sends `Host: evil.example:PORT` with a matching `Origin`.
///
/// An entry is `host` or `host:port` (`[::1]:8080` for IPv6); an entry without a port allows the
/// port the surface listens on. The defaults are the bound address, `localhost`, `127.0.0.1` and
/// `[::1]`, each with the listening port; `KB_HTTP_ALLOWED_HOSTS` replaces them.
public final class HTTPHostAllowList: Sendable {
    /// One allowed authority.
    public struct Entry: Sendable, Hashable, CustomStringConvertible {
        /// The host, lower-cased; IPv6 addresses keep their brackets (`[::1]`).
        public var host: String
        /// The port, or nil for the surface's listening port.
        public var port: Int?

        public var description: String { port.map { "\(host):\($0)" } ?? host }
    }

    /// The allowed authorities.
    public let entries: [Entry]
    private let listeningPort = Atomic<Int>(0)
    /// `host:port` of each entry once the port is known (`listening(on:)`).
    private let exactAuthorities = Mutex<Set<String>>([])

    /// The allow-list of `configured` entries (`host[:port]`), or of the defaults around
    /// `boundHost` when `configured` is empty.
    public init(configured: [String], boundHost: String) {
        let names = configured.isEmpty ? Self.defaultHosts(boundHost: boundHost) : configured
        var entries: [Entry] = []
        for name in names {
            if let entry = Self.authority(name), !entries.contains(entry) { entries.append(entry) }
        }
        self.entries = entries
    }

    /// The defaults: the bound address (unless it is a wildcard), `localhost`, `127.0.0.1`, `[::1]`.
    public static func defaultHosts(boundHost: String) -> [String] {
        var hosts: [String] = []
        let bound = boundHost.contains(":") && !boundHost.hasPrefix("[") ? "[\(boundHost)]" : boundHost
        if !["0.0.0.0", "[::]", ""].contains(bound) { hosts.append(bound) }
        return hosts + ["localhost", "127.0.0.1", "[::1]"]
    }

    /// Tells the list which port the surface listens on (entries without a port take it). Until
    /// then (an in-process router test), only host names are compared.
    public func listening(on port: Int) {
        listeningPort.store(port, ordering: .relaxed)
        // The `Host` values a client sends for the allowed entries, exactly as written: matched
        // first, without parsing (every request of a busy surface carries one of them).
        var exact = Set<String>()
        for entry in entries {
            let entryPort = entry.port ?? port
            exact.insert("\(entry.host):\(entryPort)")
            if entryPort == 80 { exact.insert(entry.host) }
        }
        exactAuthorities.withLock { $0 = exact }
    }

    /// Whether a request's `Host` (its authority, `host[:port]`) is allowed. A request without
    /// one (HTTP/1.0 tools) is allowed: a browser always sends it.
    public func allowsHost(_ authority: String?) -> Bool {
        guard let authority else { return true }
        if exactAuthorities.withLock({ $0.contains(authority) }) { return true }
        guard let given = Self.authority(authority) else { return false }
        return allows(host: given.host, port: given.port ?? 80)
    }

    /// Whether a browser's `Origin` is one of the allowed origins, `http://<allowed host>:<port>`:
    /// scheme, host and port are all compared (`https://127.0.0.1:PORT` and `null` are refused).
    public func allowsOrigin(_ origin: String) -> Bool {
        let prefix = "http://"
        guard origin.lowercased().hasPrefix(prefix) else { return false }
        let rest = origin.dropFirst(prefix.count)
        guard !rest.contains("/"), let given = Self.authority(String(rest)) else { return false }
        return allows(host: given.host, port: given.port ?? 80)
    }

    /// The allowed origins as a person reads them, for error messages.
    public var originsDescription: String {
        let port = listeningPort.load(ordering: .relaxed)
        return entries.map { entry in
            let entryPort = entry.port ?? (port == 0 ? nil : port)
            return "http://\(entry.host)" + (entryPort.map { ":\($0)" } ?? "")
        }.joined(separator: ", ")
    }

    private func allows(host: String, port: Int) -> Bool {
        let listening = listeningPort.load(ordering: .relaxed)
        return entries.contains { entry in
            guard entry.host == host else { return false }
            if let allowed = entry.port { return allowed == port }
            return listening == 0 || listening == port
        }
    }

    /// `host[:port]` split and normalised (lower case, IPv6 in brackets); nil when malformed.
    static func authority(_ text: String) -> Entry? {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !text.isEmpty, !text.contains("@"), !text.contains("/") else { return nil }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[...close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return Entry(host: host, port: nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return Entry(host: host, port: port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            return Entry(host: text, port: nil)
        case 2:
            guard !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
            return Entry(host: String(parts[0]), port: port)
        default:
            return Entry(host: "[\(text)]", port: nil)  // a bare IPv6 address in a configuration
        }
    }
}
