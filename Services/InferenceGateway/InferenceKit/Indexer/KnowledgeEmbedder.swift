import KBEmbeddings
import NIOPosix

/// The indexer's embeddings: one 384-dimensional vector per document from the local model,
/// whatever the document's length.
///
/// The model reads 256 word pieces. A longer text is cut into windows of 254 word pieces
/// (`[CLS]` and `[SEP]` around each), every window is embedded, and the document's vector is
/// the mean of the windows' vectors, normalised again (chunk and mean-pool: one point per
/// entity, so `team:name` stays its id). At most `maximumChunks` windows are read (about 4,000
/// word pieces, some 16,000 characters of English); the rest of a longer text is still indexed
/// for BM25 in the point's `text`, but not in its vector.
public struct KnowledgeEmbedder: Sendable {
    /// The windows one document is cut into, at most.
    public static let maximumChunks = 16

    let engine: TextEmbedder
    /// The model's tokenizer without its 256-piece cap (up to `maximumChunks` windows).
    let longTokenizer: WordPieceTokenizer

    /// An embedder over the loaded local model.
    public init(engine: TextEmbedder) throws {
        self.engine = engine
        let window = engine.tokenizer.maxTokens - 2
        longTokenizer = try WordPieceTokenizer(vocabulary: engine.tokenizer.vocabulary, maxTokens: window * Self.maximumChunks + 2)
    }

    /// The token windows of `text`, each `[CLS] … [SEP]` and at most the model's length.
    func windows(_ text: String) -> [[Int32]] {
        let ids = longTokenizer.tokenIDs(text)
        let pieces = ids.dropFirst().dropLast()
        let width = engine.tokenizer.maxTokens - 2
        guard !pieces.isEmpty else { return [ids] }
        return stride(from: pieces.startIndex, to: pieces.endIndex, by: width).map { start in
            [longTokenizer.classifierID] + pieces[start..<min(start + width, pieces.endIndex)] + [longTokenizer.separatorID]
        }
    }

    /// The vectors of `texts`, in order; computed on the blocking pool. Returns the windows
    /// embedded too (a measure of the work done).
    public func embed(_ texts: [String]) async throws -> (vectors: [[Float]], windows: Int) {
        let perText = texts.map(windows)
        let flat = perText.flatMap { $0 }
        let engine = self.engine
        let computed = try await NIOThreadPool.singleton.runIfActive { engine.embed(tokenIDs: flat) }
        var vectors: [[Float]] = []
        vectors.reserveCapacity(texts.count)
        var next = 0
        for windows in perText {
            let slice = computed[next..<(next + windows.count)]
            next += windows.count
            if slice.count == 1 {
                vectors.append(slice.first!)
                continue
            }
            var sum = [Float](repeating: 0, count: TextEmbedder.dimension)
            for vector in slice {
                for index in sum.indices { sum[index] += vector[index] }
            }
            let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
            vectors.append(norm > 0 ? sum.map { $0 / norm } : sum)
        }
        return (vectors, flat.count)
    }
}
