import Foundation
import InferenceKit
import KBEmbeddings
import KBProto
import KBRuntime
import Testing

@Suite("the indexer's documents and embeddings")
struct KnowledgeDocumentTests {
    @Test("the text form is name and type, then one line per observation; the hash follows content and payload, not timestamps")
    func textFormAndHash() {
        var entity = graphEntity("zlib", observations: ["compression library", "used by libpng"], significance: 7)
        entity.observations[1].type = "usage"
        entity.team = "alpha"
        let document = KnowledgeDocument(entity)
        #expect(document.id == "alpha:zlib")
        #expect(document.text == "zlib (Library)\ncompression library\nusage: used by libpng")
        var touched = entity
        touched.lastModifiedMs = 12345
        #expect(KnowledgeDocument(touched).contentHash == document.contentHash)
        var moreSignificant = entity
        moreSignificant.significance = 9
        #expect(KnowledgeDocument(moreSignificant).contentHash != document.contentHash, "the payload is part of the hash")
        var otherTeam = entity
        otherTeam.team = "beta"
        #expect(KnowledgeDocument(otherTeam).contentHash != document.contentHash)
        let long = KnowledgeDocument.pointID(team: "t", name: String(repeating: "é", count: 200))
        #expect(long.hasPrefix("sha256:") && long.utf8.count <= 256)
    }

    @Test("a text longer than the model reads is cut into windows and mean-pooled into one unit vector that still reflects its end")
    func longTextsAreChunked() async throws {
        let engine: TextEmbedder
        do { engine = try TextEmbedder() } catch {
            if ProcessInfo.processInfo.environment["KB_REQUIRE_REAL_MODEL"] == "1" { throw error }
            print("skipped: the local model is not installed (\(error))")
            return
        }
        let embedder = try KnowledgeEmbedder(engine: engine)
        let head = String(repeating: "the cat sat on the mat. ", count: 60)  // about 420 word pieces
        let tail = String(repeating: "quantum chromodynamics of gluons. ", count: 60)
        let (vectors, windows) = try await embedder.embed(["short text", head, head + tail])
        #expect(windows == 1 + 2 + 5 || windows > 4, "one window for the short text, several for the long ones (\(windows))")
        for vector in vectors {
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) < 1e-3)
        }
        // The first 256 pieces of head and head+tail are the same: without pooling both vectors would be equal.
        let cosine = zip(vectors[1], vectors[2]).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(cosine < 0.98, "the tail moves the pooled vector (cosine \(cosine))")
    }
}

@Suite("the indexer's switch")
struct IndexerSwitchTests {
    func configuration(_ environment: [String: String]) throws -> InferenceConfiguration {
        let source = try ConfigSource(environment: environment)
        return try InferenceConfiguration(source: source, shared: ServiceConfiguration(descriptor: .inferenceGateway, source: source))
    }

    @Test("auto is on only when both graph-store's and vector-search's addresses are set (as kb up sets them); on and off decide alone; the batch size is read")
    func autoFollowsTheAddresses() throws {
        let both = ["KB_GRAPH_STORE_ADDR": "127.0.0.1:17101", "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:17102"]
        #expect(try configuration([:]).indexer == nil)
        #expect(try configuration(["KB_GRAPH_STORE_ADDR": "127.0.0.1:17101"]).indexer == nil)
        let auto = try #require(try configuration(both.merging(["KB_INFERENCE_INDEXER_BATCH": "8"]) { $1 }).indexer)
        #expect(auto.graph.port == 17101 && auto.vectors.port == 17102 && auto.batchSize == 8)
        #expect(try configuration(both.merging(["KB_INFERENCE_INDEXER": "off"]) { $1 }).indexer == nil)
        #expect(try configuration(["KB_INFERENCE_INDEXER": "on"]).indexer?.graph.port == 7101, "on: the default addresses")
        #expect(throws: (any Error).self) { try configuration(["KB_INFERENCE_INDEXER": "maybe"]) }
    }
}
