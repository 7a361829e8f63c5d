import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Testing

@testable import KBRPC

/// A method used only by these tests: sleeps for `service` milliseconds, then echoes it back.
let sleepMethod = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("test.v1.Test/Sleep")
/// Echoes the entities it gets, so tests can send nested messages, repeated fields and maps.
let echoMethod = GraphStoreMethods.putEntities

/// The router the tests serve: health, sleep and echo.
func testRouter(concurrency: ConcurrencyProbe? = nil) -> RPCRouter {
    var router = RPCRouter()
    router.register(HealthMethods.check) { request, _ in
        var response = Kb_Health_V1_HealthCheckResponse()
        response.status = .serving
        response.service = request.service
        return response
    }
    router.register(sleepMethod) { request, _ in
        concurrency?.enter()
        defer { concurrency?.leave() }
        try await Task.sleep(for: .milliseconds(Int(request.service) ?? 0))
        var response = Kb_Health_V1_HealthCheckResponse()
        response.service = request.service
        return response
    }
    router.register(echoMethod) { request, _ in
        var response = Kb_Graph_V1_PutEntitiesResponse()
        response.entities = request.entities
        response.created = Int32(request.entities.count)
        return response
    }
    return router
}

/// Counts how many handlers run at once, and the most ever seen.
final class ConcurrencyProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private(set) var peak = 0
    func enter() { lock.withLock { current += 1; peak = max(peak, current) } }
    func leave() { lock.withLock { current -= 1 } }
}

/// Runs a real server on a free loopback port for the duration of `body`.
func withServer<T: Sendable>(
    configure: (inout RPCServer.Configuration) -> Void = { _ in },
    router: RPCRouter = testRouter(),
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    _ body: @Sendable (RPCServer, Int) async throws -> T
) async throws -> T {
    var configuration = RPCServer.Configuration()
    configuration.port = 0
    configure(&configuration)
    let server = RPCServer(configuration: configuration, router: router, logger: Logger(label: "test-server"), metricsFactory: PrometheusMetricsFactory(registry: registry))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let port = try await server.localAddress.port!
        defer { group.cancelAll() }
        return try await body(server, port)
    }
}

func makeClient(port: Int, configure: (inout RPCClient.Configuration) -> Void = { _ in }) -> RPCClient {
    var configuration = RPCClient.Configuration(host: "127.0.0.1", port: port)
    configure(&configuration)
    return RPCClient(configuration: configuration)
}

/// Expects `body` to throw an `RPCError` with `code`, and returns it.
@discardableResult
func expectRPCError(_ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected \(code.name), the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Runs blocking socket work on a thread of its own, so neither the Swift concurrency pool (two
/// threads on two cores) nor Dispatch's global queues, which back it on Linux, are held up.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A plain blocking TCP socket, for sending exactly the bytes a test wants. Call its blocking
/// reads through `offPool`.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    init(port: Int, receiveTimeout: Int = 5, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }  // deinit closes fd: also after a throw below
        if let source {  // another loopback address as the client's, e.g. 127.0.0.2
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRNOTAVAIL) }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED) }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Sends one frame: the length prefix, then the body.
    func sendFrame(_ body: [UInt8]) {
        send(Self.lengthPrefix(UInt32(body.count)) + body)
    }

    func sendEnvelope(_ envelope: Kb_Rpc_V1_Envelope) throws {
        sendFrame(try envelope.serializedBytes())
    }

    static func lengthPrefix(_ length: UInt32) -> [UInt8] {
        [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
    }

    /// Closes the sending side, so the server reads end-of-file.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads exactly `count` bytes, or nil on end-of-file or timeout.
    func read(_ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return buffer
    }

    /// Reads one response frame, or nil on end-of-file or timeout.
    func readEnvelope() throws -> Kb_Rpc_V1_Envelope? {
        guard let header = read(4) else { return nil }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard let body = read(length) else { return nil }
        return try Kb_Rpc_V1_Envelope(serializedBytes: body)
    }

    /// Whether the server closed the connection (reads end-of-file before the timeout).
    func readsEndOfFile() -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }
}

func healthRequestEnvelope(id: UInt64, method: String = HealthMethods.check.name) throws -> Kb_Rpc_V1_Envelope {
    var envelope = Kb_Rpc_V1_Envelope()
    envelope.id = id
    envelope.method = method
    envelope.payload = try Kb_Health_V1_HealthCheckRequest.with { $0.service = "probe" }.serializedData()
    return envelope
}

/// The value of a Prometheus sample line such as `name{labels} value`, summed over matching lines.
func metricValue(_ registry: PrometheusCollectorRegistry, _ prefix: String) -> Double {
    registry.emitToString().split(separator: "\n")
        .filter { $0.hasPrefix(prefix) }
        .compactMap { Double($0.split(separator: " ").last ?? "") }
        .reduce(0, +)
}
