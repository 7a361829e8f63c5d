import Foundation
#if arch(x86_64)
import KBEmbeddingKernelsHaswell
#endif

/// all-MiniLM-L6-v2's shape (config.json): checked against the file when the model loads.
public struct EncoderShape: Sendable, Equatable {
    /// The hidden width (384).
    public var hidden = 384
    /// Attention heads (12, so 32 dimensions each).
    public var heads = 12
    /// Encoder layers (6).
    public var layers = 6
    /// The feed-forward width (1536).
    public var intermediate = 1536
    /// Word pieces in the vocabulary (30522).
    public var vocabulary = 30522
    /// Learned positions (512; the engine uses at most 256).
    public var positions = 512
    /// LayerNorm's epsilon (1e-12).
    public var layerNormEpsilon: Float = 1e-12

    /// One head's width.
    public var headWidth: Int { hidden / heads }

    /// Reads config.json and checks it is the architecture this engine runs.
    static func read(_ url: URL) throws -> EncoderShape {
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EmbeddingError(.modelInvalid, "cannot read \(url.path) as JSON")
        }
        func integer(_ key: String) -> Int? { (object[key] as? NSNumber)?.intValue }
        var shape = EncoderShape()
        shape.hidden = integer("hidden_size") ?? shape.hidden
        shape.heads = integer("num_attention_heads") ?? shape.heads
        shape.layers = integer("num_hidden_layers") ?? shape.layers
        shape.intermediate = integer("intermediate_size") ?? shape.intermediate
        shape.vocabulary = integer("vocab_size") ?? shape.vocabulary
        shape.positions = integer("max_position_embeddings") ?? shape.positions
        shape.layerNormEpsilon = (object["layer_norm_eps"] as? NSNumber)?.floatValue ?? shape.layerNormEpsilon
        let activation = object["hidden_act"] as? String ?? "gelu"
        guard activation == "gelu", shape.hidden % 16 == 0, shape.intermediate % 16 == 0, shape.hidden % shape.heads == 0 else {
            throw EmbeddingError(.modelInvalid, "\(url.path) describes a model this engine does not run (hidden_act \(activation), hidden \(shape.hidden), heads \(shape.heads), intermediate \(shape.intermediate)); it expects all-MiniLM-L6-v2")
        }
        return shape
    }
}

/// One encoder layer's parameters: pointers into the memory-mapped file, except the query, key
/// and value projections, stacked into one 3·hidden × hidden matrix so one sgemm computes all three.
struct EncoderLayer {
    let qkvWeight: UnsafeMutablePointer<Float>, qkvBias: UnsafeMutablePointer<Float>
    let outputWeight: UnsafePointer<Float>, outputBias: UnsafePointer<Float>
    let attentionNormGamma: UnsafePointer<Float>, attentionNormBeta: UnsafePointer<Float>
    let intermediateWeight: UnsafePointer<Float>, intermediateBias: UnsafePointer<Float>
    let feedForwardWeight: UnsafePointer<Float>, feedForwardBias: UnsafePointer<Float>
    let outputNormGamma: UnsafePointer<Float>, outputNormBeta: UnsafePointer<Float>
}

/// The work buffers of one thread's forward pass, grown to the largest batch seen.
final class EncoderScratch {
    private(set) var capacity = 0
    private(set) var hidden = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var qkv = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var context = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var projected = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var intermediate = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var ids = UnsafeMutablePointer<Int32>.allocate(capacity: 1)

    func reserve(tokens: Int, longest: Int, shape: EncoderShape) {
        guard tokens > capacity || longest * longest > scoresCapacity else { return }
        release()
        capacity = max(tokens, capacity, 64)
        scoresCapacity = max(longest * longest, scoresCapacity)
        hidden = .allocate(capacity: capacity * shape.hidden)
        qkv = .allocate(capacity: capacity * shape.hidden * 3)
        context = .allocate(capacity: capacity * shape.hidden)
        projected = .allocate(capacity: capacity * shape.hidden)
        intermediate = .allocate(capacity: capacity * shape.intermediate)
        scores = .allocate(capacity: scoresCapacity)
        ids = .allocate(capacity: capacity)
    }

    private var scoresCapacity = 1

    private func release() {
        hidden.deallocate(); qkv.deallocate(); context.deallocate(); projected.deallocate()
        intermediate.deallocate(); scores.deallocate(); ids.deallocate()
    }

    deinit { release() }
}

