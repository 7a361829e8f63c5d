import Foundation
import KBEmbeddings
import KBProto
import KBRPC
import Logging

/// Where a rebuild from the graph stands (`kb vectors rebuild-from-graph`, `GET /internal/indexer`).
public struct RebuildProgress: Sendable {
    /// `embedding`, `copying` (other teams' points, with `--team`), `swapping`, `done`, `failed`.
    public var phase: String
    /// The team rebuilt (nil: every team).
    public var team: String?
    /// Entities re-embedded so far, of `total`.
    public var done: Int64 = 0
    /// The entities to re-embed.
    public var total: Int64 = 0
    /// Why it failed (phase `failed`).
    public var error: String?
    /// When it started, Unix milliseconds.
    public var startedMs: Int64
    /// When it finished, Unix milliseconds (0: still running).
    public var finishedMs: Int64 = 0
    /// Whether it is still running.
    public var running: Bool { phase != "done" && phase != "failed" }
}

extension KnowledgeIndexer {
    /// One collection a rebuild replaces: the live one, the one it fills, how it embeds.
    struct RebuildTarget {
        var live: String
        var fresh: String
        var dimension: Int
        var embed: @Sendable ([String]) async throws -> [[Float]]
    }

    /// Starts re-embedding the graph (one team's entities, or every team's) into new collections
    /// (`knowledge_384`, and `knowledge_1536` when a provider's model is configured) that replace
    /// the live ones only when complete; follow it with `status.rebuild`. Throws `busy` while one
    /// runs.
    public func startRebuild(team: String?) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try state.withLock { status in
            if let rebuild = status.rebuild, rebuild.running {
                throw IndexerError(.busy, "a rebuild started at \(rebuild.startedMs) ms is still running (\(rebuild.phase), \(rebuild.done)/\(rebuild.total)); wait for it")
            }
            status.rebuild = RebuildProgress(phase: "embedding", team: team, startedMs: now)
        }
        Task {
            do {
                try await self.work.run { try await self.rebuild(team: team) }
            } catch {
                self.logger.error("rebuild from the graph failed; the live collections are unchanged", metadata: ["error": "\(error)"])
                self.progress { $0.phase = "failed"; $0.error = "\(error)"; $0.finishedMs = Int64(Date().timeIntervalSince1970 * 1000) }
            }
        }
    }

    func progress(_ change: (inout RebuildProgress) -> Void) {
        state.withLock { status in
            if status.rebuild != nil { change(&status.rebuild!) }
        }
    }

    /// The rebuild, holding the indexer's work lock (the feed is not followed meanwhile; the
    /// changes committed during it are applied after the swap, from the cursor, idempotently).
    ///
    /// vector-search has no rename or alias: each new collection is swapped in with its own
    /// snapshot and restore (`SnapshotCollection` of the new one, `RestoreCollection` of that
    /// snapshot under the live name, which replaces the live collection in one synced write),
    /// then the new one is deleted. The snapshot stays in vector-search's backup folder. A
    /// failure before the swaps leaves the live collections as they were.
    func rebuild(team: String?) async throws {
        var targets = [RebuildTarget(live: configuration.collection, fresh: configuration.collection + "_rebuild", dimension: TextEmbedder.dimension, embed: try localEmbedding())]
        if let provider {
            targets.append(RebuildTarget(live: provider.collection, fresh: provider.collection + "_rebuild", dimension: provider.dimension) { texts in
                let vectors = try await provider.embed(texts)
                guard vectors.count == texts.count, vectors.allSatisfy({ $0.count == provider.dimension }) else {
                    throw IndexerError(.unexpectedAnswer, "\(provider.model) answered \(vectors.count) vectors of \(vectors.first?.count ?? 0) dimensions for \(texts.count) texts (expected \(provider.dimension))")
                }
                self.state.withLock { $0.providerIndexed += Int64(texts.count) }
                return vectors
            })
        }
        for target in targets {
            try await ensureCollection(target.live, dimension: target.dimension)
            let config = try await vectorCall(VectorSearchMethods.describeCollection, .with { $0.name = target.live }).config
            _ = try await vectorCall(VectorSearchMethods.deleteCollection, .with { $0.name = target.fresh })
            _ = try await vectorCall(VectorSearchMethods.createCollection, .with {
                $0.config = config
                $0.config.name = target.fresh
            })
        }
        let teams = team.map { [$0] }
        let stats = try await graphCall(GraphStoreMethods.getStats, .with { $0.teams = teams ?? [] })
        progress { $0.total = stats.totalEntities }
        logger.notice("rebuild from the graph started", metadata: ["team": "\(team ?? "(every team)")", "entities": "\(stats.totalEntities)", "into": "\(targets.map(\.fresh).joined(separator: ","))"])
        try await forEachEntityPage(teams: teams) { entities in
            let documents = entities.map { KnowledgeDocument($0) }
            for target in targets {
                try await self.write(documents, into: target.fresh, force: true, embed: target.embed)
            }
            self.progress { $0.done += Int64(entities.count) }
        }
        if let team {
            // The other teams' points are copied from the live collections (embedded when missing).
            progress { $0.phase = "copying" }
            let others = try await graphCall(GraphStoreMethods.listTeams, .init()).teams.map(\.team).filter { $0 != team }
            if !others.isEmpty {
                try await forEachEntityPage(teams: others) { entities in
                    let documents = entities.map { KnowledgeDocument($0) }
                    for target in targets {
                        let copied = try await self.vectorCall(VectorSearchMethods.getPoints, .with {
                            $0.collection = target.live
                            $0.ids = documents.map(\.id)
                            $0.withPayload = true
                            $0.withVector = true
                        })
                        if !copied.points.isEmpty {
                            _ = try await self.vectorCall(VectorSearchMethods.upsertPoints, .with {
                                $0.collection = target.fresh
                                $0.points = copied.points
                            })
                        }
                        let present = Set(copied.points.map(\.id))
                        try await self.write(documents.filter { !present.contains($0.id) }, into: target.fresh, force: true, embed: target.embed)
                    }
                }
            }
        }
        progress { $0.phase = "swapping" }
        for target in targets {
            // Named to the millisecond: vector-search's default name has whole seconds, and two
            // rebuilds in one second would collide.
            let snapshot = try await vectorCall(VectorSearchMethods.snapshotCollection, .with {
                $0.name = target.fresh
                $0.path = "\(target.fresh)-\(Int64(Date().timeIntervalSince1970 * 1000))"
            })
            let restored = try await vectorCall(VectorSearchMethods.restoreCollection, .with {
                $0.name = target.live
                $0.path = snapshot.path
            })
            _ = try await vectorCall(VectorSearchMethods.deleteCollection, .with { $0.name = target.fresh })
            logger.notice("rebuild from the graph: the new collection replaced the live one", metadata: [
                "collection": "\(target.live)", "points": "\(restored.pointCount)", "snapshot": "\(snapshot.path)",
            ])
        }
        progress { $0.phase = "done"; $0.finishedMs = Int64(Date().timeIntervalSince1970 * 1000) }
    }
}
