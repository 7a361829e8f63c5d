// vector-search: named collections of points with HNSW indexes, payload filters and hybrid
// keyword scoring, served as kb.vector.v1.VectorSearch. Configuration from the environment (README).
import Foundation
import KBRPC
import KBRuntime
import VectorSearchKit

ServiceRuntime.useEventLoopsForConcurrency()

let runtime: ServiceRuntime
let service: VectorSearchService
do {
    runtime = try ServiceRuntime(descriptor: .vectorSearch)
    let snapshotEvery = try runtime.configuration.source.integer("KB_VECTOR_SNAPSHOT_EVERY", default: 20_000, range: 1...10_000_000)
    service = VectorSearchService(store: try VectorStore(directory: runtime.dataDirectory!, logger: runtime.logger, snapshotEvery: snapshotEvery))
    try await service.createDefaults()
} catch {
    ServiceRuntime.exitOnStartupError(error, service: "vector-search")
}
service.registerHealth(on: runtime.health)
var router = RPCRouter()
service.register(on: &router)
do {
    try await runtime.run(router: router, services: [service])
} catch {
    runtime.logger.critical("vector-search stopped on an error", metadata: ["error": "\(error)"])
    FileHandle.standardError.write(Data("vector-search: \(error)\n".utf8))
    exit(1)
}
