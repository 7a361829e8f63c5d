import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

@Suite("has_id filters with long lists", .serialized)
struct HasIDFilterTests {
    @Test("DeletePoints with must_not has_id of 5,000 ids keeps exactly those; a nested has_id list works too")
    func longHasIDLists() async throws {
        let vectors = try await VectorServiceUnderTest.start()
        defer { Task { await vectors.service.stop() } }
        let client = vectors.client()
        defer { Task { await client.close() } }
        try await createCollection(client, "ids", dimension: 4)
        let ids = (0..<6000).map { "team:e\($0)" }
        for start in stride(from: 0, to: ids.count, by: 2000) {
            _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
                $0.collection = "ids"
                $0.points = ids[start..<min(start + 2000, ids.count)].enumerated().map { index, id in
                    .with { $0.id = id; $0.vector = [1, Float(index % 7), 0.5, Float(start)] }
                }
            })
        }
        let keep = Array(ids.prefix(5000))
        let deleted = try await client.call(VectorSearchMethods.deletePoints, .with {
            $0.collection = "ids"
            $0.filter = .with { $0.mustNot = [.with { $0.hasID_p = .with { $0.values = keep } }] }
        })
        #expect(deleted.deleted == 1000, "e5000…e5999")
        let left = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "ids"; $0.ids = ids })
        let leftIDs = Set(left.points.map { Array($0.id.utf8) }), keptIDs = Set(keep.map { Array($0.utf8) })
        #expect(leftIDs.count == keptIDs.count && leftIDs == keptIDs, "left \(leftIDs.count), truncated \(left.truncated), missing \(keptIDs.subtracting(leftIDs).prefix(3).map { String(decoding: $0, as: UTF8.self) }), extra \(leftIDs.subtracting(keptIDs).prefix(3).map { String(decoding: $0, as: UTF8.self) })")

        let nested = try await client.call(VectorSearchMethods.deletePoints, .with {
            $0.collection = "ids"
            $0.filter = .with { $0.must = [.with { $0.filter = .with { $0.should = [.with { $0.hasID_p = .with { $0.values = Array(ids.prefix(10)) } }] } }] }
        })
        #expect(nested.deleted == 10)
    }
}
