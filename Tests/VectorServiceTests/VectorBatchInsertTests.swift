import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// One large upsert (the Qdrant port's batches are large): every point must
/// still end up under its own id, with its own payload, findable by its own vector, and points
/// replaced within the batch must leave no trace of their old version.
@Suite("vector-search: large batches", .serialized)
struct VectorBatchInsertTests {
    static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        let dot = zip(a, b).map(*).reduce(0, +)
        return dot / ((a.map { $0 * $0 }.reduce(0, +)).squareRoot() * (b.map { $0 * $0 }.reduce(0, +)).squareRoot())
    }

    @Test("3,000 points in one call (1,000 of them replacing earlier ones): each id has its own vector and payload, and its vector finds it first")
    func oneLargeBatch() async throws {
        try #require(Embeddings.base.count >= 4000, "the shared embeddings are missing")
        let server = try await VectorServiceUnderTest.start()
        defer { Task { await server.service.stop() } }
        let client = server.client()
        try await createCollection(client, "batch")
        // 1,000 points first, then one call of 3,000: ids p0…p999 again (with other vectors and
        // payloads: those of base 3000…3999) and p1000…p2999 new.
        try await upsert(client, "batch", 0..<1000, batch: 1000)
        func point(_ id: Int) -> Kb_Vector_V1_Point {
            var point = Embeddings.point(id < 1000 ? id + 3000 : id)
            point.id = "p\(id)"
            return point
        }
        let answer = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "batch"
            $0.points = (0..<3000).map(point)
        })
        #expect(answer.upserted == 3000)

        var wrong: [String] = []
        for first in stride(from: 0, to: 3000, by: 500) {
            let stored = try await client.call(VectorSearchMethods.getPoints, .with {
                $0.collection = "batch"; $0.ids = (first..<first + 500).map { "p\($0)" }; $0.withVector = true; $0.withPayload = true
            })
            #expect(stored.points.count == 500 && !stored.truncated)
            for (offset, got) in stored.points.enumerated() {
                let expected = point(first + offset)
                // Vectors come back as the graph keeps them (normalised for cosine): the same direction.
                if got.id != expected.id || got.payload["n"]?.integer != expected.payload["n"]?.integer || Self.cosine(got.vector, expected.vector) < 0.99999 { wrong.append(got.id) }
            }
        }
        #expect(wrong.isEmpty, "points read back with another point's vector or payload: \(wrong.prefix(10))")

        // Through the graph (3,000 points: not the exact scan), each sampled point's vector finds
        // that point first; the replaced versions' vectors are gone with them.
        var missed: [String] = []
        for index in stride(from: 0, to: 3000, by: 15) {
            let found = try await client.call(VectorSearchMethods.search, .with { $0.collection = "batch"; $0.vector = point(index).vector; $0.limit = 1; $0.ef = 128 })
            #expect(found.exact == false)
            if found.results.first?.point.id != "p\(index)" { missed.append("p\(index) → \(found.results.first?.point.id ?? "nothing")") }
        }
        #expect(missed.isEmpty, "a point's own vector did not find it: \(missed.prefix(10))")
        let info = try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "batch" })
        #expect(info.pointCount == 3000)
        #expect(info.indexState == .ready)
        let old = try await client.call(VectorSearchMethods.search, .with { $0.collection = "batch"; $0.vector = Embeddings.base[5]; $0.limit = 1; $0.ef = 128 })
        #expect(old.results.first?.point.id != "p5", "p5's replaced vector still finds it")
    }
}
