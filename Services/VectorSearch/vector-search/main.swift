// vector-search: named collections of points with HNSW indexes, payload filters and hybrid
// keyword scoring, served as kb.vector.v1.VectorSearch, and as Qdrant's REST API on its own
// port (KB_VECTOR_QDRANT_PORT). Configuration from the environment (README).
import KBRuntime
import VectorSearchKit

await ServiceRuntime.main(.vectorSearch) { runtime in
    let configuration = try runtime.load(VectorSearchConfiguration.self)
    let shared = runtime.configuration
    let store = try VectorStore(directory: runtime.dataDirectory!, logger: runtime.logger, snapshotEvery: configuration.snapshotEvery)
    let qdrant = configuration.qdrantPort.map { port in
        QdrantFront(store: store, backupRoot: shared.backupRoot, authToken: shared.authToken, logger: runtime.logger)
            .application(host: shared.host, port: port, allowedHosts: shared.allowedHosts, health: runtime.health)
    }
    let service = VectorSearchService(store: store, backupRoot: shared.backupRoot, maxFrameBytes: shared.rpc.maxFrameLength, fronts: qdrant.map { [$0] } ?? [])
    try await service.createDefaults()
    return service
}
