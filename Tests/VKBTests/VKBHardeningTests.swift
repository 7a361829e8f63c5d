import Foundation
import KBTestSupport
import Testing

/// VKB against other web pages (DNS rebinding, cross-site writes, reads without the token) and
/// against slow or idle clients, on real processes.
@Suite("VKB against other web pages and slow clients", .serialized)
struct VKBHardeningTests {
    @Test("DNS rebinding: Host evil.example with a matching Origin is refused (421) for a write and for /api/export; an https Origin is 403; the page's own requests and KB_HTTP_ALLOWED_HOSTS names work")
    func dnsRebindingIsRefused() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_HTTP_ALLOWED_HOSTS": "kb.internal,127.0.0.1,localhost"])
        let port = system.vkb.adminPort
        try await system.seed()
        let entity = #"{"team": "rebound", "name": "Planted", "entityType": "T"}"#
        let rebound = [("Host", "evil.example:\(port)"), ("Origin", "http://evil.example:\(port)"), ("Content-Type", "application/json")]
        let write = try #require(try RawConnection.request(port: port, "POST", "/api/entities", headers: rebound, body: entity))
        #expect(write.status == 421 && write.errorCode == "misdirected_request", "\(write.status) \(write.body)")
        let export = try #require(try RawConnection.request(port: port, "GET", "/api/export", headers: [("Host", "evil.example:\(port)")]))
        #expect(export.status == 421 && !export.body.contains("RetryPolicy"), "\(export.status) \(export.body.prefix(300))")

        let https = try #require(try RawConnection.request(port: port, "POST", "/api/entities", headers: [("Host", "127.0.0.1:\(port)"), ("Origin", "https://127.0.0.1:\(port)"), ("Content-Type", "application/json")], body: entity))
        #expect(https.status == 403 && https.errorCode == "cross_origin", "\(https.status) \(https.body)")
        let otherPort = try #require(try RawConnection.request(port: port, "POST", "/api/entities", headers: [("Host", "127.0.0.1:\(port)"), ("Origin", "http://127.0.0.1:1"), ("Content-Type", "application/json")], body: entity))
        #expect(otherPort.status == 403, "\(otherPort.body)")
        let jsonx = try #require(try RawConnection.request(port: port, "POST", "/api/entities", headers: [("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/jsonx")], body: entity))
        #expect(jsonx.status == 415, "\(jsonx.body)")
        let planted = try await system.get("/api/entities?team=rebound")
        #expect((planted.json["entities"] as? [Any] ?? []).isEmpty, "nothing was planted: \(planted.body)")