/// The BERT encoder of all-MiniLM-L6-v2 with mean pooling and L2 normalisation. Sequences are
/// packed one after another with no padding: every step but attention works row by row, and
/// attention runs per sequence over its own tokens only, which is what the padding mask does.
final class MiniLMEncoder: @unchecked Sendable {
    let shape: EncoderShape
    let blas: OpenBLAS
    private let file: SafeTensorsFile
    private let wordEmbeddings: UnsafePointer<Float>, positionEmbeddings: UnsafePointer<Float>, tokenTypeEmbeddings: UnsafePointer<Float>
    private let embeddingNormGamma: UnsafePointer<Float>, embeddingNormBeta: UnsafePointer<Float>
    private let layers: [EncoderLayer]

    init(modelDirectory: URL, blas: OpenBLAS) throws {
        let shape = try EncoderShape.read(modelDirectory.appendingPathComponent("config.json"))
        let file = try SafeTensorsFile(url: modelDirectory.appendingPathComponent("model.safetensors"))
        let h = shape.hidden
        self.shape = shape
        self.blas = blas
        self.file = file
        wordEmbeddings = try file.floats("embeddings.word_embeddings.weight", shape: [shape.vocabulary, h])
        positionEmbeddings = try file.floats("embeddings.position_embeddings.weight", shape: [shape.positions, h])
        tokenTypeEmbeddings = try file.floats("embeddings.token_type_embeddings.weight", shape: [2, h])
        embeddingNormGamma = try file.floats("embeddings.LayerNorm.weight", shape: [h])
        embeddingNormBeta = try file.floats("embeddings.LayerNorm.bias", shape: [h])
        layers = try (0..<shape.layers).map { index in
            let prefix = "encoder.layer.\(index)."
            let qkvWeight = UnsafeMutablePointer<Float>.allocate(capacity: 3 * h * h)
            let qkvBias = UnsafeMutablePointer<Float>.allocate(capacity: 3 * h)
            for (part, name) in ["query", "key", "value"].enumerated() {
                qkvWeight.advanced(by: part * h * h).update(from: try file.floats(prefix + "attention.self.\(name).weight", shape: [h, h]), count: h * h)
                qkvBias.advanced(by: part * h).update(from: try file.floats(prefix + "attention.self.\(name).bias", shape: [h]), count: h)
            }
            return EncoderLayer(
                qkvWeight: qkvWeight, qkvBias: qkvBias,
                outputWeight: try file.floats(prefix + "attention.output.dense.weight", shape: [h, h]),
                outputBias: try file.floats(prefix + "attention.output.dense.bias", shape: [h]),
                attentionNormGamma: try file.floats(prefix + "attention.output.LayerNorm.weight", shape: [h]),
                attentionNormBeta: try file.floats(prefix + "attention.output.LayerNorm.bias", shape: [h]),
                intermediateWeight: try file.floats(prefix + "intermediate.dense.weight", shape: [shape.intermediate, h]),
                intermediateBias: try file.floats(prefix + "intermediate.dense.bias", shape: [shape.intermediate]),
                feedForwardWeight: try file.floats(prefix + "output.dense.weight", shape: [h, shape.intermediate]),
                feedForwardBias: try file.floats(prefix + "output.dense.bias", shape: [h]),
                outputNormGamma: try file.floats(prefix + "output.LayerNorm.weight", shape: [h]),
                outputNormBeta: try file.floats(prefix + "output.LayerNorm.bias", shape: [h])
            )
        }
    }

    deinit {
        for layer in layers {
            layer.qkvWeight.deallocate()
            layer.qkvBias.deallocate()
        }
    }

