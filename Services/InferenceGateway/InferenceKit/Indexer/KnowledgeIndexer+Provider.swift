import KBRPC
import Metrics

/// A provider's embedding model the indexer also writes with, into a collection of its own:
/// `knowledge_1536` with OpenAI's `text-embedding-3-small` when `OPENAI_API_KEY` is configured.
public struct ProviderModel: Sendable {
    /// The collection (`knowledge_1536`).
    public var collection: String
    /// The model's vector width (1536).
    public var dimension: Int
    /// The model's name, for logs and status.
    public var model: String
    /// The vectors of some texts, in order (through the gateway's router: breakers, budget
    /// admission, costs recorded).
    public var embed: @Sendable ([String]) async throws -> [[Float]]

    /// A provider model writing into `collection`.
    public init(collection: String, dimension: Int, model: String, embed: @escaping @Sendable ([String]) async throws -> [[Float]]) {
        self.collection = collection
        self.dimension = dimension
        self.model = model
        self.embed = embed
    }
}

extension KnowledgeIndexer {
    /// Writes `documents` to the provider's collection. A provider that does not answer (a
    /// transient failure) or vector-search down fails the batch, which is retried like any
    /// other; a provider that refuses (budget exhausted, a bad request, vectors of the wrong
    /// width) leaves those entities out of that collection only — the local one must not wait on
    /// a paid provider — counted in `provider_skipped`, written at their next change or rebuild.
    func index(_ documents: [KnowledgeDocument], with provider: ProviderModel) async throws {
        do {
            let written = try await write(documents, into: provider.collection, force: false) { texts in
                let vectors = try await provider.embed(texts)
                guard vectors.count == texts.count, vectors.allSatisfy({ $0.count == provider.dimension }) else {
                    throw IndexerError(.unexpectedAnswer, "\(provider.model) answered \(vectors.count) vectors of \(vectors.first?.count ?? 0) dimensions for \(texts.count) texts (expected \(provider.dimension))")
                }
                return vectors
            }
            state.withLock {
                $0.providerIndexed += Int64(written)
                $0.providerError = nil
            }
            Counter(label: "knowledge_index_provider_indexed_total").increment(by: written)
        } catch let failure as RoutingFailure where failure.kind != .transient && failure.kind != .cancelled {
            skip(documents.count, provider: provider, because: "\(failure)")
        } catch let error as IndexerError {
            skip(documents.count, provider: provider, because: error.message)
        }
    }

    func skip(_ count: Int, provider: ProviderModel, because reason: String) {
        logger.warning("entities left out of the provider's collection", metadata: ["collection": "\(provider.collection)", "model": "\(provider.model)", "entities": "\(count)", "reason": "\(reason)"])
        state.withLock {
            $0.providerSkipped += Int64(count)
            $0.providerError = reason
        }
        Counter(label: "knowledge_index_provider_skipped_total").increment(by: count)
    }
}
