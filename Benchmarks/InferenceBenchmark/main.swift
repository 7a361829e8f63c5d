// inference-benchmark: the inference gateway's own overhead on its OpenAI-compatible front,
// beside LiteLLM's proxy, both in front of the same fast fake OpenAI provider on loopback, in one run.
//
//   swift build -c release --scratch-path .build-release --product inference-gateway
//   swift build -c release --scratch-path .build-release --product inference-benchmark
//   .build-release/release/inference-benchmark [--runs 3] [--seconds 10] [--connections 64]
//       [--rates 100,1000] [--ttfb-requests 200] [--no-litellm] [--smoke]
//
// Starts (1) the fake provider (FakeProvider.swift, SwiftNIO, canned answers, keep-alive) in this
// process, (2) the real inference-gateway built beside this binary, with a providers file whose
// only route points at the fake, and (3) LiteLLM's proxy (`pip install 'litellm[proxy]'`, 2
// workers, a random master key, the same fake as its model's api_base). wrk (Debian's `wrk`)
// drives each of the three: closed-loop with --connections for the maximum throughput, then
// paced at fixed rates (100, 1,000, and 80% of each system's own maximum, with the fake alone at
// the same rates as the floor); a plain socket client times the first streamed word. Every
// figure is the median of --runs runs; "added" is a system's latency quantile minus the fake's at
// the same rate.
//
// --smoke starts only the fake and the gateway and sends one whole and a few streamed requests
// through the gateway (no wrk, no LiteLLM): the check that the benchmark still runs.
import BenchmarkSupport
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

let arguments = BenchmarkArguments()
let runs = max(1, arguments.integer("--runs", default: 3))
let duration = max(1, arguments.integer("--seconds", default: 10))
let closedLoopConnections = max(1, arguments.integer("--connections", default: 64))
let fixedRates = arguments.integers("--rates", default: [100, 1000]).map(Double.init)
let firstByteRequests = max(1, arguments.integer("--ttfb-requests", default: 200))
let smoke = arguments.flag("--smoke")
let withLiteLLM = !arguments.flag("--no-litellm") && !smoke

let work = FileManager.default.temporaryDirectory.appendingPathComponent("inference-bench-\(UUID().uuidString.prefix(8))")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

