// A service made of the runtime alone, for the integration, fault, interop and launcher tests.
//
// It takes its identity from the name it is run under: run as `graph-store` (a symlink in a
// test's folder) it reads the graph store's keys and ports, so the launcher can be tested on a
// real process; run under its own name it is `fixture-service`. It serves the health RPC and
// echoes `kb.graph.v1.GraphStore/PutEntities` (the entities back, timestamps set) so clients in
// other languages can prove they speak our wire format. It stores nothing.
//
// KB_FIXTURE_HEALTH=healthy|degraded|unhealthy sets its "fixture" health component.
import Foundation
import KBProto
import KBRPC
import KBRuntime

ServiceRuntime.useEventLoopsForConcurrency()

let invokedAs = URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent
let descriptor = ServiceDescriptor.named(invokedAs)
    ?? ServiceDescriptor(name: "fixture-service", envPrefix: "KB_FIXTURE_SERVICE", defaultPort: 7199, defaultAdminPort: 9199, dataSubdirectory: "fixture")

let runtime: ServiceRuntime
do {
    runtime = try ServiceRuntime(descriptor: descriptor)
} catch {
    ServiceRuntime.exitOnStartupError(error, service: descriptor.name)
}

let forcedHealth = try? runtime.configuration.source.value(of: .choice("KB_FIXTURE_HEALTH", default: "healthy", from: ["healthy", "degraded", "unhealthy"], meaning: "the health the fixture reports (tests only)"))
runtime.health.register("fixture") {
    ComponentHealth(HealthStatus(rawValue: forcedHealth ?? "healthy") ?? .healthy, ["echoes": "PutEntities"])
}

var router = RPCRouter()
router.register(GraphStoreMethods.putEntities) { request, _ in
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    var response = Kb_Graph_V1_PutEntitiesResponse()
    response.entities = request.entities.map { entity in
        var stored = entity
        stored.team = request.team
        stored.createdAtMs = now
        stored.lastModifiedMs = now
        if stored.significance == 0 { stored.significance = 5 }
        return stored
    }
    response.created = Int32(request.entities.count)
    return response
}
router.register(RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("kb.fixture.v1.Fixture/Sleep")) { request, context in
    context.logger.info("sleep started")
    try await Task.sleep(for: .milliseconds(Int(request.service) ?? 0))
    return Kb_Health_V1_HealthCheckResponse.with { $0.service = request.service }
}

try await runtime.run(router: router)
