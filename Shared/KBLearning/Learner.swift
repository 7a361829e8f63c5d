import Foundation
import KBKnowledge
import KBProto
import KBRPC
import KBSessions
import Metrics

/// Turns exchanges into knowledge in a team's graph: one extraction call per exchange through the
/// inference gateway (`operation: "extract"`), items below the confidence floor skipped, each
/// item deduplicated by meaning against what the team already knows (cosine ≥ the merge
/// threshold merges its observations into that entity), written through the graph store with
/// `source: auto`, its confidence, and provenance on every observation. The indexer then makes
/// new knowledge searchable.
///
/// When no provider answers (all down, none configured, or the budget blocks the call), the
/// exchange is not guessed at: it is classified by keywords (its intent, a provisional type) and
/// reported as `queued`, and its follower keeps it for a later extraction. Heuristic items are
/// never stored: at the default confidence floor they would be skipped anyway, and a graph that
/// fills with keyword guesses is worse than one that waits.
public actor Learner {
    public struct Configuration: Sendable {
        public var team: String
        /// Items less sure than this are skipped (`ukb learn --min-confidence`, default 0.6).
        public var minConfidence: Double
        /// Cosine at or above which an item merges into the entity it matches (default 0.95).
        public var mergeThreshold: Float
        /// Never call a paid provider.
        public var localOnly: Bool
        /// The extraction call's deadline.
        public var timeout: Duration

        public init(team: String, minConfidence: Double = 0.6, mergeThreshold: Float = 0.95, localOnly: Bool = false, timeout: Duration = .seconds(120)) {
            self.team = team
            self.minConfidence = minConfidence
            self.mergeThreshold = mergeThreshold
            self.localOnly = localOnly
            self.timeout = timeout
        }
    }

    /// What became of one exchange.
    public enum Outcome: Sendable, Equatable {
        /// Extracted: the names created and merged into, and what was skipped.
        case learned(created: [String], merged: [String], skippedLowConfidence: Int, costUSD: Double, intent: SessionIntent)
        /// The model's answer was not valid twice: nothing written.
        case failed(reason: String, costUSD: Double)
        /// No provider answered: nothing written, kept for later; the keyword classification.
        case queued(reason: String, intent: SessionIntent, provisionalType: KnowledgeKind?)
    }

    public let configuration: Configuration
    let graph: RPCClient
    let meaning: MeaningSearch
    /// Entities written in this run, with their vectors: found again before the indexer has
    /// indexed them.
    var recent: [(name: String, type: String, vector: [Float])] = []
    /// Each session's goal as the model last stated it.
    var goals: [String: String] = [:]

    public init(graph: RPCClient, gateway: RPCClient, vectors: RPCClient, configuration: Configuration) {
        self.graph = graph
        self.meaning = MeaningSearch(gateway: gateway, vectors: vectors)
        self.configuration = configuration
    }

    /// Extracts, deduplicates and writes the knowledge of one exchange. Throws only when the
    /// graph store (or the search for duplicates) fails — then nothing of the exchange is
    /// recorded as done, and writing it again later merges instead of duplicating.
    ///
    /// Metrics (on the learner's admin port under `kb up`): `knowledge_extraction_exchanges_total`
    /// by `outcome` (extracted, failed, queued), `knowledge_extraction_items_total` by `type`
    /// (items written, new or merged), `knowledge_extraction_merged_total`,
    /// `knowledge_extraction_skipped_total` (below the confidence floor), and
    /// `knowledge_extraction_latency_seconds`: an exchange's extraction, deduplication and
    /// writes, end to end.
    public func learn(_ exchange: SessionExchange) async throws -> Outcome {
        let started = ContinuousClock.now
        let outcome = try await extractAndWrite(exchange)
        switch outcome {
        case .learned:
            Counter(label: "knowledge_extraction_exchanges_total", dimensions: [("outcome", "extracted")]).increment()
            Timer(label: "knowledge_extraction_latency_seconds").record(duration: ContinuousClock.now - started)
        case .failed:
            Counter(label: "knowledge_extraction_exchanges_total", dimensions: [("outcome", "failed")]).increment()
            Timer(label: "knowledge_extraction_latency_seconds").record(duration: ContinuousClock.now - started)
        case .queued:
            Counter(label: "knowledge_extraction_exchanges_total", dimensions: [("outcome", "queued")]).increment()
        }
        return outcome
    }

    func extractAndWrite(_ exchange: SessionExchange) async throws -> Outcome {
        var cost = 0.0
        var parsed: ExtractionFormat.Answer?
        var lastProblem = ""
        let goal = try await goal(of: exchange.provenance.sessionID)
        for attempt in 0..<2 {
            let answer: Kb_Inference_V1_CompletionResponse
            do {
                answer = try await extract(exchange, goal: goal, retry: attempt > 0)
            } catch let error as RPCError where error.code == .aborted && error.reason == .schemaMismatch {
                // The gateway has already asked twice (its own retry of an answer off the schema).
                return .failed(reason: "invalid answer twice: \(error.message)", costUSD: cost)
            } catch let error as RPCError where [.unavailable, .deadlineExceeded, .resourceExhausted, .failedPrecondition].contains(error.code) {
                // No step in the trajectory yet: it is written once, when the exchange is learned.
                let heuristic = KeywordClassifier.classify(exchange)
                return .queued(reason: "\(error.code.name): \(error.message)", intent: heuristic.intent, provisionalType: heuristic.type)
            } catch let error as RPCError {
                // Anything else is this exchange's own problem (a provider refusing it as too long
                // for its context, a prompt it blocks, …): recorded, and the run goes on.
                return .failed(reason: "the extraction call failed: \(error.code.name): \(error.message)", costUSD: cost)
            }
            cost += answer.costUsd
            do {
                parsed = try ExtractionFormat.answer(from: answer.content)
                break
            } catch {
                lastProblem = error.description
            }
        }
        guard let parsed else { return .failed(reason: "invalid answer twice: \(lastProblem)", costUSD: cost) }
        let items = parsed.items
        var created: [String] = [], merged: [String] = []
        var skipped = 0
        var written: [String: String] = [:]  // item name → entity name it went to
        let keywords = KeywordClassifier.classify(exchange)
        let intent = parsed.intent ?? keywords.intent
        do {
            for item in items {
                guard item.confidence >= configuration.minConfidence else {
                    skipped += 1
                    Counter(label: "knowledge_extraction_skipped_total", dimensions: [("reason", "low_confidence")]).increment()
                    continue
                }
                let target = try await write(item, from: exchange)
                written[item.name] = target.name
                if target.merged { merged.append(target.name) } else { created.append(target.name) }
                Counter(label: "knowledge_extraction_items_total", dimensions: [("type", item.type.rawValue)]).increment()
                if target.merged { Counter(label: "knowledge_extraction_merged_total").increment() }
            }
            try await relate(items.filter { written[$0.name] != nil }, written: written)
            if let newGoal = parsed.goal { goals[exchange.provenance.sessionID] = newGoal }
            try await record(
                exchange, intent: intent, confidence: parsed.intent == nil ? keywords.confidence : (parsed.intentConfidence ?? 0.5),
                by: parsed.intent == nil ? "keywords (the model gave none)" : "model", goal: parsed.goal ?? goal, produced: created + merged
            )
        } catch let error as RPCError where [.invalidArgument, .failedPrecondition, .outOfRange].contains(error.code) {
            // The graph store refuses something of this exchange (an entity grown past its size
            // limit, …): what was written stays (writes are idempotent), the exchange is failed
            // with the reason, and the run goes on. A store that is down still stops the run.
            return .failed(reason: "the graph store refused a write: \(error.code.name): \(error.message)", costUSD: cost)
        }
        return .learned(created: created, merged: merged, skippedLowConfidence: skipped, costUSD: cost, intent: intent)
    }

    func extract(_ exchange: SessionExchange, goal: String?, retry: Bool) async throws -> Kb_Inference_V1_CompletionResponse {
        let request = Kb_Inference_V1_CompletionRequest.with {
            $0.messages = [
                .with { $0.role = "system"; $0.content = ExtractionFormat.instructions },
                .with { $0.role = "user"; $0.content = (goal.map { "Session goal so far: \($0)\n\n" } ?? "") + exchange.text },
            ]
            $0.operation = "extract"
            // The provider is asked to follow the schema where it can (constrained decoding on
            // llama.cpp, structured outputs on OpenAI, a forced tool on Anthropic…), and the
            // gateway checks the answer against it in any case.
            $0.jsonSchema = ExtractionFormat.schema
            $0.jsonSchemaName = "knowledge_items"
            // The team goes with the project: the gateway's semantic cache is partitioned by it, and
            // one team's extraction must never answer another team's exchange.
            $0.project = "\(configuration.team)/\(exchange.provenance.project ?? "")"
            // Room for the schema's largest answer (6 items × 4 observations × 400 characters).
            $0.maxTokens = 3500
            $0.temperature = .with { $0.value = 0 }
            $0.localOnly = configuration.localOnly
            // A second try must reach the model, not the cache of the first answer.
            $0.noCache = retry
            $0.metadata = ["team": configuration.team, "session": exchange.provenance.sessionID, "exchange": exchange.id]
        }
        return try await meaning.gateway.call(InferenceGatewayMethods.complete, request, options: CallOptions(timeout: configuration.timeout))
    }

    /// Writes one item: merged into the entity it matches by meaning, or created.
    func write(_ item: KnowledgeItem, from exchange: SessionExchange) async throws -> (name: String, merged: Bool) {
        let vector = try await embed(item.embeddingText)
        let match = try await nearest(vector)
        let observations = item.observations.map { text in
            Kb_Graph_V1_Observation.with {
                $0.content = Self.printable(text)
                $0.type = "learned"
                if let ms = exchange.provenance.timeMs { $0.date = Self.iso(ms) }
                $0.metadata = Self.provenance(exchange)
            }
        }
        let team = configuration.team
        // The same knowledge by meaning, or an entity that already has the item's name (whose
        // fields — a person's type, source, confidence — must not be overwritten): merge the
        // observations into it.
        var existing: Kb_Graph_V1_Entity?
        if let match, match.score >= configuration.mergeThreshold {
            existing = try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = match.name }).entity
        }
        if existing == nil {
            existing = try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = item.name }).entity
        }
        if let existing {
            var update = existing
            update.observations = observations
            update.createdAtMs = 0
            update.lastModifiedMs = 0
            _ = try await graph.call(GraphStoreMethods.putEntities, .with { $0.team = team; $0.entities = [update] })
            return (existing.name, true)
        }
        let entity = Kb_Graph_V1_Entity.with {
            $0.name = item.name
            $0.entityType = item.type.rawValue
            $0.observations = observations
            $0.significance = Int32(item.significance)
            $0.confidence = max(0.01, min(1, item.confidence))
            $0.source = .auto
            $0.metadata = Self.provenance(exchange).merging(["extracted_by": "ukb learn"]) { a, _ in a }
        }
        _ = try await graph.call(GraphStoreMethods.putEntities, .with { $0.team = team; $0.entities = [entity] })
        recent.append((item.name, item.type.rawValue, vector))
        return (item.name, false)
    }

    /// Relations of the items written, to each other or to entities the team already has.
    func relate(_ items: [KnowledgeItem], written: [String: String]) async throws {
        let team = configuration.team
        var relations: [Kb_Graph_V1_Relation] = []
        for item in items {
            guard let from = written[item.name] else { continue }
            for relation in item.relations {
                var to = written[relation.to]
                if to == nil, (try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = relation.to })) != nil { to = relation.to }
                guard let to, to != from else { continue }
                relations.append(.with { $0.team = team; $0.from = from; $0.to = to; $0.relationType = relation.relationType; $0.confidence = max(0.01, min(1, item.confidence)) })
            }
        }
        guard !relations.isEmpty else { return }
        _ = try await graph.call(GraphStoreMethods.putRelations, .with { $0.team = team; $0.relations = relations })
    }

    // MARK: Trajectory

    /// The name of a session's entity in the graph.
    public static func sessionEntityName(_ sessionID: String) -> String {
        KnowledgeItem.entityName("session \(sessionID)")
    }

    /// A session's goal: as this run last heard it, or as its entity in the graph says.
    func goal(of sessionID: String) async throws -> String? {
        if let goal = goals[sessionID] { return goal }
        let team = configuration.team
        let found = try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = Self.sessionEntityName(sessionID) })
        let goal = found?.entity.metadata["goal"].flatMap { $0.isEmpty ? nil : $0 }
        if let goal { goals[sessionID] = goal }
        return goal
    }

    /// One step of the session's trajectory: an observation on the session's entity (`Session`,
    /// source auto) with the exchange's intent, confidence, time and active concepts — the
    /// team's entities closest in meaning to the exchange — and relations `produced` (the
    /// knowledge it gave) and `used` (the concepts it was close to).
    func record(_ exchange: SessionExchange, intent: SessionIntent, confidence: Double, by method: String, goal: String?, produced: [String]) async throws {
        let team = configuration.team
        let name = Self.sessionEntityName(exchange.provenance.sessionID)
        let concepts = try await activeConcepts(exchange, excluding: Set(produced + [name]))
        let time = exchange.provenance.timeMs.map(Self.iso)
        // The step keeps what differs per exchange; file and project are the entity's.
        var metadata = ["lines": "\(exchange.provenance.firstLine)-\(exchange.provenance.lastLine)"]
        metadata["intent"] = intent.rawValue
        metadata["intent_confidence"] = String(format: "%.2f", confidence)
        metadata["intent_by"] = method
        metadata["exchange"] = exchange.id
        if let goal { metadata["goal"] = Self.printable(goal) }
        if !concepts.isEmpty { metadata["concepts"] = concepts.map { "\($0.name) (\(String(format: "%.2f", $0.score)))" }.joined(separator: ", ") }
        if !produced.isEmpty { metadata["produced"] = produced.joined(separator: ", ") }
        let prompt = exchange.prompt.isEmpty ? exchange.answer : exchange.prompt
        let step = Kb_Graph_V1_Observation.with {
            $0.type = "exchange"
            $0.content = Self.printable("\(time ?? "line \(exchange.provenance.firstLine)") \(intent.rawValue) (\(String(format: "%.2f", confidence))): \(SessionExchange.Limits.cut(prompt.replacingOccurrences(of: "\n", with: " "), 200))")
            if let time { $0.date = time }
            $0.metadata = metadata
        }
        var sessionMetadata = ["session": exchange.provenance.sessionID, "kind": "trajectory", "file": String(exchange.provenance.file.suffix(500))]
        if let goal { sessionMetadata["goal"] = Self.printable(goal) }
        if let project = exchange.provenance.project { sessionMetadata["project"] = String(project.suffix(300)) }
        _ = try await graph.call(GraphStoreMethods.putEntities, .with {
            $0.team = team
            $0.entities = [.with {
                $0.name = name
                $0.entityType = "Session"
                $0.observations = [step]
                $0.source = .auto
                $0.significance = 3
                $0.metadata = sessionMetadata
            }]
        })
        let relations = produced.map { target in Kb_Graph_V1_Relation.with { $0.team = team; $0.from = name; $0.to = target; $0.relationType = "produced" } }
            + concepts.map { concept in Kb_Graph_V1_Relation.with { $0.team = team; $0.from = name; $0.to = concept.name; $0.relationType = "used"; $0.confidence = Double(max(0.01, min(1, concept.score))) } }
        if !relations.isEmpty {
            _ = try await graph.call(GraphStoreMethods.putRelations, .with { $0.team = team; $0.relations = relations })
        }
    }

    /// The team's entities closest in meaning to the exchange (at most 3, similarity ≥ 0.5),
    /// sessions and the exchange's own products left out.
    func activeConcepts(_ exchange: SessionExchange, excluding: Set<String>) async throws -> [(name: String, score: Float)] {
        let text = SessionExchange.Limits.cut(exchange.prompt + "\n" + exchange.answer, 2000)
        let vector = try await embed(text)
        let hits = try await meaning.nearest(to: vector, teams: [configuration.team], limit: 8)
        var concepts: [(name: String, score: Float)] = []
        for hit in hits where hit.score >= 0.5 && hit.entityType != "Session" && !excluding.contains(hit.name) && concepts.count < 3 {
            // The index may still hold an entity deleted a moment ago: only existing ones count.
            let team = configuration.team
            if (try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = hit.name })) != nil {
                concepts.append((hit.name, hit.score))
            }
        }
        return concepts
    }

    func embed(_ text: String) async throws -> [Float] {
        let answer = try await meaning.gateway.call(InferenceGatewayMethods.embed, .with { $0.texts = [text] }, options: CallOptions(timeout: .seconds(30)))
        guard let vector = answer.embeddings.first?.values, !vector.isEmpty else { throw RPCError(.internal, "the inference gateway returned no embedding") }
        return vector
    }

    /// The closest entity of the team by meaning: the indexed ones, and those written in this
    /// run that the indexer may not have reached yet.
    func nearest(_ vector: [Float]) async throws -> (name: String, score: Float)? {
        var best: (name: String, score: Float)?
        for entry in recent {
            let score = Self.cosine(vector, entry.vector)
            if score > (best?.score ?? -2) { best = (entry.name, score) }
        }
        let hits = try await meaning.nearest(to: vector, teams: [configuration.team], limit: 1)
        if let hit = hits.first, hit.score > (best?.score ?? -2) { best = (hit.name, hit.score) }
        return best
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return -1 }
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for index in a.indices {
            dot += a[index] * b[index]
            na += a[index] * a[index]
            nb += b[index] * b[index]
        }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : -1
    }

    /// `text` without the control characters the graph refuses (a pasted terminal's colour
    /// codes…): tabs and line ends stay.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { scalar in
            scalar == "\n" || scalar == "\t" || scalar == "\r" || scalar.properties.generalCategory != .control
        }))
    }

    static func provenance(_ exchange: SessionExchange) -> [String: String] {
        var metadata = [
            "session": exchange.provenance.sessionID,
            "file": String(exchange.provenance.file.suffix(500)),
            "lines": "\(exchange.provenance.firstLine)-\(exchange.provenance.lastLine)",
        ]
        if let ms = exchange.provenance.timeMs { metadata["session_time"] = iso(ms) }
        if let project = exchange.provenance.project { metadata["project"] = String(project.suffix(300)) }
        return metadata
    }

    static func iso(_ ms: Int64) -> String { SharedMemoryDocument.iso(ms) }
}
