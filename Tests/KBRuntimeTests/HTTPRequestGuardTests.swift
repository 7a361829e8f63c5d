import Foundation
import Hummingbird
import HummingbirdTesting
import KBRPC
import KBRuntime
import KBTestSupport
import Testing

/// The one guard every HTTP surface passes first, and the backup root, in-process.
@Suite("HTTP request guard and backup root")
struct HTTPRequestGuardTests {
    @Test("the allow-list: defaults with the listening port, configured names replace them, an Origin needs http and the same port")
    func allowList() {
        let defaults = HTTPHostAllowList(configured: [], boundHost: "127.0.0.1")
        defaults.listening(on: 8080)
        #expect(defaults.allowsHost("127.0.0.1:8080") && defaults.allowsHost("localhost:8080") && defaults.allowsHost("[::1]:8080") && defaults.allowsHost("LOCALHOST:8080"))
        #expect(!defaults.allowsHost("evil.example:8080") && !defaults.allowsHost("127.0.0.1:9999") && !defaults.allowsHost("127.0.0.1") && !defaults.allowsHost("user@127.0.0.1:8080"))
        #expect(defaults.allowsOrigin("http://127.0.0.1:8080") && defaults.allowsOrigin("http://localhost:8080"))
        #expect(!defaults.allowsOrigin("https://127.0.0.1:8080") && !defaults.allowsOrigin("http://evil.example:8080") && !defaults.allowsOrigin("null") && !defaults.allowsOrigin("http://127.0.0.1:8081"))

        let configured = HTTPHostAllowList(configured: ["kb.internal", "10.0.0.5:9000"], boundHost: "0.0.0.0")
        configured.listening(on: 8080)
        #expect(configured.allowsHost("kb.internal:8080") && configured.allowsHost("10.0.0.5:9000"))
        #expect(!configured.allowsHost("127.0.0.1:8080") && !configured.allowsHost("10.0.0.5:8080") && !configured.allowsHost("0.0.0.0:8080"))
    }

    @Test("JSON means application/json with optional parameters, nothing else")
    func mediaType() {
        #expect(HTTPRequestGuard.isJSON("application/json") && HTTPRequestGuard.isJSON("Application/JSON; charset=utf-8") && HTTPRequestGuard.isJSON("application/json ;charset=utf-8"))
        #expect(!HTTPRequestGuard.isJSON("application/jsonx") && !HTTPRequestGuard.isJSON("application/json-patch+json") && !HTTPRequestGuard.isJSON("text/plain") && !HTTPRequestGuard.isJSON(nil))
    }

    @Test("an admin route refuses another Host (421), another Origin (403) and a non-JSON body (415) before it runs; probes answer any Host")
    func adminRouterRefusals() async throws {
        let requestGuard = HTTPRequestGuard(allowList: HTTPHostAllowList(configured: [], boundHost: "127.0.0.1"))
        let router = AdminServer.router(health: HealthRegistry(service: "x", version: "1"), requestGuard: requestGuard)
        let calls = CallCount()
        router.post("/internal/change") { _, _ -> Response in
            calls.increment()
            return Response(status: .ok)
        }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/internal/change", method: .post, headers: [.origin: "http://evil.example"]) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/internal/change", method: .post, headers: [.contentType: "application/jsonx"], body: ByteBuffer(string: "{}")) { #expect($0.status == .unsupportedMediaType) }
            try await client.execute(uri: "/internal/change", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"]) { #expect($0.status == .unsupportedMediaType) }
            #expect(calls.value == 0)
            try await client.execute(uri: "/internal/change", method: .post, headers: [.contentType: "application/json; charset=utf-8", .origin: "http://localhost"], body: ByteBuffer(string: "{}")) { #expect($0.status == .ok) }
            #expect(calls.value == 1)
        }
        // Another Host: only a real request can carry one (the test client names "localhost").
        #expect(requestGuard.allowList.allowsHost("localhost"))
    }

    @Test("the backup root: relative paths inside, outside / '..' / links refused naming the rule, folders made only inside")
    func backupRoot() throws {
        let fixture = try BackupRootFixture()
        let root = BackupRoot(directory: fixture.root)
        for path in fixture.refusedPaths {
            #expect(throws: RPCError.self, "\(path)") { try root.newBackup(path, field: "path") }
            do {
                _ = try root.newBackup(path, field: "path")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument && error.field == "path", "\(path): \(error)")
            }
        }
        #expect(fixture.damage().isEmpty, "\(fixture.damage())")
        let inside = try root.newBackup("daily/one", field: "path")
        #expect(inside.path == fixture.root.appendingPathComponent("daily/one").path)
        #expect(FileManager.default.fileExists(atPath: fixture.root.appendingPathComponent("daily").path), "the parent folder is made inside the root")
        #expect(try root.newBackup(fixture.root.appendingPathComponent("daily/two").path, field: "path").lastPathComponent == "two")
        #expect(throws: RPCError.self) { try root.existingBackup("daily/missing", field: "path") }
        #expect(throws: RPCError.self) { try root.existingBackup("dangling", field: "path") }
        #expect(try root.existingBackup("daily", field: "path").lastPathComponent == "daily")
    }
}

/// A count shared with a route handler.
private final class CallCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