        let own = try #require(try RawConnection.request(port: port, "POST", "/api/entities", headers: [("Host", "127.0.0.1:\(port)"), ("Origin", "http://127.0.0.1:\(port)"), ("Content-Type", "application/json; charset=utf-8")], body: entity))
        #expect(own.status == 201, "the page's own write: \(own.body)")
        let named = try #require(try RawConnection.request(port: port, "GET", "/api/export", headers: [("Host", "kb.internal:\(port)")]))
        #expect(named.status == 200 && named.body.contains("Planted"), "a name from KB_HTTP_ALLOWED_HOSTS: \(named.status)")
        let notListed = try #require(try RawConnection.request(port: port, "GET", "/api/export", headers: [("Host", "[::1]:\(port)")]))
        #expect(notListed.status == 421, "KB_HTTP_ALLOWED_HOSTS replaces the defaults")
        await system.stop()
    }

    @Test("with KB_AUTH_TOKEN set, /api reads need the token (the page, /health and the OpenAPI document stay public) unless KB_VKB_PUBLIC_READS=true")
    func readsNeedTheToken() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_AUTH_TOKEN": "s3cret"])
        try await system.seed()
        let anonymous = try await system.request("GET", "/api/export", authorized: false)
        #expect(anonymous.status == 401 && !anonymous.body.contains("RetryPolicy"), "\(anonymous.status) \(anonymous.body.prefix(200))")
        for path in ["/api/teams", "/api/entities?team=coding", "/api/graph", "/api/search?q=retry"] {
            #expect(try await system.request("GET", path, authorized: false).status == 401, "\(path)")
        }
        let wrong = try await system.request("GET", "/api/export", headers: ["Authorization": "Bearer nope"], authorized: false)
        #expect(wrong.status == 401)
        let withToken = try await system.request("GET", "/api/export")
        #expect(withToken.status == 200 && withToken.body.contains("RetryPolicy"), "\(withToken.status)")
        for path in ["/", "/static/app.js", "/static/app.css", "/health", "/api/openapi.json"] {
            #expect(try await system.request("GET", path, authorized: false).status == 200, "\(path) stays public")
        }
        await system.stop()

        let open = try await VKBUnderTest.start(environment: ["KB_AUTH_TOKEN": "s3cret", "KB_VKB_PUBLIC_READS": "true"])
        try await open.seed()
        let publicRead = try await open.request("GET", "/api/export", authorized: false)
        #expect(publicRead.status == 200 && publicRead.body.contains("RetryPolicy"), "\(publicRead.status)")
        let write = try await open.request("POST", "/api/entities", json: ["team": "x", "name": "Anon", "entityType": "T"], authorized: false)
        #expect(write.status == 401, "public reads do not open writes")
        await open.stop()
    }

    @Test("a header sent slowly and a silent connection are closed after the header timeout; a half-sent body after the idle timeout; past KB_VKB_MAX_CONNECTIONS a connection is answered 503")
    func slowAndSilentClientsAreClosed() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_VKB_HEADER_TIMEOUT_SECONDS": "1", "KB_VKB_IDLE_TIMEOUT_SECONDS": "2"], withStore: false)
        let port = system.vkb.adminPort

        let silent = try RawConnection(port: port)
        let slow = try RawConnection(port: port)
        slow.send("GET /health HTTP/1.1\r\n")
        let dripping = Task.detached {
            // One header byte every 200 ms: each byte would reset an idle timer, not this one.
            for byte in "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if !slow.send(String(byte)) { return }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(slow.closedByPeer(within: 12), "a header dripped byte by byte is cut off")
        dripping.cancel()
        #expect(silent.closedByPeer(within: 12), "a connection that never speaks is closed")

        let halfBody = try RawConnection(port: port)
        halfBody.send("POST /api/import HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"entit")
        #expect(halfBody.closedByPeer(within: 12), "a body that stops half-way is closed after the idle timeout")

        let kept = try RawConnection(port: port)
        kept.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
        #expect(kept.readResponse()?.status == 200, "a well-behaved client is answered")
        #expect(kept.closedByPeer(within: 12), "and its kept-alive connection is closed once idle")
        await system.stop()

        let bounded = try await VKBUnderTest.start(environment: ["KB_VKB_MAX_CONNECTIONS": "3", "KB_VKB_HEADER_TIMEOUT_SECONDS": "60", "KB_VKB_IDLE_TIMEOUT_SECONDS": "60"], withStore: false)
        let boundedPort = bounded.vkb.adminPort
        var open: [RawConnection] = []
        var statuses: [Int] = []
        for _ in 0..<6 {
            let connection = try RawConnection(port: boundedPort)
            connection.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:\(boundedPort)\r\n\r\n")
            let answer = connection.readResponse()
            statuses.append(answer?.status ?? 0)
            if answer?.status == 503 { #expect(answer?.body.contains("too_many_connections") == true, "\(answer?.body ?? "")") }
            open.append(connection)
        }
        #expect(statuses.filter { $0 == 200 }.count <= 3 && statuses.suffix(3).allSatisfy { $0 == 503 }, "\(statuses)")
        open.removeAll()
        // Slots free again once connections close.
        var freed = false
        for _ in 0..<50 where !freed {
            try await Task.sleep(for: .milliseconds(100))
            freed = try RawConnection.request(port: boundedPort, "GET", "/health/live", headers: [("Host", "127.0.0.1:\(boundedPort)")])?.status == 200
        }
        #expect(freed, "a closed connection frees its slot")
        await bounded.stop()
    }
}

extension HTTPResult {
    /// `error.code` of a JSON error body.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

extension RawResponse {
    /// `error.code` of a JSON error body.
    var errorCode: String? { ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]).flatMap { ($0["error"] as? [String: Any])?["code"] as? String } }
}
