import ArgumentParser
import Foundation
import KBHTTPClient
import KBProto
import KBRPC
import KBRuntime

/// `kb inference …`: the operator's view of the inference gateway (providers, circuit breakers,
/// a completion to try it).
struct Inference: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The inference gateway: providers, circuit breakers, caches, cache warming, a completion.",
        discussion: "A client of inference-gateway at KB_INFERENCE_GATEWAY_ADDR (default 127.0.0.1:7103) with KB_AUTH_TOKEN; --stream reads the OpenAI-compatible front on its admin port (KB_INFERENCE_GATEWAY_ADMIN_PORT, default 9103).",
        subcommands: [InferenceProviders.self, InferenceBreakers.self, InferenceReset.self, InferenceCache.self, InferenceWarm.self, InferenceComplete.self]
    )
}

func withInferenceGateway(_ body: (RPCClient) async throws -> Void) async throws {
    try await CommandLineClient.run(.inferenceGateway, tool: "kb inference", passThrough: { $0 is ExitCode }, body)
}

func circuitName(_ state: Kb_Inference_V1_CircuitState) -> String {
    switch state {
    case .circuitOpen: "open"
    case .circuitHalfOpen: "half-open"
    default: "closed"
    }
}

struct InferenceProviders: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "providers", abstract: "Every provider: configured or not, local or paid, its models and circuit.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withInferenceGateway { client in
            let response = try await client.call(InferenceGatewayMethods.listProviders, .init())
            if output.json { return try printProtoJSON(response) }
            for provider in response.providers {
                let name = provider.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                let configured = (provider.configured ? "configured" : "no key").padding(toLength: 11, withPad: " ", startingAt: 0)
                let kind = (provider.local ? "local" : "paid").padding(toLength: 6, withPad: " ", startingAt: 0)
                print("\(name) \(configured) \(kind) circuit \(circuitName(provider.circuit).padding(toLength: 9, withPad: " ", startingAt: 0)) \(provider.models.joined(separator: ", "))")
            }
        }
    }
}

struct InferenceBreakers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "breakers", abstract: "Circuit breakers: state, consecutive failures, last failure, next attempt.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withInferenceGateway { client in
            let response = try await client.call(InferenceGatewayMethods.getCircuitBreakers, .init())
            if output.json { return try printProtoJSON(response) }
            let iso = ISO8601DateFormatter()
            for breaker in response.breakers {
                var line = "\(breaker.provider.padding(toLength: 12, withPad: " ", startingAt: 0)) \(circuitName(breaker.state).padding(toLength: 9, withPad: " ", startingAt: 0)) failures \(breaker.consecutiveFailures)"
                if breaker.lastFailureMs > 0 { line += "  last failure \(iso.string(from: Date(timeIntervalSince1970: Double(breaker.lastFailureMs) / 1000)))" }
                if breaker.nextAttemptMs > 0 { line += "  next attempt \(iso.string(from: Date(timeIntervalSince1970: Double(breaker.nextAttemptMs) / 1000)))" }
                print(line)
            }
        }
    }
}

struct InferenceReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Close a provider's circuit breaker (after fixing the provider).")
    @Argument(help: "The provider, e.g. groq.")
    var provider: String

    func run() async throws {
        try await withInferenceGateway { client in
            let status = try await client.call(InferenceGatewayMethods.resetCircuitBreaker, .with { $0.provider = provider })
            print("\(status.provider): circuit \(circuitName(status.state))")
        }
    }
}

