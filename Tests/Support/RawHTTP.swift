import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP response read by `RawConnection`: its status and body.
public struct RawResponse: Sendable {
    /// The HTTP status.
    public let status: Int
    /// The body (as much as `Content-Length` announced).
    public let body: String
}

/// A loopback TCP connection driven byte by byte, for what URLSession cannot do: any `Host`
/// header, a header sent slowly, a connection that says nothing.
public final class RawConnection: @unchecked Sendable {
    private let socketDescriptor: Int32
    /// Bytes read past the last response returned (a pipelined answer's start).
    private var pending: [UInt8] = []

    /// Connects to `127.0.0.1:port`.
    public init(port: Int) throws {
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard result == 0 else {
            close(socketDescriptor)
            throw ProcessFailure("cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
    }

    private var isClosed = false

    deinit { if !isClosed { close(socketDescriptor) } }

    /// Closes the sending side only (the peer reads end-of-stream; answers still arrive).
    public func shutdownWrite() {
        shutdown(socketDescriptor, Int32(SHUT_WR))
    }

    /// Drops the connection with a reset (SO_LINGER 0), as a client that vanished; further use
    /// fails.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(socketDescriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        isClosed = true
        close(socketDescriptor)
    }

    /// Sends `text`; false when the peer has closed the connection.
    @discardableResult
    public func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(socketDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Whether the peer closed the connection (EOF or reset) within `seconds`; bytes read before
    /// are dropped.
    public func closedByPeer(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var descriptor = pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&descriptor, 1, remaining) > 0 else { continue }
            let count = recv(socketDescriptor, &buffer, buffer.count, 0)
            if count <= 0 { return true }
        }
        return false
    }

    /// Reads one HTTP response (head and a `Content-Length` body) within `seconds`: its status
    /// and body, or nil when the connection closed or nothing whole came.
    public func readResponse(within seconds: Double = 10) -> RawResponse? {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            if let response = takeResponse() { return response }
            var descriptor = pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            let count = recv(socketDescriptor, &buffer, buffer.count, 0)
            if count <= 0 { return takeResponse() }
            pending.append(contentsOf: buffer[0..<count])
        }
        return takeResponse()
    }

    /// Every byte that arrives until `marker` has (or `seconds` pass, or the peer closes): the
    /// text so far, or nil when the marker never came.
    public func read(until marker: String, within seconds: Double = 10) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            let text = String(decoding: pending, as: UTF8.self)
            if text.contains(marker) { return text }
            var descriptor = pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            let count = recv(socketDescriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: pending, as: UTF8.self)
        return text.contains(marker) ? text : nil
    }

    /// The first whole response in `pending` (a `Content-Length` body), removed from it.
    private func takeResponse() -> RawResponse? {
        guard let end = pending.indices.dropLast(3).first(where: { pending[$0] == 13 && pending[$0 + 1] == 10 && pending[$0 + 2] == 13 && pending[$0 + 3] == 10 }) else { return nil }
        let head = String(decoding: pending[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let first = lines.first, first.hasPrefix("HTTP/1."), let status = Int(first.split(separator: " ").dropFirst().first ?? "") else { return nil }
        let length = lines.dropFirst().first { $0.lowercased().hasPrefix("content-length:") }.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        let bodyStart = end + 4
        guard pending.count - bodyStart >= length else { return nil }
        let body = String(decoding: pending[bodyStart..<(bodyStart + length)], as: UTF8.self)
        pending.removeFirst(bodyStart + length)
        return RawResponse(status: status, body: body)
    }

    /// One whole request on a new connection: `method path` with `headers` (a `Host` among them
    /// as the caller wants it) and `body`; the response, or nil.
    public static func request(port: Int, _ method: String, _ path: String, headers: [(String, String)], body: String = "") throws -> RawResponse? {
        let connection = try RawConnection(port: port)
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "Connection: close\r\n\r\n" + body
        connection.send(text)
        return connection.readResponse()
    }
}
