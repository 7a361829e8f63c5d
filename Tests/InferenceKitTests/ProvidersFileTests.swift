import Foundation
import InferenceKit
import Testing

@Suite("Providers file (JSON or YAML) over the built-in providers")
struct ProvidersFileTests {
    @Test("the built-in file has the guide's strategies and every provider they name")
    func builtIn() throws {
        let file = ProvidersFile.builtIn
        #expect(file.activeStrategy == "cost-optimized")
        #expect(file.strategies["cost-optimized"]?.priority.prefix(2) == ["local", "ollama"])
        #expect(file.strategies["quality-optimized"]?.priority.first == "anthropic")
        #expect(Set(file.providers.keys) == ["groq", "openai", "openrouter", "anthropic", "gemini", "local", "ollama"])
        #expect(file.providers["groq"]?.apiKeyEnv == "GROQ_API_KEY")
    }

    @Test("YAML and JSON overlays: a provider replaced, one added, breaker settings in the guide's names, the active strategy")
    func overlays() throws {
        let yaml = """
            activeStrategy: latency-optimized
            providers:
              groq:
                api: openai
                base_url: http://127.0.0.1:9999/v1
                api_key_env: GROQ_API_KEY
                models: [fast-model]
                circuit_breaker: {failureThreshold: 7, resetTimeout: 5000, halfOpenRequests: 1}
              vllm:
                api: openai
                base_url: http://127.0.0.1:8000/v1
                local: true
                models: [qwen]
            """
        let file = try ProvidersFile.parse(Data(yaml.utf8), name: "providers.yaml")
        #expect(file.activeStrategy == "latency-optimized")
        #expect(file.providers["groq"]?.baseURL == "http://127.0.0.1:9999/v1")
        #expect(file.providers["groq"]?.circuitBreaker == .init(failureThreshold: 7, resetTimeoutMs: 5000, halfOpenRequests: 1))
        #expect(file.providers["vllm"]?.local == true)
        #expect(file.providers["openai"] != nil, "what the file leaves out keeps the built-in defaults")

        let json = #"{"strategies": {"mine": {"priority": ["vllm", "openai"]}}, "activeStrategy": "mine", "providers": {"vllm": {"api": "openai", "base_url": "http://127.0.0.1:8000/v1", "local": true}}}"#
        let fromJSON = try ProvidersFile.parse(Data(json.utf8), name: "providers.json")
        #expect(fromJSON.strategies["mine"]?.priority == ["vllm", "openai"])
    }

    @Test("mistakes are named: a strategy naming an unknown provider, an unknown active strategy, a bad URL, an unknown API, a zero threshold")
    func mistakes() throws {
        func message(_ text: String) -> String {
            do {
                _ = try ProvidersFile.parse(Data(text.utf8), name: "p.yaml")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(message("strategies: {x: {priority: [nope]}}").contains("names provider \"nope\""))
        #expect(message("activeStrategy: fastest").contains("activeStrategy \"fastest\""))
        #expect(message("providers: {p: {api: openai, base_url: 'ftp://x'}}").contains("http:// or https://"))
        #expect(message("providers: {p: {api: cohere, base_url: 'http://x'}}").contains("p.yaml is not valid"))
        #expect(message("providers: {p: {api: openai, base_url: 'http://x', circuit_breaker: {failureThreshold: 0, resetTimeout: 1, halfOpenRequests: 1}}}").contains("at least 1"))
        #expect(message("providers: {p: {api: openai, base_url: 'http://x', structured_output: grammar}}").contains("must be one of native, json_object_schema, json_object, prompt"))
        #expect(message("providers: {p: {api: anthropic, base_url: 'http://x', structured_output: json_object}}").contains("a way of OpenAI's API"))
    }

    @Test("structured_output: how a provider is asked for a schema; unset, the API's own way (llama.cpp's json_object with schema for local OpenAI-API servers)")
    func structuredOutput() throws {
        let file = try ProvidersFile.parse(Data("""
            providers:
              vllm: {api: openai, base_url: "http://127.0.0.1:8000/v1", local: true, structured_output: native}
              lmstudio: {api: openai, base_url: "http://127.0.0.1:1234/v1", local: true}
              claude: {api: anthropic, base_url: "http://127.0.0.1:1", structured_output: prompt}
            """.utf8), name: "p.yaml")
        #expect(file.providers["vllm"]!.endpoint(apiKey: nil).structuredOutput == .native)
        #expect(file.providers["lmstudio"]!.endpoint(apiKey: nil).structuredOutput == .jsonObjectSchema)
        #expect(file.providers["claude"]!.endpoint(apiKey: nil).structuredOutput == .prompt)
        #expect(file.providers["anthropic"]!.endpoint(apiKey: nil).structuredOutput == .native)
    }
}