struct InferenceComplete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "complete", abstract: "Send a prompt through the gateway and print the answer.")
    @Argument(help: "The prompt.")
    var prompt: String
    @Option(help: "A model (`provider/model`, or a model name); default: the strategy's choice.")
    var model = ""
    @Option(help: "Try this provider first.")
    var provider = ""
    @Option(help: "The most tokens to generate.")
    var maxTokens = 256
    @Option(help: "Sampling temperature (0: deterministic, and answered from the completion cache on a repeat).")
    var temperature: Float?
    @Option(help: "A routing strategy other than the active one (cost-optimized, latency-optimized, quality-optimized, ...).")
    var strategy = ""
    @Flag(help: "Stream the answer as it is generated (through the OpenAI-compatible front).")
    var stream = false
    @Option(help: "A JSON Schema file (or - for standard input): the answer must be JSON that fits it. The gateway asks the provider to follow it where the provider can, checks the answer, asks once more when it does not fit, and fails with SCHEMA_MISMATCH after a second miss.")
    var schema: String?
    @Option(help: "The schema's name, as providers that want one are told (with --schema).")
    var schemaName = "answer"
    @OptionGroup var output: JSONFlag

    func validate() throws {
        if schema != nil && stream { throw ValidationError("--schema applies to whole answers: leave out --stream") }
    }

    func run() async throws {
        if stream { return try await streamed() }
        var schemaText = ""
        if let schema {
            let data: Data
            do {
                data = schema == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: schema))
            } catch {
                CommandLineClient.fail("kb inference", "cannot read the schema \(schema): \(error.localizedDescription)")
            }
            guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
                CommandLineClient.fail("kb inference", "the schema \(schema) is not a JSON object")
            }
            schemaText = String(decoding: data, as: UTF8.self)
        }
        try await withInferenceGateway { client in
            let response = try await client.call(InferenceGatewayMethods.complete, .with {
                $0.messages = [.with { $0.role = "user"; $0.content = prompt }]
                $0.model = model
                $0.provider = provider
                $0.maxTokens = Int32(clamping: maxTokens)
                $0.operation = "cli"
                $0.strategy = strategy
                if let temperature { $0.temperature = .with { $0.value = temperature } }
                if !schemaText.isEmpty {
                    $0.jsonSchema = schemaText
                    $0.jsonSchemaName = schemaName
                }
            }, options: CallOptions(timeout: .seconds(300)))
            if output.json { return try printProtoJSON(response) }
            print(response.content)
            let cached = response.cached ? ", from the \(response.cacheType) cache" + (response.cacheType == "semantic" ? String(format: " (similarity %.3f)", response.similarity) : "") : ""
            FileHandle.standardError.write(Data("[\(response.provider) \(response.model): \(response.inputTokens) in, \(response.outputTokens) out, \(response.latencyMs) ms, \(response.finishReason), $\(String(format: "%.6f", response.costUsd)), usage \(response.usageEstimated ? "estimated" : "counted")\(cached)\(schemaText.isEmpty ? "" : response.schemaValid ? ", fits the schema" : ", NOT checked against the schema")]\n".utf8))
        }
    }

    func streamed() async throws {
        let source = try ConfigSource.fromProcess()
        let port = try source.value(of: ServiceConfiguration.Keys.adminPort(.inferenceGateway))
        let token = try source.value(of: ServiceConfiguration.Keys.authToken)
        var body: [String: Any] = ["messages": [["role": "user", "content": prompt]], "max_tokens": maxTokens, "stream": true, "stream_options": ["include_usage": true]]
        body["model"] = provider.isEmpty ? model : "\(provider)/\(model.isEmpty ? "" : model)".trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let http = HTTPClient()
        defer { http.shutdown() }
        let request = HTTPRequest.postJSON(
            "http://127.0.0.1:\(port)/v1/chat/completions", body: [UInt8](try JSONSerialization.data(withJSONObject: body)),
            headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []
        )
        let response: HTTPResponse
        do { response = try await http.execute(request) } catch {
            CommandLineClient.fail("kb inference", "the gateway's HTTP front at 127.0.0.1:\(port) is not reachable (\(error)); start it with `kb up`")
        }
        guard response.head.status == 200 else {
            let text = String(decoding: (try? await response.body.collect(upTo: 1 << 20)) ?? [], as: UTF8.self)
            CommandLineClient.fail("kb inference", "HTTP \(response.head.status): \(text)")
        }
        for try await event in response.body.serverSentEvents() {
            if event.data == "[DONE]" { break }
            guard let object = try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any] else { continue }
            if let error = object["error"] as? [String: Any] {
                print("")
                CommandLineClient.fail("kb inference", "the stream failed: \(error["message"] as? String ?? "unknown error")")
            }
            for choice in object["choices"] as? [[String: Any]] ?? [] {
                if let text = (choice["delta"] as? [String: Any])?["content"] as? String {
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
            }
            if let usage = object["usage"] as? [String: Any] {
                FileHandle.standardError.write(Data("\n[\(response.head.header("x-kb-provider") ?? "?"): \(usage["prompt_tokens"] ?? 0) in, \(usage["completion_tokens"] ?? 0) out, usage \(usage["estimated"] as? Bool == true ? "estimated" : "counted")]\n".utf8))
            }
        }
        print("")
    }
}
