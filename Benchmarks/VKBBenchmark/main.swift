// vkb-benchmark: VKB's response times at 10k and 100k entities, beside the reference (the
// original's architecture: a Node.js server holding the whole graph in memory, answering the
// same requests on the same data), and in headless Chromium the time from navigation to a fully
// drawn 5,000-node graph and the frame time while zooming, beside a classic D3 SVG drawing of
// the same graph (the original visualizer's way).
//
//   swift build -c release && .build/release/vkb-benchmark [--sizes 10000,100000] [--iterations 30] [--no-browser]
//
// Starts the real graph-store and vkb (built beside this binary) on temporary folders.
import BenchmarkSupport
import Foundation
import KBKnowledge
import KBProto
import KBRPC

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

let arguments = BenchmarkArguments()
let sizes = arguments.integers("--sizes", default: [10_000, 100_000])
let iterations = arguments.integer("--iterations", default: 30)
let browser = !arguments.flag("--no-browser")

let sourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let team = "bench"

// MARK: Data

let vocabulary = (0..<600).map { "word\($0)" } + ["retry", "backoff", "timeout", "deadline", "cache", "index", "schema", "queue", "lock", "shard"]
let types = ["Pattern", "Bug", "Decision", "Tool", "Library", "Service", "Incident", "Practice", "Question", "Note"]

func dataset(_ size: Int) -> (entities: [Kb_Graph_V1_Entity], relations: [Kb_Graph_V1_Relation]) {
    var random = SeededRandom(seed: UInt64(size))
    var entities: [Kb_Graph_V1_Entity] = []
    entities.reserveCapacity(size)
    for index in 0..<size {
        var entity = Kb_Graph_V1_Entity()
        entity.name = String(format: "Entity %06d", index)
        entity.entityType = types[random.below(types.count)]
        entity.significance = Int32(1 + random.below(10))
        entity.confidence = 0.5 + Double(random.below(50)) / 100
        entity.source = random.below(3) == 0 ? .auto : .manual
        for _ in 0..<2 {
            var observation = Kb_Graph_V1_Observation()
            observation.content = (0..<8).map { _ in vocabulary[random.below(vocabulary.count)] }.joined(separator: " ")
            entity.observations.append(observation)
        }
        entities.append(entity)
    }
    var relations: [Kb_Graph_V1_Relation] = []
    relations.reserveCapacity(size * 4)
    var seen = Set<Int>()
    for index in 0..<size {
        for _ in 0..<4 {
            let target = random.below(size)
            guard target != index, seen.insert(index &* size &+ target).inserted else { continue }
            var relation = Kb_Graph_V1_Relation()
            relation.from = entities[index].name
            relation.to = entities[target].name
            relation.relationType = ["uses", "fixes", "relates_to", "depends_on"][random.below(4)]
            relations.append(relation)
        }
    }
    return (entities, relations)
}

// MARK: Processes

func get(_ url: String, timeout: TimeInterval = 120) async -> (status: Int, bytes: Int)? {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = timeout
    guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return (http.statusCode, data.count)
}

func waitFor(_ url: String, _ what: String) async throws {
    try await waitUntilReady("\(what) (\(url))", within: .seconds(60)) { await get(url, timeout: 2)?.status == 200 }
}

/// p50 and p99 in milliseconds of `iterations` sequential GETs, after 3 warm-up ones.
@MainActor func measure(_ url: String) async -> (p50: Double, p99: Double, bytes: Int)? {
    var samples: [Double] = []
    var bytes = 0
    for index in 0..<(iterations + 3) {
        let started = ContinuousClock.now
        guard let result = await get(url), result.status == 200 else { return nil }
        if index >= 3 { samples.append(seconds(ContinuousClock.now - started) * 1000) }
        bytes = result.bytes
    }
    samples.sort()
    return (percentile(samples, 0.5), percentile(samples, 0.99), bytes)
}

func fmt(_ value: (p50: Double, p99: Double, bytes: Int)?) -> String {
    guard let value else { return "–" }
    return String(format: "%7.1f / %7.1f ms", value.p50, value.p99)
}

let nodeExecutable = ["/usr/bin/node", "/usr/local/bin/node"].first { FileManager.default.isExecutableFile(atPath: $0) }
if nodeExecutable == nil { print("note: node is not installed; the reference column stays empty") }

print("VKB response times (sequential GETs over loopback, \(iterations) after 3 warm-ups; p50 / p99)")
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; graph-store and vkb release builds; reference: Node.js \(nodeExecutable.map { _ in "in-memory server (Benchmarks/VKBBenchmark/reference_server.js)" } ?? "missing")")

