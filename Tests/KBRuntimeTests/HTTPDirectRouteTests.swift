import Foundation
import Hummingbird
import KBRuntime
import KBTestSupport
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// Routes answered straight from the channel pipeline (`HTTPDirectRoute`), beside routes the
/// same router answers through Hummingbird, on a real loopback port.
@Suite("Direct HTTP routes on a real port", .serialized)
struct HTTPDirectRouteTests {
    /// What the routes let the test see and steer.
    final class Probe: Sendable {
        let slowGate = AsyncStream<Void>.makeStream()
        let routerGate = AsyncStream<Void>.makeStream()
        let shutdown: Mutex<(@Sendable () async -> Void)?> = Mutex(nil)
        let streamGate = AsyncStream<Void>.makeStream()
        let waiting = Mutex(false)
        let cancelled = Mutex(false)
    }

    func withServer(_ body: (Int, Probe) async throws -> Void) async throws {
        let probe = Probe()
        let router = Router()
        router.add(middleware: HTTPRequestGuard.Middleware(HTTPRequestGuard(allowList: HTTPHostAllowList(configured: [], boundHost: "127.0.0.1"))))
        router.post("/echo") { request, _ -> Response in
            guard let body = try? await request.body.collect(upTo: 64) else {
                return Response(status: .contentTooLarge, body: .init(byteBuffer: ByteBuffer(string: "too large")))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "echo:" + String(buffer: body))))
        }
        router.post("/slow") { _, _ -> Response in
            for await _ in probe.slowGate.stream { break }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "slow")))
        }
        router.get("/slow-plain") { _, _ -> Response in
            for await _ in probe.routerGate.stream { break }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "slow-plain")))
        }
        router.post("/throws") { _, _ -> Response in
            throw CancellationError()
        }
        router.post("/secret") { request, _ -> Response in
            guard request.headers[.authorization] == "Bearer tok" else { return Response(status: .unauthorized) }
            let body = try await request.body.collect(upTo: 64)
            return Response(status: .ok, body: .init(byteBuffer: body))
        }
        router.post("/collect") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64)
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "collected:" + String(buffer: body))))
        }
        router.get("/plain") { _, _ -> Response in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "plain")))
        }
        router.post("/stream") { _, _ -> Response in
            Response(status: .ok, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "one|"))
                for await _ in probe.streamGate.stream { break }
                try await writer.write(ByteBuffer(string: "two|"))
                try await writer.finish(nil)
            })
        }
        router.post("/wait") { _, _ -> Response in
            probe.waiting.withLock { $0 = true }
            do { try await Task.sleep(for: .seconds(60)) } catch { probe.cancelled.withLock { $0 = true } }
            return Response(status: .ok)
        }
        let listening = AsyncStream<Int>.makeStream()
        let app = AdminServer.application(
            router: router, host: "127.0.0.1", port: 0,
            allowList: HTTPHostAllowList(configured: [], boundHost: "127.0.0.1"),
            direct: ["/echo", "/slow", "/stream", "/wait", "/throws"].map { HTTPDirectRoute(.post, $0, maximumBody: 64) }
                + [HTTPDirectRoute(.post, "/secret", maximumBody: 64, bearerToken: "tok")],
            logger: Logger(label: "direct-test")
        ) { port in listening.continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: Logger(label: "direct-test")))
        probe.shutdown.withLock { $0 = { await group.triggerGracefulShutdown() } }
        let server = Task { try await group.run() }
        defer { server.cancel() }
        var port = 0
        for await bound in listening.stream {
            port = bound
            break
        }
        try await body(port, probe)
    }

    static func request(_ method: String, _ path: String, port: Int, body: String = "", close: Bool = false) -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
            + (method == "POST" ? "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" : "")
            + (close ? "Connection: close\r\n" : "") + "\r\n" + body
    }

    @Test("pipelined requests are answered in order across both paths, a direct one held behind the router's and the router's behind a direct one")
    func pipelinedInOrder() async throws {
        try await withServer { port, probe in
            let connection = try RawConnection(port: port)
            connection.send(
                Self.request("POST", "/slow", port: port) + Self.request("GET", "/plain", port: port)
                    + Self.request("POST", "/echo", port: port, body: "abc") + Self.request("GET", "/plain", port: port)
                    + Self.request("POST", "/echo", port: port, body: "d")
            )
            // Time for a wrong implementation to answer the later requests first.
            try await Task.sleep(for: .milliseconds(300))
            probe.slowGate.continuation.yield()
            let bodies = (0..<5).map { _ in connection.readResponse()?.body }
            #expect(bodies == ["slow", "plain", "echo:abc", "plain", "echo:d"])
        }
    }

    @Test("a body over the route's bound is answered by the handler (it sees one byte more) before the rest is sent; the rest is dropped and the connection serves the next request")
    func bodyOverBound() async throws {
        try await withServer { port, _ in
            let connection = try RawConnection(port: port)
            let whole = Self.request("POST", "/echo", port: port, body: String(repeating: "x", count: 5000))
            connection.send(String(whole.dropLast(4000)))
            let first = connection.readResponse()
            #expect(first?.status == 413 && first?.body == "too large")
            connection.send(String(repeating: "x", count: 4000) + Self.request("POST", "/echo", port: port, body: "next"))
            #expect(connection.readResponse()?.body == "echo:next")
        }
    }

    @Test("a request the route's token or the guard refuses is answered on its head alone: the server waits for no body")
    func refusedOnTheHead() async throws {
        try await withServer { port, _ in
            let connection = try RawConnection(port: port)
            connection.send("POST /secret HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
            #expect(connection.readResponse()?.status == 401)
            let foreign = try RawConnection(port: port)
            foreign.send("POST /secret HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
            #expect(foreign.readResponse()?.status == 421)
            let allowed = try RawConnection(port: port)
            allowed.send("POST /secret HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\nok")
            #expect(allowed.readResponse()?.body == "ok")
        }
    }

    @Test("graceful shutdown waits for the answer under way, direct or the router's, then closes the connection")
    func gracefulShutdown() async throws {
        for (path, method) in [("/slow", "POST"), ("/slow-plain", "GET")] {
            try await withServer { port, probe in
                let connection = try RawConnection(port: port)
                connection.send(Self.request(method, path, port: port))
                try await Task.sleep(for: .milliseconds(200))
                await probe.shutdown.withLock { $0 }?()
                try await Task.sleep(for: .milliseconds(300))
                probe.slowGate.continuation.yield()
                probe.routerGate.continuation.yield()
                let answer = connection.readResponse()
                #expect(answer?.status == 200 && answer?.body == String(path.dropFirst()), "\(path)")
                #expect(connection.closedByPeer(within: 5), "\(path)")
            }
        }
    }

    @Test("a client that half-closes after its request still gets the answer")
    func halfClose() async throws {
        try await withServer { port, _ in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/echo", port: port, body: "half"))
            connection.shutdownWrite()
            #expect(connection.readResponse()?.body == "echo:half")
        }
    }

    @Test("a direct answer carries Date, Server and Content-Length; a handler that throws is a 500")
    func headersAndErrors() async throws {
        try await withServer { port, _ in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/echo", port: port, body: "h"))
            let head = connection.read(until: "\r\n\r\n") ?? ""
            #expect(head.contains("Server: kb-admin") && head.contains("Date: ") && head.contains("Content-Length: 6"), "\(head)")
            #expect(connection.readResponse()?.body == "echo:h")
            connection.send(Self.request("POST", "/throws", port: port))
            #expect(connection.readResponse()?.status == 500)
            connection.send(Self.request("POST", "/echo", port: port, body: "after"))
            #expect(connection.readResponse()?.body == "echo:after")
        }
    }

    @Test("a streamed answer reaches the client part by part: the first part before the second exists")
    func streamedParts() async throws {
        try await withServer { port, probe in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/stream", port: port))
            let early = connection.read(until: "one|")
            #expect(early != nil)
            #expect(early?.contains("two|") == false)
            #expect(early?.lowercased().contains("transfer-encoding: chunked") == true)
            probe.streamGate.continuation.yield()
            #expect(connection.read(until: "two|") != nil)
        }
    }

    @Test("a client whose connection drops (reset) mid-answer cancels the route's task")
    func leavingCancels() async throws {
        try await withServer { port, probe in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/wait", port: port))
            let deadline = ContinuousClock.now + .seconds(10)
            while !probe.waiting.withLock({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(probe.waiting.withLock { $0 })
            connection.reset()
            while !probe.cancelled.withLock({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(probe.cancelled.withLock { $0 }, "the route's sleep was cancelled")
        }
    }

    @Test("a malformed request pipelined behind a direct answer under way gets its 400 after that answer, not inside it; one in the middle of a direct request's body gets it at once")
    func malformedAfterAnswer() async throws {
        try await withServer { port, probe in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/slow", port: port) + "NOT HTTP AT ALL\r\n\r\n")
            // Time for a wrong implementation to write the 400 into the pending answer.
            try await Task.sleep(for: .milliseconds(300))
            probe.slowGate.continuation.yield()
            let answer = connection.readResponse()
            #expect(answer?.status == 200 && answer?.body == "slow")
            #expect(connection.readResponse()?.status == 400)
            #expect(connection.closedByPeer(within: 5))

            let chunked = try RawConnection(port: port)
            chunked.send(Self.badlyChunked("/echo", port: port))
            #expect(chunked.readResponse()?.status == 400)
            #expect(chunked.closedByPeer(within: 5))
        }
    }

    /// A chunked POST whose second chunk size is not hex: the decoder fails in its body.
    static func badlyChunked(_ path: String, port: Int) -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nZZ\r\n"
    }

    @Test("a request cut by a decoding error while held behind a direct answer (a direct route's or the router's) gets its 400 after that answer and the connection closes, instead of waiting for a body that never comes")
    func malformedWhileHeld() async throws {
        for path in ["/echo", "/collect"] {
            try await withServer { port, probe in
                let connection = try RawConnection(port: port)
                connection.send(Self.request("POST", "/slow", port: port) + Self.badlyChunked(path, port: port))
                try await Task.sleep(for: .milliseconds(300))
                probe.slowGate.continuation.yield()
                let answer = connection.readResponse()
                #expect(answer?.status == 200 && answer?.body == "slow", "\(path)")
                #expect(connection.readResponse(within: 5)?.status == 400, "\(path)")
                #expect(connection.closedByPeer(within: 5), "\(path)")
            }
        }
    }

    @Test("Connection: close on a direct request closes after its answer; the guard still refuses a foreign Host")
    func closeAndGuard() async throws {
        try await withServer { port, _ in
            let connection = try RawConnection(port: port)
            connection.send(Self.request("POST", "/echo", port: port, body: "z", close: true))
            #expect(connection.readResponse()?.body == "echo:z")
            #expect(connection.closedByPeer(within: 5))
            let foreign = try RawConnection(port: port)
            foreign.send("POST /echo HTTP/1.1\r\nHost: evil.example:\(port)\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\nq")
            #expect(foreign.readResponse()?.status == 421)
        }
    }
}
