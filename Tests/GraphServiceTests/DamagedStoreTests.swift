import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// Issue 18, findings 1, 2 and 4: a graph store whose files were damaged refuses to start (or
/// answers unhealthy) with the reason and the restore command; it never serves an emptied or
/// shortened store as healthy.
@Suite("graph-store on damaged files, as processes", .serialized)
struct DamagedGraphStoreTests {
    /// Writes `calls` acknowledged PutEntities of `perCall` entities each (one group commit each).
    static func write(_ store: GraphStoreUnderTest, calls: Int, perCall: Int, observationBytes: Int = 40) async throws {
        let client = store.client()
        for call in 0..<calls {
            _ = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = "damage"
                $0.entities = (0..<perCall).map { index in
                    .with {
                        $0.name = "entity \(call * perCall + index)"
                        $0.entityType = "Record"
                        $0.observations = [.with { $0.content = "observation \(call) \(index) " + String(repeating: "word\(index % 97) ", count: observationBytes / 8) }]
                    }
                }
                $0.omitEntities = true
            })
        }
        await client.close()
    }

    /// The process's exit status once it exits, or nil if it is still serving after `limit`.
    static func exitStatus(_ service: ServiceProcess, within limit: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while service.process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return service.process.isRunning ? nil : service.process.terminationStatus
    }

    /// Starts graph-store on `data` without waiting for readiness.
    static func restart(_ data: URL) throws -> ServiceProcess {
        try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", dataDirectory: data)
    }

    static func files(_ data: URL, suffix: String) throws -> [URL] {
        let folder = data.appendingPathComponent("knowledge-graph/leveldb")
        return try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.fileSizeKey])
            .filter { $0.lastPathComponent.hasSuffix(suffix) }
            .sorted { (try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) ?? 0 > (try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) ?? 0 }
    }

    static func overwrite(_ file: URL, at offset: UInt64, with bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: file)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    static func garbage(_ count: Int) -> [UInt8] {
        var generator = SeededGenerator(state: 18)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("finding 1: CURRENT removed from a store of 2,000 entities: graph-store exits non-zero naming CURRENT and the restore command, and creates nothing")
    func missingCurrentRefusesToStart() async throws {
        let first = try await GraphStoreUnderTest.start()
        try await Self.write(first, calls: 100, perCall: 20)
        #expect(await first.service.stop() == 0)
        let data = first.service.dataDirectory
        let leveldb = data.appendingPathComponent("knowledge-graph/leveldb")
        let before = try FileManager.default.contentsOfDirectory(atPath: leveldb.path).filter { $0.hasSuffix(".ldb") || $0.hasSuffix(".log") }.sorted()
        try FileManager.default.removeItem(at: leveldb.appendingPathComponent("CURRENT"))

        let second = try Self.restart(data)
        let status = await Self.exitStatus(second)
        #expect(status != nil && status != 0, "graph-store must refuse to start on a store without CURRENT: \(second.log)")
        #expect(second.log.contains("CURRENT is missing"), "\(second.log)")
        #expect(second.log.contains("ukb restore"), "the message names the restore command: \(second.log)")
        #expect(!FileManager.default.fileExists(atPath: leveldb.appendingPathComponent("CURRENT").path), "no new database was created")
        let after = try FileManager.default.contentsOfDirectory(atPath: leveldb.path).filter { $0.hasSuffix(".ldb") || $0.hasSuffix(".log") }.sorted()
        #expect(after == before, "the old table and log files are kept for the operator")
    }

    @Test("finding 2: the write-ahead log truncated to half after kill -9: graph-store refuses to start, saying acknowledged writes were lost")
    func truncatedLogRefusesToStart() async throws {
        let first = try await GraphStoreUnderTest.start()
        try await Self.write(first, calls: 100, perCall: 20)
        await first.service.stop(signal: SIGKILL)
        let data = first.service.dataDirectory
        let log = try #require(try Self.files(data, suffix: ".log").first)
        let size = try #require(try log.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        #expect(size > 100_000, "the 2,000 entities are in the log")
        let handle = try FileHandle(forUpdating: log)
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()

        let second = try Self.restart(data)
        let status = await Self.exitStatus(second)
        #expect(status != nil && status != 0, "graph-store must not serve a store missing acknowledged writes: \(second.log)")
        #expect(second.log.contains("lost acknowledged writes"), "\(second.log)")
        #expect(second.log.contains("ukb restore"), "\(second.log)")
    }

    @Test("finding 2: 512 garbage bytes in the middle of the write-ahead log: graph-store refuses to start, naming the corruption")
    func garbageInLogRefusesToStart() async throws {
        let first = try await GraphStoreUnderTest.start()
        try await Self.write(first, calls: 100, perCall: 20)
        await first.service.stop(signal: SIGKILL)
        let data = first.service.dataDirectory
        let log = try #require(try Self.files(data, suffix: ".log").first)
        let size = try #require(try log.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        try Self.overwrite(log, at: UInt64(size / 2), with: Self.garbage(512))

        let second = try Self.restart(data)
        let status = await Self.exitStatus(second)
        #expect(status != nil && status != 0, "graph-store must not drop the records after the damage and serve the rest: \(second.log)")
        #expect(second.log.contains("Corruption"), "LevelDB's reason is in the message: \(second.log)")
        #expect(second.log.contains("ukb restore"), "\(second.log)")
    }

    @Test("finding 4: garbage in a table file: Verify answers DATA_LOSS with LevelDB's reason and /health turns unhealthy with it")
    func garbageInTableFileIsReported() async throws {
        let first = try await GraphStoreUnderTest.start()
        try await Self.write(first, calls: 40, perCall: 50, observationBytes: 800)
        #expect(await first.service.stop() == 0)
        let data = first.service.dataDirectory
        // A restart turns the log into a table file.
        let second = try await GraphStoreUnderTest.start(dataDirectory: data)
        #expect(await second.service.stop() == 0)
        let table = try #require(try Self.files(data, suffix: ".ldb").first)
        let size = try #require(try table.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        #expect(size > 200_000)
        try Self.overwrite(table, at: UInt64(size / 3), with: Self.garbage(512))

        let third = try Self.restart(data)
        defer { Task { await third.stop() } }
        // Either the damage is met while opening (a refusal naming it) or while serving.
        if let status = await Self.exitStatus(third, within: .seconds(3)) {
            #expect(status != 0)
            #expect(third.log.contains("Corruption") && third.log.contains("ukb restore"), "\(third.log)")
            return
        }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: third.port))
        do {
            let verify = try await client.call(GraphStoreMethods.verify, .init())
            Issue.record("verify over a damaged table answered \(verify.ok) \(verify.problems)")
        } catch let error as RPCError {
            #expect(error.code == .dataLoss, "\(error)")
            #expect(error.message.contains("Corruption"), "the caller sees LevelDB's reason: \(error.message)")
            #expect(!error.message.contains("internal error in"))
        }
        await client.close()
        let health = try #require(await httpGet("http://127.0.0.1:\(third.adminPort)/health"))
        #expect(health.status == 503, "\(health.body)")
        #expect(health.body.contains("Corruption"), "\(health.body)")
    }

    @Test("normal paths: a first start creates the store and its marker; a restart of a healthy store serves every entity")
    func firstStartAndRestart() async throws {
        let first = try await GraphStoreUnderTest.start()
        let leveldb = first.service.dataDirectory.appendingPathComponent("knowledge-graph/leveldb")
        #expect(FileManager.default.fileExists(atPath: leveldb.appendingPathComponent("KB_STORE").path))
        try await Self.write(first, calls: 10, perCall: 20)
        await first.service.stop(signal: SIGKILL)
        let second = try await GraphStoreUnderTest.start(dataDirectory: first.service.dataDirectory)
        let client = second.client()
        let verify = try await client.call(GraphStoreMethods.verify, .init())
        #expect(verify.ok && verify.entities == 200, "\(verify.problems)")
        await client.close()
        let health = try #require(await httpGet("http://127.0.0.1:\(second.service.adminPort)/health"))
        #expect(health.status == 200, "\(health.body)")
        await second.service.stop()
    }
}