for size in sizes {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("vkb-bench-\(size)-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    let storePort = freePort(), vkbPort = freePort(), referencePort = freePort()
    let store = try startProcess(siblingExecutable("graph-store"), environment: [
        "KB_DATA_DIR": work.appendingPathComponent("data").path, "KB_GRAPH_STORE_PORT": "\(storePort)",
        "KB_GRAPH_STORE_ADMIN_PORT": "\(freePort())", "KB_LOG_LEVEL": "warning", "KB_RPC_MAX_FRAME_BYTES": "\(64 << 20)",
    ], log: work.appendingPathComponent("graph-store.log"))
    var configuration = RPCClient.Configuration(host: "127.0.0.1", port: storePort)
    configuration.maxFrameLength = 64 << 20
    configuration.defaultTimeout = .seconds(600)
    let client = RPCClient(configuration: configuration)
    try await waitUntilReady("graph-store") {
        (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))) != nil
    }

    let generated = dataset(size)
    let loadStart = ContinuousClock.now
    for batch in stride(from: 0, to: generated.entities.count, by: 2000) {
        _ = try await client.call(GraphStoreMethods.putEntities, .with {
            $0.team = team
            $0.entities = Array(generated.entities[batch..<min(batch + 2000, generated.entities.count)])
            $0.omitEntities = true
        })
    }
    for batch in stride(from: 0, to: generated.relations.count, by: 5000) {
        _ = try await client.call(GraphStoreMethods.putRelations, .with {
            $0.team = team
            $0.relations = Array(generated.relations[batch..<min(batch + 5000, generated.relations.count)])
        })
    }
    print("\n\(size) entities, \(generated.relations.count) relations (loaded in \(String(format: "%.1f", seconds(ContinuousClock.now - loadStart))) s)")

    let vkb = try startProcess(siblingExecutable("vkb"), environment: [
        "KB_DATA_DIR": work.appendingPathComponent("data").path, "KB_VKB_PORT": "\(vkbPort)",
        "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(storePort)", "KB_LOG_LEVEL": "warning",
        "KB_RPC_MAX_FRAME_BYTES": "\(64 << 20)", "KB_VKB_READ_RATE_LIMIT": "0",
    ], log: work.appendingPathComponent("vkb.log"))
    try await waitFor("http://127.0.0.1:\(vkbPort)/health", "vkb")

    var reference: Process?
    if let nodeExecutable {
        let file = work.appendingPathComponent("shared-memory.json")
        var document = SharedMemoryDocument(entities: generated.entities, relations: generated.relations, team: team)
        for index in document.entities.indices { document.entities[index].team = team }
        try document.jsonData().write(to: file)
        reference = try startProcess(URL(fileURLWithPath: nodeExecutable), arguments: [sourceDirectory.appendingPathComponent("reference_server.js").path, "\(referencePort)", file.path], environment: [:], log: work.appendingPathComponent("reference.log"))
        try await waitFor("http://127.0.0.1:\(referencePort)/health", "the reference server")
    }

    let queries: [(String, String)] = [
        ("/api/graph (cap 5000: the most significant + links among them)", "/api/graph?team=\(team)"),
        ("/api/graph?layout=1 (cap 5000, positions computed here)", "/api/graph?team=\(team)&layout=1"),
        ("/api/graph?limit=1000", "/api/graph?team=\(team)&limit=1000"),
        ("/api/graph?type=Bug (cap 5000)", "/api/graph?team=\(team)&type=Bug"),
        ("/api/entities first page (50, by name)", "/api/entities?team=\(team)&limit=50"),
        ("/api/entities?type=Bug (50)", "/api/entities?team=\(team)&type=Bug&limit=50"),
        ("/api/entities?q=backoff (50)", "/api/entities?team=\(team)&q=backoff&limit=50"),
    ]
    print("request".padding(toLength: 66, withPad: " ", startingAt: 0) + "ours p50 / p99".padding(toLength: 22, withPad: " ", startingAt: 0) + "reference p50 / p99".padding(toLength: 22, withPad: " ", startingAt: 0) + "our body")
    for (label, path) in queries {
        let ours = await measure("http://127.0.0.1:\(vkbPort)\(path)")
        // The reference has no server layout (the original laid graphs out in the browser).
        let theirs = reference == nil || path.contains("layout=1") ? nil : await measure("http://127.0.0.1:\(referencePort)\(path)")
        print(label.padding(toLength: 66, withPad: " ", startingAt: 0) + fmt(ours).padding(toLength: 22, withPad: " ", startingAt: 0) + fmt(theirs).padding(toLength: 22, withPad: " ", startingAt: 0) + "\((ours?.bytes ?? 0) / 1024) KiB")
    }
    let focus = await measure("http://127.0.0.1:\(vkbPort)/api/graph?focus=\(team):Entity%20000042&depth=2")
    print("/api/graph?focus=…&depth=2 (neighbourhood)".padding(toLength: 66, withPad: " ", startingAt: 0) + fmt(focus).padding(toLength: 22, withPad: " ", startingAt: 0) + "(no equivalent)".padding(toLength: 22, withPad: " ", startingAt: 0) + "\((focus?.bytes ?? 0) / 1024) KiB")

    if browser && size == sizes.first {
        print("\nin headless Chromium (the 5,000 most significant of \(size): the page's default cap)")
        let python = try startProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments: ["python3", sourceDirectory.appendingPathComponent("browser_bench.py").path, "--url", "http://127.0.0.1:\(vkbPort)/", "--team", team])
        python.waitUntilExit()
        if python.terminationStatus != 0 { print("the browser benchmark failed (status \(python.terminationStatus))") }
    }

    reference?.terminate()
    vkb.terminate()
    store.terminate()
    reference?.waitUntilExit()
    vkb.waitUntilExit()
    store.waitUntilExit()
    await client.close()
    try? FileManager.default.removeItem(at: work)
}
