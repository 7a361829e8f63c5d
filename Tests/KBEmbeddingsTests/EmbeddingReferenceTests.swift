import Foundation
import KBEmbeddings
import Testing

@Suite("Embeddings against sentence-transformers")
struct EmbeddingReferenceTests {
    @Test("the fixture has at least 1,000 texts of every kind the issue names")
    func fixtureIsVaried() throws {
        let fixture = try ReferenceFixture.load()
        #expect(fixture.texts.count >= 1000)
        #expect(fixture.texts.contains(""))
        #expect(fixture.texts.contains { !$0.isEmpty && $0.allSatisfy(\.isWhitespace) })
        #expect(fixture.tokenIDs.contains { $0.count == 256 }, "no text is truncated at 256 tokens")
        #expect(fixture.texts.contains { $0.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) } }, "no CJK")
        #expect(fixture.texts.contains { $0.unicodeScalars.contains { $0.properties.isEmojiPresentation } }, "no emoji")
        #expect(fixture.texts.contains { $0.contains("é") || $0.contains("ü") }, "no accents")
    }

    @Test("token ids are HuggingFace's on every fixture text")
    func tokenIDsMatch() throws {
        let fixture = try ReferenceFixture.load()
        let tokenizer = try SharedEngine.embedder().tokenizer
        var mismatches: [String] = []
        for (index, text) in fixture.texts.enumerated() {
            let ids = tokenizer.tokenIDs(text)
            if ids != fixture.tokenIDs[index] {
                mismatches.append("#\(index) \(text.debugDescription.prefix(120)): got \(ids.prefix(40)), expected \(fixture.tokenIDs[index].prefix(40))")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(fixture.texts.count) texts differ:\n\(mismatches.prefix(20).joined(separator: "\n"))")
    }

    @Test("one batch of every text: cosine to the reference at least 0.9999 on each")
    func batchMatchesReference() throws {
        let fixture = try ReferenceFixture.load()
        let embedder = try SharedEngine.embedder()
        let vectors = embedder.embed(fixture.texts)
        try expectClose(vectors, fixture, path: "batch of \(fixture.texts.count), \(embedder.threads) threads")
    }

    @Test("texts one at a time (OpenBLAS threads, not split batches): cosine at least 0.9999 on each")
    func singleTextsMatchReference() throws {
        let fixture = try ReferenceFixture.load()
        let embedder = try SharedEngine.embedder()
        let vectors = fixture.texts.map { embedder.embed($0) }
        try expectClose(vectors, fixture, path: "single texts")
    }

    @Test("vectors are unit length and 384-dimensional, the empty text included")
    func vectorsAreUnitLength() throws {
        let embedder = try SharedEngine.embedder()
        for vector in embedder.embed(["", " ", "hello", String(repeating: "long text ", count: 400)]) {
            #expect(vector.count == 384)
            let norm = vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
        #expect(embedder.embed([String]()).isEmpty)
    }

    func expectClose(_ vectors: [[Float]], _ fixture: ReferenceFixture, path: String) throws {
        let cosines = zip(vectors, fixture.embeddings).map { cosine($0, $1) }
        let worst = cosines.indices.min { cosines[$0] < cosines[$1] }!
        let failing = cosines.indices.filter { cosines[$0] < 0.9999 }
        #expect(failing.isEmpty, "\(path): \(failing.count) texts below 0.9999, e.g. \(failing.prefix(5).map { "#\($0) \(fixture.texts[$0].debugDescription.prefix(60)): \(cosines[$0])" })")
        print("\(path): worst cosine \(cosines[worst]) (#\(worst)), mean \(cosines.reduce(0, +) / Double(cosines.count))")
    }
}
