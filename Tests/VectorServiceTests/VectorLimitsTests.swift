import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

@Suite("vector-search limits as a process: bounded answers, byte-compared keywords", .serialized)
struct VectorLimitsTests {
    /// "équipe" in NFC and in NFD: equal Swift Strings, different bytes.
    static let teamNFC = "\u{E9}quipe", teamNFD = "e\u{301}quipe"

    @Test("issue 18 #10 and #5: GetPoints and SearchBatch stop at the frame limit and say truncated; parallel large batches keep memory bounded; a team keyword filter matches bytes, not look-alikes")
    func answersStayUnderTheFrameLimit() async throws {
        // A 1 MiB frame limit makes large answers cheap to produce.
        let vectors = try await VectorServiceUnderTest.start(environment: ["KB_RPC_MAX_FRAME_BYTES": "1048576"])
        defer { Task { await vectors.service.stop() } }
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: vectors.service.port)
        configuration.defaultTimeout = .seconds(300)
        configuration.maxFrameLength = 1 << 20
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }
        let pid = vectors.service.process.processIdentifier

        try await createCollection(client, "wide", dimension: 384)
        var generator = SeededGenerator(state: 10)
        let count = 1200
        for start in stride(from: 0, to: count, by: 200) {
            _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
                $0.collection = "wide"
                $0.points = (start..<start + 200).map { index in .with {
                    $0.id = "p\(index)"
                    $0.vector = (0..<384).map { _ in Float.random(in: -1...1, using: &generator) }
                    $0.payload["team"] = .with { $0.keyword = index % 2 == 0 ? Self.teamNFC : Self.teamNFD }
                } }
            })
        }

        // 1,200 points with vectors (about 1.9 MB): a truncated first part, under the limit.
        let ids = (0..<count).map { "p\($0)" }
        let points = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "wide"; $0.ids = ids; $0.withVector = true })
        #expect(points.truncated && !points.points.isEmpty && points.points.count < count, "\(points.points.count) points")
        #expect(points.points.map(\.id) == Array(ids.prefix(points.points.count)), "the first ids, in order")
        let few = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "wide"; $0.ids = Array(ids.prefix(10)); $0.withVector = true })
        #expect(!few.truncated && few.points.count == 10)

        // 100 searches of 300 results with vectors (about 47 MB whole): the first answers, truncated.
        let query = (0..<384).map { _ in Float.random(in: -1...1, using: &generator) }
        let batch = Kb_Vector_V1_SearchBatchRequest.with {
            $0.searches = (0..<100).map { _ in .with { $0.collection = "wide"; $0.vector = query; $0.limit = 300; $0.withVector = true; $0.withPayload = true } }
        }
        let peakBefore = ProcessUsage.peakResidentBytes(pid)
        let answer = try await client.call(VectorSearchMethods.searchBatch, batch)
        let answered: Int = answer.responses.count
        #expect(answer.truncated)
        #expect(answered > 0 && answered < 100, "answers: \(answered)")
        #expect(answer.responses.allSatisfy { $0.results.count == 300 })
        // Four such batches at once: each truncated, memory bounded.
        let parallel = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask { try await client.call(VectorSearchMethods.searchBatch, batch).truncated } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(parallel == [true, true, true, true])
        let grown = ProcessUsage.peakResidentBytes(pid) - peakBefore
        #expect(grown < 256 << 20, "peak resident memory grew by \(grown >> 20) MiB")

        // A filter on the NFC team returns only points written with the NFC bytes.
        for condition in [
            Kb_Vector_V1_Condition.with { $0.match = .with { $0.key = "team"; $0.value = .with { $0.keyword = Self.teamNFC } } },
            Kb_Vector_V1_Condition.with { $0.any = .with { $0.key = "team"; $0.keywords = [Self.teamNFC] } },
        ] {
            let found = try await client.call(VectorSearchMethods.search, .with {
                $0.collection = "wide"; $0.vector = query; $0.limit = 100; $0.withPayload = true
                $0.filter = .with { $0.must = [condition] }
            })
            #expect(found.results.count == 100)
            #expect(found.results.allSatisfy { $0.point.payload["team"]?.keyword.utf8.elementsEqual(Self.teamNFC.utf8) == true && Int($0.point.id.dropFirst())! % 2 == 0 },
                    "ids: \(found.results.map { $0.point.id }.prefix(10))")
        }
    }
}
