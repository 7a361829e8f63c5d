import Foundation
import KBHTTPClient

/// Embeddings from a provider: OpenAI's `POST {base}/embeddings` (`text-embedding-3-small`,
/// 1536 dimensions) and Ollama's `POST {base}/api/embed`.
public struct EmbeddingResult: Sendable, Equatable {
    /// One vector per text, in the texts' order.
    public var vectors: [[Float]]
    /// The input tokens the provider counted (0 when it says nothing).
    public var inputTokens: Int
    public var model: String

    public init(vectors: [[Float]], inputTokens: Int, model: String) {
        self.vectors = vectors
        self.inputTokens = inputTokens
        self.model = model
    }
}

extension ProviderCodec {
    /// The HTTP request embedding `texts` with `model`; `dimensions` (OpenAI's `text-embedding-3`
    /// models can shorten their vectors) only when asked.
    public func embeddingRequest(texts: [String], model: String, dimensions: Int?) throws -> HTTPRequest {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = endpoint.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        var body: [String: Any] = ["model": model, "input": texts]
        let url: String
        switch endpoint.api {
        case .openAI:
            url = endpoint.baseURL + "/embeddings"
            body["encoding_format"] = "float"
            if let dimensions { body["dimensions"] = dimensions }
        case .ollama:
            url = endpoint.baseURL + "/api/embed"
        case .anthropic, .gemini:
            throw ProviderFailure(.configuration, "\(endpoint.api.rawValue)'s API has no embeddings the gateway speaks (OpenAI's and Ollama's only)")
        }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return HTTPRequest(method: "POST", url: url, headers: headers, body: [UInt8](data), timeouts: endpoint.timeouts)
    }

    /// A successful (2xx) embeddings answer for `count` texts.
    public func embeddingResult(_ body: [UInt8], count: Int) throws -> EmbeddingResult {
        let object = try Self.object(body)
        var vectors: [[Float]]
        var tokens = 0
        switch endpoint.api {
        case .openAI:
            guard let data = object["data"] as? [[String: Any]] else { throw Self.malformed("no data") }
            vectors = Array(repeating: [], count: data.count)
            for (position, item) in data.enumerated() {
                let index = (item["index"] as? Int) ?? position
                guard vectors.indices.contains(index), vectors[index].isEmpty else { throw Self.malformed("data[\(position)].index \(index) is out of place") }
                vectors[index] = try Self.floats(item["embedding"], at: "data[\(position)].embedding")
            }
            tokens = Self.int((object["usage"] as? [String: Any])?["prompt_tokens"])
        case .ollama:
            guard let embeddings = object["embeddings"] as? [Any] else { throw Self.malformed("no embeddings") }
            vectors = try embeddings.enumerated().map { try Self.floats($1, at: "embeddings[\($0)]") }
            tokens = Self.int(object["prompt_eval_count"])
        case .anthropic, .gemini:
            throw ProviderFailure(.configuration, "no embeddings over \(endpoint.api.rawValue)'s API")
        }
        guard vectors.count == count else { throw Self.malformed("\(vectors.count) vectors for \(count) texts") }
        guard let width = vectors.first?.count, width > 0, vectors.allSatisfy({ $0.count == width }) else {
            throw Self.malformed("vectors of different or zero lengths")
        }
        return EmbeddingResult(vectors: vectors, inputTokens: tokens, model: object["model"] as? String ?? "")
    }

    static func floats(_ value: Any?, at path: String) throws -> [Float] {
        guard let numbers = value as? [Any] else { throw malformed("\(path) is not an array of numbers") }
        return try numbers.map { number in
            guard let double = (number as? NSNumber)?.doubleValue, double.isFinite else { throw malformed("\(path) holds something other than a finite number") }
            return Float(double)
        }
    }
}

extension ProviderClient {
    /// Texts per embeddings request: OpenAI takes at most 2,048 inputs (and about 300,000
    /// tokens) per request, and 256 vectors of 3,072 numbers stay well inside the answer bound.
    public static let embeddingBatchTexts = 256
    /// Estimated tokens (bytes / 4) per embeddings request.
    public static let embeddingBatchTokens = 200_000

    /// Embeds `texts` with `model`, in batches (`embeddingBatchTexts`, `embeddingBatchTokens`)
    /// sent one after the other; the vectors come back in the texts' order, the tokens summed.
    /// Past `deadline` the batch in flight is aborted and `DeadlineExceeded` thrown (libcurl's
    /// own time limit, as for completions).
    public func embed(_ texts: [String], model: String, dimensions: Int?, deadline: ContinuousClock.Instant? = nil) async throws -> EmbeddingResult {
        var merged = EmbeddingResult(vectors: [], inputTokens: 0, model: "")
        merged.vectors.reserveCapacity(texts.count)
        for batch in Self.embeddingBatches(texts) {
            let part = try await embedBatch(Array(texts[batch]), model: model, dimensions: dimensions, deadline: deadline)
            if let width = merged.vectors.first?.count, part.vectors.first?.count != width {
                throw ProviderFailure(.transient, "malformed answer: the batches' vectors have different lengths")
            }
            merged.vectors += part.vectors
            merged.inputTokens += part.inputTokens
            if merged.model.isEmpty { merged.model = part.model }
        }
        return merged
    }

    /// A text's tokens, estimated high: ASCII at 4 bytes a token, every other character a token
    /// of its own (CJK runs about one token per character, not per 4 bytes).
    static func estimatedTokens(_ text: String) -> Int {
        var ascii = 0, other = 0
        for scalar in text.unicodeScalars {
            if scalar.isASCII { ascii += 1 } else { other += 1 }
        }
        return ascii / 4 + other + 1
    }

    /// `texts`' index ranges, each within both batch bounds (a text larger than the token bound alone).
    public static func embeddingBatches(_ texts: [String]) -> [Range<Int>] {
        var batches: [Range<Int>] = []
        var start = 0, tokens = 0
        for (index, text) in texts.enumerated() {
            let estimate = Self.estimatedTokens(text)
            if index > start, index - start >= embeddingBatchTexts || tokens + estimate > embeddingBatchTokens {
                batches.append(start..<index)
                start = index
                tokens = 0
            }
            tokens += estimate
        }
        if start < texts.count { batches.append(start..<texts.count) }
        return batches
    }

    private func embedBatch(_ texts: [String], model: String, dimensions: Int?, deadline: ContinuousClock.Instant?) async throws -> EmbeddingResult {
        var request = try codec.embeddingRequest(texts: texts, model: model, dimensions: dimensions)
        let clamped = Self.clamp(&request, to: deadline)
        do {
            let (head, body) = try await http.fetch(request, maximumBodyBytes: maximumAnswerBytes)
            guard (200..<300).contains(head.status) else {
                throw redacted(ProviderFailure.answer(status: head.status, head: head, body: body))
            }
            return try codec.embeddingResult(body, count: texts.count)
        } catch let error as HTTPClientError where error.kind == .tooLarge {
            // Vectors past the gateway's bound: the request's size, not the provider's health.
            throw ProviderFailure(.request, "the embeddings answer is larger than \(maximumAnswerBytes) bytes: send fewer texts per request")
        } catch let error as HTTPClientError {
            if clamped, Self.hitDeadline(error, deadline) { throw DeadlineExceeded() }
            throw redacted(ProviderFailure.transport(error))
        } catch let failure as ProviderFailure {
            throw redacted(failure)
        }
    }
}
