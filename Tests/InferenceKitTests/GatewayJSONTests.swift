import Foundation
import Testing

@testable import InferenceKit

/// The hot path's typed JSON: what `JSONWriter` writes is JSON that parses back to the same
/// values, and the OpenAI front's typed request parsing accepts what OpenAI accepts and names
/// the parameter of what it refuses.
@Suite("Typed JSON of the gateway's hot path")
struct GatewayJSONTests {
    func parsed(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("JSONWriter: strings with quotes, backslashes, every control character, NUL, emoji and line separators come back as written; numbers, booleans, null, nesting")
    func writer() throws {
        let controls = String(decoding: (0..<0x20).map { UInt8($0) }, as: UTF8.self)
        let tricky = ["", "plain", "a \"quoted\" \\ path\\", controls, "line\nbreak\r\ttab", "caf\u{E9} \u{1F600} \u{2028}\u{2029} end", "nul\u{0}inside"]
        var json = JSONWriter()
        json.object { json in
            json.field("strings") { $0.array { json in for text in tricky { json.string(text) } } }
            json.field("ints") { $0.array { json in for value in [0, -1, Int.max, Int.min] { json.number(value) } } }
            json.field("doubles") { $0.array { json in for value in [0.7, 1e-5, 2.0, -3.25, 1e20, Double.nan, Double.infinity] { json.number(value) } } }
            json.field("flags") { $0.array { $0.bool(true); $0.bool(false); $0.null(); $0.optional(nil); $0.optional("x") } }
            json.field("empty") { $0.object { _ in } }
            json.field("nested") { $0.object { $0.field("a") { $0.array { $0.object { $0.field("b") { $0.number(1) } } } } } }
            json.field("key \"with\" quote") { $0.string("v") }
        }
        let object = try parsed(json.bytes)
        #expect(object["strings"] as? [String] == tricky)
        #expect(object["ints"] as? [Int] == [0, -1, Int.max, Int.min])
        let doubles = try #require(object["doubles"] as? [Any])
        #expect(doubles.prefix(5).compactMap { ($0 as? NSNumber)?.doubleValue } == [0.7, 1e-5, 2.0, -3.25, 1e20])
        #expect(doubles.suffix(2).allSatisfy { $0 is NSNull })
        let flags = try #require(object["flags"] as? [Any])
        #expect(flags[0] as? Bool == true && flags[1] as? Bool == false && flags[2] is NSNull && flags[3] is NSNull && flags[4] as? String == "x")
        #expect((object["empty"] as? [String: Any])?.isEmpty == true)
        #expect((((object["nested"] as? [String: Any])?["a"] as? [[String: Int]])?.first?["b"]) == 1)
        #expect(object["key \"with\" quote"] as? String == "v")
    }

    @Test("the front's request: string or text-part content, developer as system, max_completion_tokens over max_tokens, metadata values of other types ignored, unknown fields ignored")
    func frontRequest() throws {
        let body = #"""
            {"model":"auto","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}]}],
             "max_tokens":10,"max_completion_tokens":20,"temperature":0,"stream":true,"stream_options":{"include_usage":true},
             "metadata":{"operation":"extract","project":7,"other":{"x":1}},"tools":[{"type":"function"}],"n":1}
            """#
        let (chat, stream, includeUsage) = try OpenAICompatibleFront.parse(Data(body.utf8))
        #expect(chat.messages == [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "hello")])
        #expect(chat.model == "" && chat.maxTokens == 20 && chat.temperature == 0)
        #expect(stream && includeUsage)
        #expect(chat.operation == "extract" && chat.project == "")
        let plain = try OpenAICompatibleFront.parse(Data(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":null,"temperature":null}"#.utf8))
        #expect(plain.chat.model == "m" && plain.chat.maxTokens == nil && plain.chat.temperature == nil && plain.chat.operation == "chat")
        #expect(!plain.stream && !plain.includeUsage)
    }

    @Test("the front's request errors name the parameter as OpenAI does")
    func frontRequestErrors() {
        let cases: [(body: String, param: String?)] = [
            ("not json", nil),
            ("[1,2]", nil),
            (#"{"model":"m"}"#, "messages"),
            (#"{"messages":[]}"#, "messages"),
            (#"{"messages":"hi"}"#, "messages"),
            (#"{"messages":[{"role":"robot","content":"x"}]}"#, "messages[0].role"),
            (#"{"messages":[{"role":"user","content":"a"},{"role":"user"}]}"#, "messages[1].content"),
            (#"{"messages":[{"role":"user","content":42}]}"#, "messages[0].content"),
            (#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#, "messages[0].content"),
            (#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, "temperature"),
            (#"{"messages":[{"role":"user","content":"x"}],"temperature":2.5}"#, "temperature"),
            (#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens"),
            (#"{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5}"#, "max_tokens"),
            (#"{"messages":[{"role":"user","content":"x"}],"model":5}"#, "model"),
        ]
        for (body, param) in cases {
            do {
                _ = try OpenAICompatibleFront.parse(Data(body.utf8))
                Issue.record("accepted: \(body)")
            } catch let error as OpenAICompatibleFront.RequestError {
                #expect(error.param == param, "\(body): \(error.message)")
                #expect(!error.message.isEmpty)
            } catch {
                Issue.record("\(body): \(error)")
            }
        }
    }

    @Test("the front's answers: a chat.completion, chunks (role first, finish, usage with choices []), an error, all as OpenAI's clients read them")
    func frontAnswers() throws {
        let usage = TokenUsage(inputTokens: 12, outputTokens: 3, estimated: true)
        let whole = try parsed(OpenAICompatibleFront.completionJSON(id: "chatcmpl-1", created: 1_733_000_000, model: "m", content: "say \"hi\"\n", finishReason: "stop", usage: usage))
        #expect(whole["object"] as? String == "chat.completion" && whole["created"] as? Int == 1_733_000_000)
        let choice = try #require((whole["choices"] as? [[String: Any]])?.first)
        #expect((choice["message"] as? [String: String]) == ["role": "assistant", "content": "say \"hi\"\n"])
        #expect(choice["finish_reason"] as? String == "stop" && choice["logprobs"] is NSNull)
        let wholeUsage = try #require(whole["usage"] as? [String: Any])
        #expect(wholeUsage["total_tokens"] as? Int == 15 && wholeUsage["estimated"] as? Bool == true)

        let first = try parsed(OpenAICompatibleFront.chunkJSON(id: "c", created: 1, model: "m", role: true, content: "He", finishReason: nil))
        let firstChoice = try #require((first["choices"] as? [[String: Any]])?.first)
        #expect((firstChoice["delta"] as? [String: String]) == ["role": "assistant", "content": "He"])
        #expect(firstChoice["finish_reason"] is NSNull)
        let finish = try parsed(OpenAICompatibleFront.chunkJSON(id: "c", created: 1, model: "m", role: false, content: nil, finishReason: "length"))
        let finishChoice = try #require((finish["choices"] as? [[String: Any]])?.first)
        #expect((finishChoice["delta"] as? [String: Any])?.isEmpty == true && finishChoice["finish_reason"] as? String == "length")
        let last = try parsed(OpenAICompatibleFront.chunkJSON(id: "c", created: 1, model: "m", role: false, content: nil, finishReason: nil, usage: usage))
        #expect((last["choices"] as? [Any])?.isEmpty == true)
        #expect((last["usage"] as? [String: Any])?["completion_tokens"] as? Int == 3)

        let error = try parsed(OpenAICompatibleFront.errorJSON(message: "bad", type: "invalid_request_error", param: nil, code: "x"))
        let detail = try #require(error["error"] as? [String: Any])
        #expect(detail["message"] as? String == "bad" && detail["param"] is NSNull && detail["code"] as? String == "x")
    }

    @Test("OpenAI answers the typed path cannot read (content as parts, fractional counts) still parse the dictionary way")
    func openAIFallback() throws {
        let codec = ProviderCodec(endpoint: ProviderEndpoint(api: .openAI, baseURL: "http://127.0.0.1:1/v1", apiKey: nil))
        let typed = try codec.result(Array(#"{"model":"m","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1}}"#.utf8))
        #expect(typed == ChatResult(content: "ok", finishReason: "stop", usage: TokenUsage(inputTokens: 4, outputTokens: 1), model: "m"))
        let odd = try codec.result(Array(#"{"model":"m","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4.5,"completion_tokens":1}}"#.utf8))
        #expect(odd.content == "ok" && odd.usage == TokenUsage(inputTokens: 4, outputTokens: 1), "fractional count: read the dictionary way")
        #expect(OpenAIChatAnswer.decode(Array(#"{"choices":[{"message":{"content":[{"type":"text","text":"ok"}]}}]}"#.utf8)) == nil, "the typed path cannot read parts")
        let parts = try codec.result(Array(#"{"model":"m","choices":[{"message":{"content":[{"type":"text","text":"ok"}]},"finish_reason":"stop"}]}"#.utf8))
        #expect(parts.finishReason == "stop" && parts.model == "m", "content parts: read the dictionary way (content as the old path read it)")
        #expect(throws: ProviderFailure.self) { try codec.result(Array(#"{"choices":[]}"#.utf8)) }
    }
}

extension GatewayJSONTests {
    @Test("x-kb-cost-usd and x-kb-overhead-ms are written as %.8f and %.3f would write them (exact binary ties aside: those round up here, to even there)")
    func decimals() {
        for value in [0, 0.5, 1, 0.000_000_01, 0.123_456_789, 12.345_678_95, 1234.5, 0.0005, 0.9999, -0.25, 3e-9] {
            #expect(OpenAICompatibleFront.decimal(value, places: 8) == String(format: "%.8f", value), "\(value)")
            #expect(OpenAICompatibleFront.decimal(value, places: 3) == String(format: "%.3f", value), "\(value)")
        }
    }
}
