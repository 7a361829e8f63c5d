import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// Issue 18, finding 1 for vector-search: a points database without its CURRENT file is refused
/// with the way to restore it, never replaced by an empty one (collections "do not exist").
@Suite("vector-search on damaged files, as a process", .serialized)
struct DamagedVectorStoreTests {
    @Test("finding 1: CURRENT removed: vector-search exits non-zero naming CURRENT and how to restore; no collection is lost to a new database")
    func missingCurrentRefusesToStart() async throws {
        let first = try await VectorServiceUnderTest.start()
        let client = first.client()
        try await createCollection(client, "damage", dimension: 4)
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "damage"
            $0.points = (0..<200).map { index in .with { $0.id = "p\(index)"; $0.vector = [Float(index), 1, 2, 3] } }
        })
        await client.close()
        #expect(await first.service.stop() == 0)
        let leveldb = first.service.dataDirectory.appendingPathComponent("vectors/leveldb")
        try FileManager.default.removeItem(at: leveldb.appendingPathComponent("CURRENT"))

        let second = try ServiceProcess(executable: "vector-search", envPrefix: "KB_VECTOR_SEARCH", dataDirectory: first.service.dataDirectory)
        let deadline = ContinuousClock.now + .seconds(60)
        while second.process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!second.process.isRunning, "vector-search must refuse to start without CURRENT: \(second.log)")
        #expect(second.process.isRunning || second.process.terminationStatus != 0)
        #expect(second.log.contains("CURRENT is missing"), "\(second.log)")
        #expect(second.log.contains("kb vectors restore"), "the message says how to restore: \(second.log)")
        #expect(!FileManager.default.fileExists(atPath: leveldb.appendingPathComponent("CURRENT").path), "no new database was created")
        await second.stop()
    }
}
