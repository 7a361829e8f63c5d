// vector-search: named collections of points with HNSW indexes, payload filters and hybrid
// keyword scoring, served as kb.vector.v1.VectorSearch. Configuration from the environment (README).
import KBRuntime
import VectorSearchKit

await ServiceRuntime.main(.vectorSearch) { runtime in
    let configuration = try runtime.load(VectorSearchConfiguration.self)
    let store = try VectorStore(directory: runtime.dataDirectory!, logger: runtime.logger, snapshotEvery: configuration.snapshotEvery)
    let service = VectorSearchService(store: store, backupRoot: runtime.configuration.backupRoot, maxFrameBytes: runtime.configuration.rpc.maxFrameLength)
    try await service.createDefaults()
    return service
}