/// A random bearer token / master key (LiteLLM refuses weak ones).
func randomKey(prefix: String) -> String {
    var generator = SystemRandomNumberGenerator()
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return prefix + String((0..<40).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// A POST answered 200, or nil.
func post(_ call: ChatCall, timeout: TimeInterval = 10) async -> (status: Int, body: String)? {
    var request = URLRequest(url: URL(string: call.url)!)
    request.httpMethod = "POST"
    request.timeoutInterval = timeout
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    request.setValue("Bearer \(call.bearer)", forHTTPHeaderField: "Authorization")
    request.httpBody = Data(call.body.utf8)
    guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return (http.statusCode, String(decoding: data, as: UTF8.self))
}

func get(_ url: String) async -> Int? {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = 2
    guard let (_, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return http.statusCode
}

// MARK: The systems under test

/// One of the three things measured.
struct SystemUnderTest: Sendable {
    var name: String
    var whole: ChatCall
    var streamed: ChatCall
}

var processes: [Process] = []
@MainActor func stopAll() {
    for process in processes where process.isRunning { process.terminate() }
    for process in processes { process.waitUntilExit() }
    processes = []
}
@MainActor func fail(_ message: String) -> Never {
    print("inference-benchmark: \(message)")
    stopAll()
    print("logs are in \(work.path)")
    exit(1)
}

let fake = try FakeProvider()
let fakeSystem = SystemUnderTest(
    name: "fake provider alone (floor)",
    whole: ChatCall(url: fake.baseURL + "/chat/completions", model: FakeProvider.model, bearer: "unused", stream: false),
    streamed: ChatCall(url: fake.baseURL + "/chat/completions", model: FakeProvider.model, bearer: "unused", stream: true)
)

// The gateway: its only route is the fake (a local provider: no budget-service call), the
// completion cache off (every request goes to the provider), a bearer token required.
let gatewayToken = randomKey(prefix: "kb-")
let gatewayAdminPort = freePort()
let providersFile = work.appendingPathComponent("providers.json")
try Data(#"""
{"providers": {"bench": {"api": "openai", "base_url": "\#(fake.baseURL)", "local": true, "models": ["\#(FakeProvider.model)"]}},
 "strategies": {"bench": {"priority": ["bench"]}}, "activeStrategy": "bench"}
"""#.utf8).write(to: providersFile)
let gatewayExecutable = siblingExecutable("inference-gateway")
guard FileManager.default.isExecutableFile(atPath: gatewayExecutable.path) else {
    fail("\(gatewayExecutable.path) is missing: build it first (swift build -c release --scratch-path .build-release --product inference-gateway)")
}
processes.append(try startProcess(gatewayExecutable, environment: [
    "KB_DATA_DIR": work.appendingPathComponent("data").path,
    "KB_INFERENCE_GATEWAY_PORT": "\(freePort())", "KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(gatewayAdminPort)",
    "KB_INFERENCE_PROVIDERS_FILE": providersFile.path, "KB_INFERENCE_CACHE_MAX_ENTRIES": "0",
    "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())", "KB_AUTH_TOKEN": gatewayToken,
    // JSON lines, as deployed (stdout to a collector, not a terminal): swift-log's text handler
    // re-renders its metadata on every change, which the request id does on every request.
    "KB_LOG_LEVEL": "warning", "KB_LOG_FORMAT": "json",
], log: work.appendingPathComponent("inference-gateway.log")))
let gatewayURL = "http://127.0.0.1:\(gatewayAdminPort)/v1/chat/completions"
let gatewaySystem = SystemUnderTest(
    name: "inference-gateway",
    whole: ChatCall(url: gatewayURL, model: FakeProvider.model, bearer: gatewayToken, stream: false),
    streamed: ChatCall(url: gatewayURL, model: FakeProvider.model, bearer: gatewayToken, stream: true)
)
do {
    try await waitUntilReady("inference-gateway", within: .seconds(60)) { await get("http://127.0.0.1:\(gatewayAdminPort)/health/ready") == 200 }
} catch { fail("\(error)") }

// LiteLLM's proxy: two workers, its one model pointing at the fake, a random master key.
var liteLLMSystem: SystemUnderTest?
if withLiteLLM {
    let executable = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        .map { URL(fileURLWithPath: String($0)).appendingPathComponent("litellm") }
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    if let executable {
        let masterKey = randomKey(prefix: "sk-")
        let port = freePort()
        let config = work.appendingPathComponent("litellm.yaml")
        try Data("""
        model_list:
          - model_name: \(FakeProvider.model)
            litellm_params:
              model: openai/\(FakeProvider.model)
              api_base: \(fake.baseURL)
              api_key: fake-key
        general_settings:
          master_key: \(masterKey)
        litellm_settings:
          telemetry: false
        """.utf8).write(to: config)
        // uvicorn restarts a worker that has not answered its health check within 5 s: on a busy
        // machine, every worker still importing LiteLLM, for ever.
        let liteLLMArguments = ["--config", config.path, "--host", "127.0.0.1", "--port", "\(port)", "--num_workers", "2", "--timeout_worker_healthcheck", "300"]
        processes.append(try startProcess(executable, arguments: liteLLMArguments, environment: [
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_PROXY": "*", "no_proxy": "*",
        ], log: work.appendingPathComponent("litellm.log")))
        let url = "http://127.0.0.1:\(port)/v1/chat/completions"
        liteLLMSystem = SystemUnderTest(
            name: "LiteLLM proxy (2 workers)",
            whole: ChatCall(url: url, model: FakeProvider.model, bearer: masterKey, stream: false),
            streamed: ChatCall(url: url, model: FakeProvider.model, bearer: masterKey, stream: true)
        )
        do {
            try await waitUntilReady("LiteLLM's proxy", within: .seconds(180)) { await get("http://127.0.0.1:\(port)/health/liveliness") == 200 }
        } catch { fail("\(error) (see litellm.log)") }
    } else {
        print("note: `litellm` is not on PATH (pip install --break-system-packages 'litellm[proxy]'); its column stays empty")
    }
}

let systems = [fakeSystem, gatewaySystem] + (liteLLMSystem.map { [$0] } ?? [])

// Every system answers the fake's words, whole and streamed, before anything is measured.
let answer = FakeProvider.words.joined()
for system in systems {
    guard let reply = await post(system.whole), reply.status == 200, reply.body.contains(answer) else {
        fail("\(system.name) did not answer the fake's words: \(await post(system.whole).map { "\($0.status) \($0.body.prefix(300))" } ?? "no answer")")
    }
    var client = try FirstByteClient(url: system.streamed.url)
    do { _ = try client.measure(system.streamed, count: 3, warmUp: 1) } catch { fail("\(system.name), streamed: \(error)") }
    client.disconnect()
}

if smoke {
    print("smoke: the fake provider and inference-gateway answered whole and streamed requests")
    stopAll()
    fake.stop()
    try? FileManager.default.removeItem(at: work)
    exit(0)
}

guard let wrkPath = LoadGenerator.find() else { fail("wrk is not installed (apt-get install wrk)") }
let load = LoadGenerator(wrk: wrkPath, workDirectory: work)
let cores = ProcessInfo.processInfo.activeProcessorCount
print("inference-benchmark: \(runs) runs of \(duration) s per figure; \(cores) cores; load average at start \(loadAverage())")
print("load: wrk 1 thread; maximum throughput closed-loop with \(closedLoopConnections) connections; fixed rates paced by wrk's Lua delay()")

// MARK: Maximum throughput

func median(_ figures: [LoadFigures]) -> LoadFigures {
    LoadFigures(rate: BenchmarkSupport.median(figures.map(\.rate)), p50: BenchmarkSupport.median(figures.map(\.p50)),
                p99: BenchmarkSupport.median(figures.map(\.p99)), errors: figures.map(\.errors).max() ?? 0, requests: figures.map(\.requests).max() ?? 0)
}

@MainActor func measure(_ system: SystemUnderTest, rate: Double?) -> LoadFigures {
    let connections = rate.map { min(256, max(8, Int($0 / 50))) } ?? closedLoopConnections
    do {
        return try load.run(system.whole, connections: connections, duration: duration, rate: rate)
    } catch { fail("\(system.name) at \(rate.map { "\(Int($0)) req/s" } ?? "full speed"): \(error)") }
}

for system in systems { _ = try? load.run(system.whole, connections: closedLoopConnections, duration: 2, rate: nil) }  // warm-up
var maxima: [String: [LoadFigures]] = [:]
for run in 1...runs {
    for system in systems {
        let figures = measure(system, rate: nil)
        maxima[system.name, default: []].append(figures)
        print("  run \(run)  " + system.name.padding(toLength: 30, withPad: " ", startingAt: 0) + String(format: " max %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d", figures.rate, figures.p50, figures.p99, figures.errors))
    }
}
let maximum = maxima.mapValues(median)

// MARK: Fixed rates

/// The highest rate a system sustains, for its latency row: 80% of its maximum (at the maximum
/// itself latency is queueing).
@MainActor func highestSustained(_ system: SystemUnderTest) -> Double { (maximum[system.name]!.rate * 0.8).rounded() }

var ratesFor: [String: [Double]] = [:]
for system in systems.dropFirst() { ratesFor[system.name] = fixedRates + [highestSustained(system)] }
ratesFor[fakeSystem.name] = Array(Set(ratesFor.values.flatMap { $0 })).sorted()

var atRate: [String: [Double: [LoadFigures]]] = [:]
for run in 1...runs {
    for system in systems {
        for rate in ratesFor[system.name]! {
            let figures = measure(system, rate: rate)
            atRate[system.name, default: [:]][rate, default: []].append(figures)
            print("  run \(run)  " + system.name.padding(toLength: 30, withPad: " ", startingAt: 0) + String(format: " at %6.0f req/s: got %8.1f  p50 %7.3f ms  p99 %7.3f ms  errors %d", rate, figures.rate, figures.p50, figures.p99, figures.errors))
        }
    }
}
let paced = atRate.mapValues { $0.mapValues(median) }

// MARK: Streaming: time to the first word

var firstWord: [String: (p50: Double, p99: Double)] = [:]
for system in systems {
    var p50s: [Double] = [], p99s: [Double] = []
    for _ in 1...runs {
        var client = try FirstByteClient(url: system.streamed.url)
        let samples: [Double]
        do { samples = try client.measure(system.streamed, count: firstByteRequests).sorted() } catch { fail("\(system.name), streamed: \(error)") }
        client.disconnect()
        p50s.append(percentile(samples, 0.5))
        p99s.append(percentile(samples, 0.99))
    }
    firstWord[system.name] = (BenchmarkSupport.median(p50s), BenchmarkSupport.median(p99s))
}

// MARK: The table

let floor = paced[fakeSystem.name]!
let measured = systems.dropFirst()
func cell(_ text: String) -> String { text.padding(toLength: max(36, text.count + 2), withPad: " ", startingAt: 0) }
func label(_ text: String) -> String { text.padding(toLength: 48, withPad: " ", startingAt: 0) }
func sustained(_ figures: LoadFigures, _ rate: Double) -> Bool { figures.rate >= rate * 0.95 && figures.errors == 0 }
@MainActor func added(_ system: SystemUnderTest, _ rate: Double) -> String {
    guard let figures = paced[system.name]?[rate], let base = floor[rate] else { return "–" }
    let text = String(format: "+%.3f / +%.3f ms", figures.p50 - base.p50, figures.p99 - base.p99)
    return sustained(figures, rate) ? text : text + String(format: " (got %.0f/s", figures.rate) + (figures.errors > 0 ? ", \(figures.errors) errors)" : ")")
}

print("\nadded latency p50 / p99 (system minus the fake alone at the same rate), median of \(runs) runs")
print(label("") + cell("fake alone (floor) p50 / p99") + measured.map { cell($0.name) }.joined())
print(label("max throughput (closed loop, \(closedLoopConnections) connections)") + cell(String(format: "%.0f req/s", maximum[fakeSystem.name]!.rate))
      + measured.map { cell(String(format: "%.0f req/s", maximum[$0.name]!.rate)) }.joined())
for rate in fixedRates {
    print(label(String(format: "at %.0f req/s", rate)) + cell(String(format: "%.3f / %.3f ms", floor[rate]!.p50, floor[rate]!.p99)) + measured.map { cell(added($0, rate)) }.joined())
}
print(label("at 80% of its own maximum") + cell("") + measured.map { system in
    let rate = highestSustained(system)
    return cell(String(format: "%.0f/s: ", rate) + added(system, rate))
}.joined())
let floorWord = firstWord[fakeSystem.name]!
print(label("stream: first word p50 / p99") + cell(String(format: "%.3f / %.3f ms", floorWord.p50, floorWord.p99)) + measured.map { system in
    let word = firstWord[system.name]!
    return cell(String(format: "+%.3f / +%.3f ms", word.p50 - floorWord.p50, word.p99 - floorWord.p99))
}.joined())

print("\naims (issue 13):")
if let liteLLMSystem {
    let ratio = maximum[gatewaySystem.name]!.rate / max(1, maximum[liteLLMSystem.name]!.rate)
    print(String(format: "  max throughput ≥ 20× LiteLLM's: %.1f× — ", ratio) + (ratio >= 20 ? "met" : "missed"))
}
if let at1000 = paced[gatewaySystem.name]?[1000], let base = floor[1000] {
    let p99 = at1000.p99 - base.p99
    print(String(format: "  p99 added ≤ 1 ms at 1,000 req/s: %.3f ms — ", p99) + (p99 <= 1 && sustained(at1000, 1000) ? "met" : "missed"))
}
let wordOverhead = firstWord[gatewaySystem.name]!.p50 - floorWord.p50
print(String(format: "  streaming first-byte overhead ≤ 1 ms: p50 %.3f ms, p99 %.3f ms — ", wordOverhead, firstWord[gatewaySystem.name]!.p99 - floorWord.p99) + (wordOverhead <= 1 ? "met" : "missed"))
print("load average at end \(loadAverage())")

stopAll()
fake.stop()
try? FileManager.default.removeItem(at: work)
