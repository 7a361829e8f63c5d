import Foundation
import KBTestSupport
import Testing

@testable import KBRuntime

@Suite("Configuration from the environment and a config file")
struct ConfigurationTests {
    @Test("defaults apply when nothing is set")
    func defaults() throws {
        let configuration = try ServiceConfiguration(descriptor: .graphStore, source: ConfigSource(environment: [:]))
        #expect(configuration.port == 7101)
        #expect(configuration.adminPort == 9101)
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.authToken == nil)
        #expect(configuration.rpc.maxFrameLength == 16 * 1024 * 1024)
        #expect(configuration.serviceDataDirectory?.lastPathComponent == "knowledge-graph")
    }

    @Test("a bad value is refused with an error that names its key")
    func badValuesNameTheirKey() throws {
        let cases: [(String, String)] = [
            ("KB_GRAPH_STORE_PORT", "seventy"),
            ("KB_GRAPH_STORE_ADMIN_PORT", "70000"),
            ("KB_LOG_LEVEL", "loud"),
            ("KB_RPC_MAX_FRAME_BYTES", "12"),
            ("KB_RPC_IDLE_TIMEOUT_SECONDS", "-1"),
        ]
        for (key, value) in cases {
            #expect {
                _ = try ServiceConfiguration(descriptor: .graphStore, source: ConfigSource(environment: [key: value]))
            } throws: { error in
                (error as? ConfigError)?.key == key && "\(error)".contains(value)
            }
        }
    }

    @Test("the environment overrides the config file, which overrides defaults")
    func fileAndEnvironmentPrecedence() throws {
        let folder = temporaryDirectory()
        let file = folder.appendingPathComponent("kb.env")
        try "# comment\nKB_GRAPH_STORE_PORT=7201\nKB_LOG_LEVEL = debug\nKB_AUTH_TOKEN=\"from-file\"\n".write(to: file, atomically: true, encoding: .utf8)
        let configuration = try ServiceConfiguration(
            descriptor: .graphStore,
            source: ConfigSource(environment: ["KB_CONFIG_FILE": file.path, "KB_GRAPH_STORE_PORT": "7301"])
        )
        #expect(configuration.port == 7301)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.authToken == "from-file")
    }

    @Test("a config file line without '=' is refused with its line number")
    func malformedConfigFile() throws {
        let file = temporaryDirectory().appendingPathComponent("kb.env")
        try "KB_LOG_LEVEL=info\njust words\n".write(to: file, atomically: true, encoding: .utf8)
        #expect {
            _ = try ConfigSource(environment: ["KB_CONFIG_FILE": file.path])
        } throws: { error in
            (error as? ConfigError)?.key == "KB_CONFIG_FILE" && "\(error)".contains(":2:")
        }
    }
}

@Suite("Data directory lock")
struct DataDirectoryLockTests {
    @Test("a second lock on the same directory is refused while the first is held, and allowed after")
    func secondLockIsRefused() throws {
        let folder = temporaryDirectory()
        var first: DataDirectoryLock? = try DataDirectoryLock(directory: folder, owner: "graph-store")
        #expect(throws: DataDirectoryLock.Error.self) { _ = try DataDirectoryLock(directory: folder, owner: "graph-store") }
        _ = first
        first = nil
        _ = try DataDirectoryLock(directory: folder, owner: "graph-store")
    }
}

@Suite("Health reports")
struct HealthReportTests {
    @Test("the service is as healthy as its worst component")
    func worstComponentWins() async throws {
        let registry = HealthRegistry(service: "graph-store", version: "1")
        registry.register("store") { ComponentHealth(.healthy, ["entities": 3]) }
        registry.register("peer") { ComponentHealth(.degraded, ["error": "slow"]) }
        var report = await registry.report()
        #expect(report.status == .degraded)
        registry.register("disk") { ComponentHealth(.unhealthy) }
        report = await registry.report()
        #expect(report.status == .unhealthy)
        #expect(report.proto.status == .notServing)
        let json = try #require(try JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        let components = try #require(json["components"] as? [String: [String: Any]])
        #expect(components["store"]?["entities"] as? Int == 3)
        #expect(components["peer"]?["status"] as? String == "degraded")
    }
}

@Suite("Finding peer services")
struct PeerAddressTests {
    @Test("a peer is found at KB_<PEER>_ADDR, else on loopback at its port, with the shared token")
    func peerAddress() throws {
        let byDefault = try ConfigSource(environment: ["KB_AUTH_TOKEN": "t"]).clientConfiguration(for: .graphStore)
        #expect(byDefault.host == "127.0.0.1" && byDefault.port == 7101 && byDefault.authToken == "t")
        let byPort = try ConfigSource(environment: ["KB_GRAPH_STORE_PORT": "7301"]).clientConfiguration(for: .graphStore)
        #expect(byPort.port == 7301)
        let byAddress = try ConfigSource(environment: ["KB_GRAPH_STORE_ADDR": "graph.internal:7400"]).clientConfiguration(for: .graphStore)
        #expect(byAddress.host == "graph.internal" && byAddress.port == 7400)
        #expect(throws: ConfigError.self) { try ConfigSource(environment: ["KB_GRAPH_STORE_ADDR": "nowhere"]).clientConfiguration(for: .graphStore) }
        #expect(throws: ConfigError.self) { try ConfigSource(environment: [:]).clientConfiguration(for: .vkb) }
    }
}
