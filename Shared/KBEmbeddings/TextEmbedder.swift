import Dispatch
import Foundation
import Logging

/// Sentence embeddings from all-MiniLM-L6-v2, in process: 384-dimensional unit vectors equal (to
/// float rounding) to what sentence-transformers computes. One call uses every thread it was given;
/// calls from several tasks run one at a time (each already keeps the cores busy).
///
/// A batch is tokenized, sorted by length and split across the threads with equal token counts;
/// each thread packs its sequences without padding and runs the encoder on OpenBLAS with one
/// OpenBLAS thread. A single text instead lets OpenBLAS use all the threads inside each sgemm.
public final class TextEmbedder: @unchecked Sendable {
    /// The vectors' dimension.
    public static let dimension = 384
    /// The model's name, as `Embed` answers it and the embedding cache keys it.
    public static let modelName = "all-MiniLM-L6-v2"
    /// The tokenizer (public for callers that want token counts).
    public let tokenizer: WordPieceTokenizer
    /// Threads one call uses.
    public let threads: Int
    /// Where the model was read from.
    public let modelDirectory: URL
    /// The engine's BLAS (its core type, for logs).
    public let blas: OpenBLAS
    private let encoder: MiniLMEncoder
    private let lock = NSLock()
    private let scratches: [EncoderScratch]
    /// At most this many tokens go through one forward pass (bounds the work buffers: ~60 KB a token).
    static let tokensPerPass = 8192

    /// Loads the model from `modelDirectory` (nil: `ModelLocation.find`) for `threads` threads
    /// (0: one per core), loading OpenBLAS with a core type chosen for this CPU, and logs what it chose.
    public init(modelDirectory: URL? = nil, threads: Int = 0, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger? = nil) throws {
        guard threads >= 0 else { throw EmbeddingError(.invalidArgument, "threads must be 0 (one per core) or more, got \(threads)") }
        let directory = try modelDirectory ?? ModelLocation.find(environment: environment)
        self.modelDirectory = directory
        self.threads = threads == 0 ? max(1, ProcessInfo.processInfo.activeProcessorCount) : threads
        blas = try OpenBLAS.shared()
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory.appendingPathComponent("vocab.txt"), maxTokens: 256)
        encoder = try MiniLMEncoder(modelDirectory: directory, blas: blas)
        scratches = (0..<self.threads).map { _ in EncoderScratch() }
        logger?.info("embedding engine ready", metadata: [
            "model": "\(directory.path)", "threads": "\(self.threads)", "openblas_core": "\(blas.coreName)",
            "openblas_core_choice": "\(blas.coreTypeChoice)", "simd_loops": "\(EncoderLoopsDispatch.usesAVX2 ? "avx2+fma" : "baseline")",
        ])
    }

    /// Loads the model as `configuration` says.
    public convenience init(configuration: EmbeddingConfiguration, logger: Logger? = nil) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["KB_EMBEDDING_MODEL_DIR"] = configuration.modelDirectory
        // Found (and checked) the same way, so a wrong folder fails naming the variable and the missing files.
        try self.init(modelDirectory: ModelLocation.find(environment: environment), threads: configuration.threads, logger: logger)
    }

    /// One line saying how the engine runs: OpenBLAS's core and why, the SIMD loops, the threads.
    public var backendDescription: String {
        "OpenBLAS core \(blas.coreName) (\(blas.coreTypeChoice)), \(EncoderLoopsDispatch.usesAVX2 ? "AVX2+FMA" : "baseline") SIMD loops, \(threads) thread(s)"
    }

    /// The embedding of one text.
    public func embed(_ text: String) -> [Float] {
        embed([text])[0]
    }

    /// The embeddings of `texts`, in order.
    public func embed(_ texts: [String]) -> [[Float]] {
        embed(tokenIDs: texts.map(tokenizer.tokenIDs))
    }

    /// The embeddings of already tokenized texts (each `[CLS] … [SEP]`, at most 256 ids), in order.
    public func embed(tokenIDs sequences: [[Int32]]) -> [[Float]] {
        guard !sequences.isEmpty else { return [] }
        let h = Self.dimension
        let output = UnsafeMutablePointer<Float>.allocate(capacity: sequences.count * h)
        defer { output.deallocate() }
        // Longest first, then dealt to the thread with the fewest tokens so far.
        let order = sequences.indices.sorted { sequences[$0].count > sequences[$1].count }
        let workers = min(threads, sequences.count)
        var assigned = Array(repeating: [Int](), count: workers)
        var load = Array(repeating: 0, count: workers)
        for index in order {
            let worker = load.indices.min { load[$0] < load[$1] }!
            assigned[worker].append(index)
            load[worker] += sequences[index].count + 8
        }
        lock.lock()
        defer { lock.unlock() }
        blas.threads = workers == 1 ? threads : 1
        let destination = OutputBuffer(pointer: output)
        let assignment = assigned
        let run: @Sendable (Int) -> Void = { worker in
            let indices = assignment[worker]
            let local = UnsafeMutablePointer<Float>.allocate(capacity: indices.count * h)
            defer { local.deallocate() }
            let group = indices.map { sequences[$0] }
            var start = 0
            while start < group.count {
                var end = start, tokens = 0
                while end < group.count, end == start || tokens + group[end].count <= Self.tokensPerPass {
                    tokens += group[end].count
                    end += 1
                }
                self.encoder.encode(group[start..<end], into: local + start * h, scratch: self.scratches[worker])
                start = end
            }
            for (position, index) in indices.enumerated() {
                (destination.pointer + index * h).update(from: local + position * h, count: h)
            }
        }
        if workers == 1 {
            run(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers, execute: run)
        }
        return (0..<sequences.count).map { Array(UnsafeBufferPointer(start: output + $0 * h, count: h)) }
    }
}

/// The output rows, written by the worker threads at disjoint indices.
private struct OutputBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
}