    /// Encodes `sequences` (token ids, each at most `shape.positions` long) and writes one unit
    /// vector of `shape.hidden` floats per sequence to `output`, in order.
    func encode(_ sequences: ArraySlice<[Int32]>, into output: UnsafeMutablePointer<Float>, scratch: EncoderScratch) {
        let h = shape.hidden, width3 = 3 * h, dh = shape.headWidth
        let tokens = sequences.reduce(0) { $0 + $1.count }
        let longest = sequences.reduce(0) { max($0, $1.count) }
        guard tokens > 0 else { return }
        scratch.reserve(tokens: tokens, longest: longest, shape: shape)
        let loops = EncoderLoopsDispatch.self
        let x = scratch.hidden, qkv = scratch.qkv, context = scratch.context, projected = scratch.projected, inner = scratch.intermediate, scores = scratch.scores

        var offset = 0
        for sequence in sequences {
            sequence.withUnsafeBufferPointer { ids in
                loops.embed(ids.baseAddress!, count: ids.count, words: wordEmbeddings, positions: positionEmbeddings, tokenType: tokenTypeEmbeddings,
                            gamma: embeddingNormGamma, beta: embeddingNormBeta, into: x + offset * h, width: h, epsilon: shape.layerNormEpsilon)
            }
            offset += sequence.count
        }
        let scale = 1 / Float(dh).squareRoot()
        for layer in layers {
            // Q, K and V of every token at once, bias added row by row.
            blas.multiplyTransposed(m: tokens, n: width3, k: h, a: x, lda: h, b: layer.qkvWeight, ldb: h, c: qkv, ldc: width3)
            loops.addBias(qkv, bias: layer.qkvBias, rows: tokens, width: width3)
            // Attention per sequence and head over the sequence's own tokens.
            var start = 0
            for sequence in sequences {
                let n = sequence.count
                let base = qkv + start * width3
                for head in 0..<shape.heads {
                    let q = base + head * dh, k = base + h + head * dh, v = base + 2 * h + head * dh
                    blas.multiplyTransposed(m: n, n: n, k: dh, alpha: scale, a: q, lda: width3, b: k, ldb: width3, c: scores, ldc: n)
                    loops.softmaxRows(scores, rows: n, count: n, stride: n)
                    blas.multiply(m: n, n: dh, k: n, a: scores, lda: n, b: v, ldb: width3, c: context + start * h + head * dh, ldc: h)
                }
                start += n
            }
            blas.multiplyTransposed(m: tokens, n: h, k: h, a: context, lda: h, b: layer.outputWeight, ldb: h, c: projected, ldc: h)
            loops.addBiasResidualLayerNorm(projected, bias: layer.outputBias, residual: x, gamma: layer.attentionNormGamma, beta: layer.attentionNormBeta,
                                           rows: tokens, width: h, epsilon: shape.layerNormEpsilon)
            blas.multiplyTransposed(m: tokens, n: shape.intermediate, k: h, a: x, lda: h, b: layer.intermediateWeight, ldb: h, c: inner, ldc: shape.intermediate)
            loops.addBiasGELU(inner, bias: layer.intermediateBias, rows: tokens, width: shape.intermediate)
            blas.multiplyTransposed(m: tokens, n: h, k: shape.intermediate, a: inner, lda: shape.intermediate, b: layer.feedForwardWeight, ldb: shape.intermediate, c: projected, ldc: h)
            loops.addBiasResidualLayerNorm(projected, bias: layer.feedForwardBias, residual: x, gamma: layer.outputNormGamma, beta: layer.outputNormBeta,
                                           rows: tokens, width: h, epsilon: shape.layerNormEpsilon)
        }
        var start = 0
        for (index, sequence) in sequences.enumerated() {
            loops.meanPoolNormalize(x + start * h, rows: sequence.count, width: h, into: output + index * h)
            start += sequence.count
        }
    }
}

/// The Haswell build of `EncoderLoops` when this CPU has AVX2 and FMA, else the baseline build.
enum EncoderLoopsDispatch {
    /// Whether the AVX2 build runs.
    static let usesAVX2 = CPUFeatures.hasAVX2FMA

    static func embed(_ ids: UnsafePointer<Int32>, count: Int, words: UnsafePointer<Float>, positions: UnsafePointer<Float>, tokenType: UnsafePointer<Float>,
                      gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int, epsilon: Float) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.embed(ids, count: count, words: words, positions: positions, tokenType: tokenType, gamma: gamma, beta: beta, into: out, width: width, epsilon: epsilon) }
        #endif
        EncoderLoops.embed(ids, count: count, words: words, positions: positions, tokenType: tokenType, gamma: gamma, beta: beta, into: out, width: width, epsilon: epsilon)
    }

    static func addBias(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, width: Int) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.addBias(x, bias: bias, rows: rows, width: width) }
        #endif
        EncoderLoops.addBias(x, bias: bias, rows: rows, width: width)
    }

    static func addBiasGELU(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, width: Int) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.addBiasGELU(x, bias: bias, rows: rows, width: width) }
        #endif
        EncoderLoops.addBiasGELU(x, bias: bias, rows: rows, width: width)
    }

    static func addBiasResidualLayerNorm(_ sublayer: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>,
                                         gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, rows: Int, width: Int, epsilon: Float) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.addBiasResidualLayerNorm(sublayer, bias: bias, residual: residual, gamma: gamma, beta: beta, rows: rows, width: width, epsilon: epsilon) }
        #endif
        EncoderLoops.addBiasResidualLayerNorm(sublayer, bias: bias, residual: residual, gamma: gamma, beta: beta, rows: rows, width: width, epsilon: epsilon)
    }

    static func softmaxRows(_ scores: UnsafeMutablePointer<Float>, rows: Int, count: Int, stride: Int) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.softmaxRows(scores, rows: rows, count: count, stride: stride) }
        #endif
        EncoderLoops.softmaxRows(scores, rows: rows, count: count, stride: stride)
    }

    static func meanPoolNormalize(_ x: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        if usesAVX2 { return HaswellEncoderLoops.meanPoolNormalize(x, rows: rows, width: width, into: out) }
        #endif
        EncoderLoops.meanPoolNormalize(x, rows: rows, width: width, into: out)
    }
}
