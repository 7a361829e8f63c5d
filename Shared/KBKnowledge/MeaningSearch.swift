import Foundation
import KBKnowledge
import KBProto
import KBRPC

/// How `ukb search` finds entities.
public enum SearchMode: String, Sendable {
    /// Vector 0.7 + BM25 0.3 over the indexed text (the weights of the KnowledgeBeast guide),
    /// through vector-search's hybrid mode.
    case hybrid
    /// Vector similarity alone.
    case semantic
    /// The graph store's own word search (every word of the text, prefixes, any case).
    case keyword
}

/// Search by meaning over the team's indexed knowledge: the query embedded by the inference
/// gateway (the local 384-dimensional model) and searched in vector-search's `knowledge_384`
/// collection (written by the gateway's indexer from the graph's change feed), filtered to the
/// team and optionally to entity types.
public struct MeaningSearch: Sendable {
    /// The collection the indexer writes.
    public static let collection = "knowledge_384"

    /// One entity found, by team and name, with its fused score and the two parts of it.
    public struct Hit: Sendable, Equatable {
        public var team: String
        public var name: String
        public var entityType: String
        public var score: Float
        public var vectorScore: Float
        public var keywordScore: Float
    }

    /// The inference gateway (embeddings of queries).
    public let gateway: RPCClient
    /// vector-search (the `knowledge_384` collection).
    public let vectors: RPCClient

    public init(gateway: RPCClient, vectors: RPCClient) {
        self.gateway = gateway
        self.vectors = vectors
    }

    public func close() async {
        await gateway.close()
        await vectors.close()
    }

    /// The entities of `team` nearest in meaning to `text` (hybrid: fused with BM25 on its words).
    public func search(_ text: String, team: String, types: [String], limit: Int, mode: SearchMode) async throws -> [Hit] {
        try await search(text, teams: [team], types: types, limit: limit, mode: mode)
    }

    /// The entities of `teams` (every team when empty) nearest in meaning to `text`.
    public func search(_ text: String, teams: [String], types: [String], limit: Int, mode: SearchMode) async throws -> [Hit] {
        let embedded = try await gateway.call(InferenceGatewayMethods.embed, .with { $0.texts = [text] }, options: CallOptions(timeout: .seconds(10)))
        guard let vector = embedded.embeddings.first?.values, !vector.isEmpty else {
            throw RPCError(.internal, "the inference gateway returned no embedding")
        }
        return try await nearest(vector, teams: teams, types: types, limit: limit, keywords: mode == .hybrid ? text : nil, excluding: nil)
    }

    /// The entities of `team` nearest in meaning to entity `name` (its indexed vector).
    public func similar(to name: String, team: String, types: [String], limit: Int) async throws -> [Hit] {
        let id = KnowledgePointID.make(team: team, name: name)
        let found = try await vectors.call(VectorSearchMethods.getPoints, .with {
            $0.collection = Self.collection
            $0.ids = [id]
            $0.withVector = true
        }, options: CallOptions(timeout: .seconds(10)))
        guard let point = found.points.first, !point.vector.isEmpty else {
            throw RPCError(.notFound, field: "name", reason: .notFound, "\(name.debugDescription) of team \(team.debugDescription) is not indexed (yet): the indexer writes an entity within seconds of its change")
        }
        return try await nearest(point.vector, teams: [team], types: types, limit: limit, keywords: nil, excluding: id)
    }

    /// The entities of `teams` nearest to `vector` (by the vectors alone).
    public func nearest(to vector: [Float], teams: [String], limit: Int) async throws -> [Hit] {
        try await nearest(vector, teams: teams, types: [], limit: limit, keywords: nil, excluding: nil)
    }

    private func nearest(_ vector: [Float], teams: [String], types: [String], limit: Int, keywords: String?, excluding: String?) async throws -> [Hit] {
        let answer = try await vectors.call(VectorSearchMethods.search, .with {
            $0.collection = Self.collection
            $0.vector = vector
            $0.limit = Int32(clamping: limit + (excluding == nil ? 0 : 1))
            $0.withPayload = true
            if let keywords {
                $0.textQuery = keywords
                $0.vectorWeight = .with { $0.value = 0.7 }
                $0.keywordWeight = .with { $0.value = 0.3 }
            }
            $0.filter = .with { filter in
                if teams.count == 1 {
                    filter.must = [.with { $0.match = .with { $0.key = "team"; $0.value = .with { $0.keyword = teams[0] } } }]
                } else if !teams.isEmpty {
                    filter.must = [.with { $0.any = .with { $0.key = "team"; $0.keywords = teams } }]
                }
                if !types.isEmpty {
                    filter.must.append(.with { $0.any = .with { $0.key = "entityType"; $0.keywords = types } })
                }
                if let excluding { filter.mustNot = [.with { $0.hasID_p = .with { $0.values = [excluding] } }] }
            }
        }, options: CallOptions(timeout: .seconds(10)))
        if answer.degraded { throw RPCError(.unavailable, "vector-search's index is unavailable (keyword-only answers)") }
        return answer.results.prefix(limit).compactMap { result in
            guard case .keyword(let name)? = result.point.payload["name"]?.kind,
                  case .keyword(let team)? = result.point.payload["team"]?.kind else { return nil }
            var entityType = ""
            if case .keyword(let type)? = result.point.payload["entityType"]?.kind { entityType = type }
            return Hit(team: team, name: name, entityType: entityType, score: result.score, vectorScore: result.vectorScore, keywordScore: result.keywordScore)
        }
    }

    /// An error as one short phrase.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? RPCError { return "\(error.code.name): \(error.message)" }
        return "\(error)"
    }
}
