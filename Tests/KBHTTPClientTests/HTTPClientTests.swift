import Foundation
import KBHTTPClient
import KBTestSupport
import Testing

/// The libcurl client against a loopback server that answers, hangs, drips, resets and streams.
@Suite("HTTP client (libcurl) against a scripted loopback server", .serialized)
struct HTTPClientTests {
    func withServer(_ body: (ScriptedHTTPServer, HTTPClient) async throws -> Void) async throws {
        let server = try ScriptedHTTPServer()
        let client = HTTPClient()
        defer {
            client.shutdown()
            server.stop()
        }
        try await body(server, client)
    }

    @Test("requests reuse one kept-alive connection; bodies, methods and headers go out as given")
    func keepAliveAndEcho() async throws {
        try await withServer { server, client in
            for _ in 0..<20 {
                let (head, body) = try await client.fetch(HTTPRequest(url: server.url("/ok")))
                #expect(head.status == 200)
                #expect(head.version == "HTTP/1.1")
                #expect(String(decoding: body, as: UTF8.self) == "hello")
            }
            #expect(server.stats.withLockedValue { $0.accepted } == 1, "20 sequential requests should share one connection")

            let payload = Array(#"{"model":"m","messages":[{"role":"user","content":"héllo"}]}"#.utf8) + [UInt8](repeating: 0x20, count: 200_000)
            let (head, body) = try await client.fetch(.postJSON(server.url("/echo"), body: payload, headers: [("Authorization", "Bearer k"), ("X-Trace", "t1")]))
            #expect(head.status == 200)
            #expect(body == payload)
            #expect(head.header("x-method") == "POST")
            #expect(head.header("X-Seen-Authorization") == "Bearer k")
            #expect(head.header("X-Seen-X-Trace") == "t1")
            #expect(head.header("X-Seen-User-Agent")?.hasPrefix("kb-http-client") == true)

            let put = try await client.fetch(HTTPRequest(method: "PUT", url: server.url("/echo"), body: Array("p".utf8)))
            #expect(put.head.header("X-Method") == "PUT" && put.body == Array("p".utf8))
            let delete = try await client.fetch(HTTPRequest(method: "DELETE", url: server.url("/echo")))
            #expect(delete.head.header("X-Method") == "DELETE" && delete.body.isEmpty)
        }
    }

    @Test("64 concurrent requests each get their own answer")
    func concurrent() async throws {
        try await withServer { server, client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        let body = Array("request-\(index)".utf8)
                        let answer = try await client.fetch(.postJSON(server.url("/echo"), body: body))
                        #expect(answer.body == body)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("error statuses are answers with their headers (429 with retry-after)")
    func errorStatus() async throws {
        try await withServer { server, client in
            let (head, body) = try await client.fetch(HTTPRequest(url: server.url("/status/429")))
            #expect(head.status == 429)
            #expect(head.header("retry-after") == "7")
            #expect(String(decoding: body, as: UTF8.self).contains("scripted"))
            #expect(try await client.fetch(HTTPRequest(url: server.url("/status/529"))).head.status == 529)
        }
    }

    @Test("a server that never answers hits the total time limit")
    func hang() async throws {
        try await withServer { server, client in
            await #expect(throws: HTTPClientError.self) {
                do {
                    _ = try await client.fetch(HTTPRequest(url: server.url("/hang"), timeouts: HTTPTimeouts(total: .milliseconds(800))))
                } catch let error as HTTPClientError {
                    #expect(error.kind == .timedOut, "\(error)")
                    #expect(error.isTransient)
                    throw error
                }
            }
        }
    }

    @Test("a short time limit set while the client's thread sleeps toward a far one still fires on time (the starting thread re-arms its timer)")
    func shortLimitMovesTheTimer() async throws {
        try await withServer { server, client in
            // Only a far limit is pending (no low-speed checks): the client's thread sleeps toward
            // it. A later request's 200 ms limit must move its timer, not wait for the far one.
            let far = Task {
                try await client.fetch(HTTPRequest(url: server.url("/hang"), timeouts: HTTPTimeouts(total: .seconds(30), lowSpeedBytesPerSecond: 0)))
            }
            try await Task.sleep(for: .milliseconds(300))
            // A second connection, left idle: the short request below goes out on it from the
            // calling task, so no new socket stirs the client's thread.
            #expect(try await client.fetch(HTTPRequest(url: server.url("/ok"))).head.status == 200)
            #expect(server.stats.withLockedValue { $0.accepted } == 2)
            try await Task.sleep(for: .milliseconds(300))
            let clock = ContinuousClock()
            let start = clock.now
            do {
                _ = try await client.fetch(HTTPRequest(url: server.url("/hang"), timeouts: HTTPTimeouts(total: .milliseconds(200), lowSpeedBytesPerSecond: 0)))
                Issue.record("a hanging server answered")
            } catch let error as HTTPClientError {
                #expect(error.kind == .timedOut, "\(error)")
            }
            let waited = clock.now - start
            #expect(waited < .seconds(5), "the 200 ms limit fired after \(waited)")
            #expect(server.stats.withLockedValue { $0.accepted } == 2, "both went out on the kept-alive connections")
            far.cancel()
            await #expect(throws: HTTPClientError.self) { _ = try await far.value }
        }
    }

    @Test("while a first request to a plain-HTTP host waits for its answer, a second one to that host gets a connection of its own at once")
    func secondRequestDoesNotWaitForTheFirst() async throws {
        try await withServer { server, client in
            let first = Task { try await client.fetch(HTTPRequest(url: server.url("/hang"), timeouts: HTTPTimeouts(total: .seconds(30)))) }
            try await Task.sleep(for: .milliseconds(300))
            // The first connection has not answered yet: libcurl must not park this request
            // until it does (HTTP/2 multiplexing is for TLS only).
            let (head, body) = try await client.fetch(HTTPRequest(url: server.url("/ok"), timeouts: HTTPTimeouts(total: .seconds(10))))
            #expect(head.status == 200 && body == Array("hello".utf8))
            #expect(server.stats.withLockedValue { $0.accepted } == 2)
            first.cancel()
            await #expect(throws: HTTPClientError.self) { _ = try await first.value }
        }
    }

    @Test("requests started from many tasks at once while others are cancelled mid-flight: every answer reaches its own caller, every cancelled one fails as cancelled")
    func startsFromManyThreads() async throws {
        try await withServer { server, client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in 0..<40 {
                            if index % 5 == 4 {
                                let hanging = Task { try await client.fetch(HTTPRequest(url: server.url("/hang"))) }
                                try await Task.sleep(for: .milliseconds(Int.random(in: 0...5)))
                                hanging.cancel()
                                do {
                                    _ = try await hanging.value
                                    Issue.record("a cancelled request to a hanging server answered")
                                } catch let error as HTTPClientError {
                                    #expect(error.kind == .cancelled, "\(error)")
                                }
                            } else {
                                let body = Array("worker-\(worker)-request-\(index)".utf8)
                                let answer = try await client.fetch(.postJSON(server.url("/echo"), body: body))
                                #expect(answer.body == body)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let (head, body) = try await client.fetch(HTTPRequest(url: server.url("/ok")))
            #expect(head.status == 200 && body == Array("hello".utf8))
        }
    }

    @Test("a server that drips a byte a second hits the low-speed limit, whatever the total limit")
    func drip() async throws {
        try await withServer { server, client in
            let timeouts = HTTPTimeouts(total: .seconds(60), lowSpeedBytesPerSecond: 100, lowSpeedTime: .seconds(2))
            let response = try await client.execute(HTTPRequest(url: server.url("/drip"), timeouts: timeouts))
            #expect(response.head.status == 200)
            do {
                _ = try await response.body.collect(upTo: 10_000)
                Issue.record("a dripping body was read to its end")
            } catch let error as HTTPClientError {
                #expect(error.kind == .tooSlow, "\(error)")
            }
        }
    }

    @Test("a connection reset mid-body fails the read after the bytes that came")
    func resetMidBody() async throws {
        try await withServer { server, client in
            let response = try await client.execute(HTTPRequest(url: server.url("/reset")))
            var received: [UInt8] = []
            do {
                for try await chunk in response.body { received += chunk }
                Issue.record("a reset body ended cleanly")
            } catch let error as HTTPClientError {
                #expect(error.kind == .connectionLost, "\(error)")
                #expect(error.isTransient)
            }
            #expect(String(decoding: received, as: UTF8.self) == "0123456789")
        }
    }

    @Test("nothing listening: a connect error")
    func refused() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        // Bind and close a port so nothing listens on it.
        let server = try ScriptedHTTPServer()
        let port = server.port
        server.stop()
        do {
            _ = try await client.fetch(HTTPRequest(url: "http://127.0.0.1:\(port)/ok", timeouts: HTTPTimeouts(connect: .seconds(2))))
            Issue.record("a request to a closed port succeeded")
        } catch let error as HTTPClientError {
            #expect(error.kind == .connect, "\(error)")
        }
    }

    @Test("cancelling the task aborts the transfer and closes its connection")
    func cancellation() async throws {
        try await withServer { server, client in
            let task = Task { try await client.fetch(HTTPRequest(url: server.url("/hang"), timeouts: HTTPTimeouts(total: .seconds(30)))) }
            #expect(await server.wait { $0.requests.contains("GET /hang") })
            task.cancel()
            do {
                _ = try await task.value
                Issue.record("a cancelled request succeeded")
            } catch let error as HTTPClientError {
                #expect(error.kind == .cancelled)
            }
            #expect(await server.wait { $0.closed == 1 }, "the aborted transfer's connection was closed")

            // A body abandoned while streaming aborts too.
            var response: HTTPResponse? = try await client.execute(HTTPRequest(url: server.url("/drip"), timeouts: HTTPTimeouts(total: .seconds(30))))
            #expect(response?.head.status == 200)
            response = nil
            #expect(await server.wait { $0.closed == 2 }, "the abandoned body's connection was closed")
        }
    }

    @Test("a body over the caller's bound fails with tooLarge; a slow reader of a big body gets every byte")
    func bigBodies() async throws {
        try await withServer { server, client in
            do {
                _ = try await client.fetch(HTTPRequest(url: server.url("/big")), maximumBodyBytes: 1 << 20)
                Issue.record("a 4 MiB body passed a 1 MiB bound")
            } catch let error as HTTPClientError {
                #expect(error.kind == .tooLarge)
            }
            let response = try await client.execute(HTTPRequest(url: server.url("/big")))
            var count = 0
            for try await chunk in response.body {
                count += chunk.count
                if count < 64 << 10 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(count == 4 << 20)
        }
    }

    @Test("Server-Sent Events arrive as they are sent: comments skipped, multi-line data joined, CRLF accepted, ids kept")
    func serverSentEvents() async throws {
        try await withServer { server, client in
            let response = try await client.execute(HTTPRequest(url: server.url("/sse"), timeouts: HTTPTimeouts(total: .seconds(20))))
            #expect(response.head.header("content-type") == "text/event-stream")
            var events = response.body.serverSentEvents().makeAsyncIterator()
            // The first event is read while the server still holds the rest back.
            #expect(try await events.next() == ServerSentEvent(event: "message_start", data: #"{"n":1}"#))
            server.openGate()
            #expect(try await events.next() == ServerSentEvent(event: "message", data: "line one\nline two"))
            #expect(try await events.next() == ServerSentEvent(event: "message_stop", data: #"{"n":3}"#, id: "7"))
            #expect(try await events.next() == nil)
        }
    }

    @Test("NDJSON lines arrive as they are sent; split lines are joined, blank lines skipped, a last line without newline kept")
    func ndjson() async throws {
        try await withServer { server, client in
            let response = try await client.execute(HTTPRequest(url: server.url("/ndjson"), timeouts: HTTPTimeouts(total: .seconds(20))))
            var lines = response.body.lines().makeAsyncIterator()
            #expect(try await lines.next().map { String(decoding: $0, as: UTF8.self) } == #"{"a":1}"#)
            server.openGate()
            #expect(try await lines.next().map { String(decoding: $0, as: UTF8.self) } == #"{"a":2}"#)
            #expect(try await lines.next().map { String(decoding: $0, as: UTF8.self) } == #"{"a":3}"#)
            #expect(try await lines.next() == nil)
        }
    }

    @Test("a header with a line break is refused before anything is sent; other schemes are refused")
    func invalidRequests() async throws {
        try await withServer { server, client in
            do {
                _ = try await client.fetch(HTTPRequest(url: server.url("/ok"), headers: [("X-Evil", "a\r\nInjected: yes")]))
                Issue.record("a header with CRLF was sent")
            } catch let error as HTTPClientError {
                #expect(error.kind == .invalidRequest)
            }
            do {
                _ = try await client.fetch(HTTPRequest(url: "file:///etc/passwd"))
                Issue.record("a file:// URL was fetched")
            } catch let error as HTTPClientError {
                #expect(error.kind == .invalidRequest)
            }
            #expect(server.stats.withLockedValue { $0.requests.isEmpty })
        }
    }

    @Test("after shutdown requests fail with shutDown")
    func shutdown() async throws {
        let client = HTTPClient()
        client.shutdown()
        do {
            _ = try await client.fetch(HTTPRequest(url: "http://127.0.0.1:1/"))
            Issue.record("a request after shutdown ran")
        } catch let error as HTTPClientError {
            #expect(error.kind == .shutDown)
        }
    }

    @Test("HTTP/2 where a TLS server offers it (ALPN): concurrent requests are multiplexed over one connection")
    func http2() async throws {
        guard (try? runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import hypercorn"]).status) == 0 else {
            Issue.record("hypercorn is not installed (scripts/setup-system.sh --test installs it)")
            return
        }
        let directory = temporaryDirectory("kb-h2")
        let certificate = directory.appendingPathComponent("cert.pem").path, key = directory.appendingPathComponent("key.pem").path
        let made = try runProgram(URL(fileURLWithPath: "/usr/bin/openssl"), [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate,
        ])
        #expect(made.status == 0, "\(made.stderr)")
        // Answers with the HTTP version the server spoke and the client's port (one port: one connection).
        try #"""
            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                body = ("%s %d" % (scope["http_version"], scope["client"][1])).encode()
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": body})
            """#.write(to: directory.appendingPathComponent("app.py"), atomically: true, encoding: .utf8)
        let port = freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-m", "hypercorn", "--certfile", certificate, "--keyfile", key, "--bind", "127.0.0.1:\(port)", "app:app"]
        server.currentDirectoryURL = directory
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try launch(server)
        defer { server.terminate() }
        var configuration = HTTPClient.Configuration()
        configuration.caBundlePath = certificate
        let client = HTTPClient(configuration: configuration)
        defer { client.shutdown() }
        var first: (head: HTTPResponseHead, body: [UInt8])?
        for _ in 0..<100 where first == nil {
            first = try? await client.fetch(HTTPRequest(url: "https://127.0.0.1:\(port)/", timeouts: HTTPTimeouts(connect: .seconds(2), total: .seconds(5))))
            if first == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let answer = try #require(first, "hypercorn did not answer over TLS")
        #expect(answer.head.version == "HTTP/2")
        #expect(String(decoding: answer.body, as: UTF8.self).hasPrefix("2 "))
        let answers = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask { String(decoding: try await client.fetch(HTTPRequest(url: "https://127.0.0.1:\(port)/")).body, as: UTF8.self) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == 8 && answers.allSatisfy { $0.hasPrefix("2 ") })
        #expect(Set(answers.map { $0.split(separator: " ").last! }).count == 1, "one connection for all: \(answers)")
        // The system's trust store does not know this certificate: refused, as it must be.
        let strict = HTTPClient()
        defer { strict.shutdown() }
        await #expect(throws: HTTPClientError.self) { try await strict.fetch(HTTPRequest(url: "https://127.0.0.1:\(port)/")) }
    }
}

@Suite("Server-Sent Events and NDJSON parsing")
struct StreamingFormatTests {
    struct Chunks: AsyncSequence, Sendable {
        typealias Element = [UInt8]
        let chunks: [[UInt8]]
        func makeAsyncIterator() -> IndexingIterator<[[UInt8]]>.AsyncAdapter { .init(base: chunks.makeIterator()) }
    }

    static func split(_ text: String, every size: Int) -> Chunks {
        let bytes = Array(text.utf8)
        return Chunks(chunks: stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) })
    }

    @Test("events split at every byte boundary parse the same", arguments: [1, 2, 3, 7, 1000])
    func sseChunking(size: Int) async throws {
        let text = "\u{FEFF}:comment\r\nevent: a\r\ndata:x\r\ndata:  y\r\n\r\ndata\rretry: 50\r\rid: 9\ndata: z\n\nevent: ignored\n\ndata: unterminated"
        var events: [ServerSentEvent] = []
        for try await event in Self.split(text, every: size).serverSentEvents() { events.append(event) }
        #expect(events == [
            ServerSentEvent(event: "a", data: "x\n y"),
            ServerSentEvent(event: "message", data: "", retry: 50),
            ServerSentEvent(event: "message", data: "z", id: "9"),
        ])
    }

    @Test("a line past the bound throws instead of growing")
    func lineBound() async throws {
        let text = "data: " + String(repeating: "a", count: 5000) + "\n\n"
        await #expect(throws: StreamLineTooLong.self) {
            for try await _ in Self.split(text, every: 100).serverSentEvents(lineLimit: 1000) {}
        }
        await #expect(throws: StreamLineTooLong.self) {
            for try await _ in Self.split(String(repeating: "b", count: 5000), every: 100).lines(lineLimit: 1000) {}
        }
    }

    @Test("header names match up to ASCII letter case only")
    func headerNames() {
        let head = HTTPResponseHead(status: 200, headers: [("Retry-After", "3"), ("x-a-b", "1"), ("X-Z@", "2")])
        #expect(head.header("retry-after") == "3")
        #expect(head.header("RETRY-AFTER") == "3")
        #expect(head.header("Retry-Afte") == nil)
        #expect(head.header("X-A-B") == "1")
        // Folding 0x20 would make these equal; they are not letters.
        #expect(head.header("x\ra\rb") == nil)
        #expect(head.header("x-z`") == nil)
        #expect(head.header("x-z@") == "2")
    }
}

extension IndexingIterator {
    /// A synchronous iterator as an async one (test input).
    struct AsyncAdapter: AsyncIteratorProtocol {
        var base: IndexingIterator
        mutating func next() async -> Element? { base.next() }
    }
}
