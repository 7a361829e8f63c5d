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

    @Test("the front's response_format: json_schema takes the structured path with its name and schema, json_object is any JSON object, text is free text")
    func frontResponseFormat() throws {
        let schema = #"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}"#
        let structured = try OpenAICompatibleFront.parse(Data(#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"item","schema":\#(schema),"strict":true}}}"#.utf8))
        let asked = try #require(structured.chat.schema)
        #expect(asked.name == "item" && JSONValue.parse(asked.text) == JSONValue.parse(schema))
        #expect(asked.schema == (try OutputSchema(text: schema)).schema)
        let object = try #require(try OpenAICompatibleFront.parse(Data(#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#.utf8)).chat.schema)
        #expect(object.name == "json_object" && object.check(#"{"any":[1]}"#) == .success(#"{"any":[1]}"#))
        if case .success = object.check("[1]") { Issue.record("json_object accepted an array") }
        #expect(try OpenAICompatibleFront.parse(Data(#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}"#.utf8)).chat.schema == nil)
    }

    @Test("the JSON parser reads what JSONSerialization reads, value for value, and refuses what is not JSON")
    func parser() throws {
        func same(_ value: JSONValue, _ other: Any) -> Bool {
            switch (value, other) {
            case (.null, is NSNull): return true
            // Booleans come back as NSNumbers of type char ("c"), numbers as long long / double.
            case (.bool(let a), let b as NSNumber) where String(cString: b.objCType) == "c": return a == b.boolValue
            case (.number(let a), let b as NSNumber) where String(cString: b.objCType) != "c": return a == b.doubleValue
            case (.string(let a), let b as String): return a == b
            case (.array(let a), let b as [Any]): return a.count == b.count && zip(a, b).allSatisfy { same($0, $1) }
            case (.object(let a), let b as [String: Any]): return a.count == b.count && a.allSatisfy { key, item in b[key].map { same(item, $0) } ?? false }
            default: return false
            }
        }
        let documents = [
            #"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"there\"\n\u00e9\ud83d\ude00 \/ \\ \b\f\r\t"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#,
            " [ 0, -0, 1.5, -2.25e-3, 1E+2, 123456789012345678, 9007199254740993, true, false, null, \"\", {}, [] ] ",
            #"{"nested":{"a":[{"b":[[[]]]}]},"emoji":"😀","cjk":"漢字"}"#,
            "\"top-level string\"", "42", "null",
        ]
        for document in documents {
            let ours = try #require(JSONValue.parse(document), "\(document)")
            let theirs = try JSONSerialization.jsonObject(with: Data(document.utf8), options: [.fragmentsAllowed])
            #expect(same(ours, theirs), "\(document)")
        }
        let malformed = [
            "", " ", "{", "}", "[1,]", "[,1]", #"{"a":1,}"#, #"{"a" 1}"#, #"{a:1}"#, "[1 2]", "01", "-", "1.", ".5", "1e", "+1", "NaN", "Infinity",
            "tru", "nul", "[true false]", #""abc"#, "\"tab\there\"", #""\x""#, #""\u12""#, #""\ud800""#, #""\udc00x""#, "1 2", "{} x", "1e400",
            String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
        ]
        for text in malformed { #expect(JSONValue.parse(text) == nil, "accepted: \(text.prefix(40).debugDescription)") }
        #expect(JSONValue.parse(bytes: [0x22, 0xFF, 0xFE, 0x22]) == nil, "a string that is not UTF-8")
        #expect(JSONValue.parse(#"{"dup":1,"dup":2}"#) == .object(["dup": .number(2)]), "the last of duplicate keys")
        #expect(JSONValue.parse(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)) != nil, "500 levels are within the bound")
    }

    @Test("request ids are random version-4 UUIDs in lower case, different every time")
    func requestIds() {
        var seen = Set<String>()
        for _ in 0..<2000 {
            let id = GatewayChat.newRequestId()
            #expect(id.count == 36 && id == id.lowercased() && UUID(uuidString: id) != nil, "\(id)")
            let characters = Array(id)
            #expect(characters[14] == "4" && "89ab".contains(characters[19]), "\(id): version 4, RFC 4122 variant")
            seen.insert(id)
        }
        #expect(seen.count == 2000)
    }

    @Test("the front hands a json_schema on as written: key order, spacing and escapes kept (the order properties are asked in), whatever surrounds it")
    func frontSchemaKeepsItsText() throws {
        let schema = #"{"type": "object", "properties": {"zeta": {"type": "string", "description": "a \"quoted\" {brace} [x]"}, "alpha": {"type": "integer", "minimum": 1.50e1}}, "required": ["zeta", "alpha"]}"#
        let body = #"{"response_format": {"json_schema": {"schema": \#(schema), "name": "ordered"}, "type": "json_schema"}, "messages": [{"role": "user", "content": "{\"schema\": 1}"}]}"#
        let asked = try #require(try OpenAICompatibleFront.parse(Data(body.utf8)).chat.schema)
        #expect(asked.text == schema)
        #expect(asked.name == "ordered")
        // A schema repeating a key goes out re-serialised, holding the value the gateway checks with.
        let repeated = #"{"type": "object", "properties": {"b": {"type": "string"}}, "type": "object"}"#
        let reserialised = try #require(try OpenAICompatibleFront.parse(Data(#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":\#(repeated)}}}"#.utf8)).chat.schema)
        #expect(reserialised.text == #"{"properties":{"b":{"type":"string"}},"type":"object"}"#)
        let zeta = try #require(asked.text.range(of: "zeta")), alpha = try #require(asked.text.range(of: "alpha"))
        #expect(zeta.lowerBound < alpha.lowerBound)

        // The kept text alone: nested paths, escaped keys, the last of duplicate keys, nothing when absent or malformed.
        let document = Data(#"{"a": {"b\u0022": [1, {"c": 2}], "b": true}, "a": {"b": {"x": [1, 2]} }}"#.utf8)
        #expect(JSONValue.parse(bytes: document, keepingTextAt: ["a", "b"])?.text == #"{"x": [1, 2]}"#)
        #expect(JSONValue.parse(bytes: Data(#"{"a": {"b\u0022": 7}}"#.utf8), keepingTextAt: ["a", "b\""])?.text == "7")
        #expect(JSONValue.parse(bytes: document, keepingTextAt: ["a", "missing"])?.text == nil)
        #expect(JSONValue.parse(bytes: Data(#"{"a": {"b": "unterminated}}"#.utf8), keepingTextAt: ["a", "b"])?.text == nil)
        #expect(JSONValue.parse(bytes: Data("[1, 2]".utf8), keepingTextAt: ["a"])?.text == nil)
        #expect(JSONValue.parse(bytes: Data(#"{"a": [{"b": 1}]}"#.utf8), keepingTextAt: ["a", "b"])?.text == nil, "a path does not run through arrays")
    }

    @Test("the schema checker: types (integer within number, booleans apart), required, additionalProperties, items, enum, bounds, lengths — each violation named by its path; unknown keywords refused")
    func schemaChecker() throws {
        let schema = try OutputSchema(text: #"""
            {"type":"object","description":"items","properties":{
              "items":{"type":"array","minItems":1,"maxItems":2,"items":{"type":"object","properties":{
                "name":{"type":"string","minLength":1,"maxLength":5},
                "type":{"enum":["coding_pattern","bug_solution"]},
                "confidence":{"type":"number","minimum":0,"maximum":1},
                "count":{"type":"integer"},
                "tags":{"type":["array","null"],"items":{"type":"string"}}},
                "required":["name","type"],"additionalProperties":false}}},
             "required":["items"]}
            """#)
        let valid = #"{"items":[{"name":"retry","type":"bug_solution","confidence":1,"count":3,"tags":null}],"extra":true}"#
        #expect(schema.check(valid) == .success(valid))
        let cases: [(String, String)] = [
            (#"{}"#, #"the property "items" is required"#),
            (#"{"items":[]}"#, "items: must hold at least 1 items (found 0)"),
            (#"{"items":[{"name":"a","type":"x"}]}"#, #"items[0].type: must be one of "coding_pattern", "bug_solution" (found "x")"#),
            (#"{"items":[{"name":"","type":"bug_solution"}]}"#, "items[0].name: must be at least 1 characters long (found 0)"),
            (#"{"items":[{"name":"abcdef","type":"bug_solution"}]}"#, "items[0].name: must be at most 5 characters long (found 6)"),
            (#"{"items":[{"name":"a","type":"bug_solution","confidence":-0.5}]}"#, "items[0].confidence: must be at least 0 (found -0.5)"),
            (#"{"items":[{"name":"a","type":"bug_solution","confidence":true}]}"#, "items[0].confidence: must be number (found true)"),
            (#"{"items":[{"name":"a","type":"bug_solution","count":1.5}]}"#, "items[0].count: must be integer (found 1.5)"),
            (#"{"items":[{"name":"a","type":"bug_solution","tags":[1]}]}"#, "items[0].tags[0]: must be string (found 1)"),
            (#"{"items":[{"name":"a","type":"bug_solution","why":"x"}]}"#, #"items[0]: the property "why" is not allowed (additionalProperties is false)"#),
            (#"{"items":[{"name":"a","type":"bug_solution"},{"name":"b","type":"bug_solution"},{"name":"c","type":"bug_solution"}]}"#, "items: must hold at most 2 items (found 3)"),
            (#"{"items": [ {"name": "a", "type": "bug_solution"} ]"#, "the answer is not JSON"),
        ]
        for (answer, problem) in cases {
            switch schema.check(answer) {
            case .success: Issue.record("accepted: \(answer)")
            case .failure(let mismatch): #expect(mismatch.problem.hasPrefix(problem), "\(answer): \(mismatch.problem)")
            }
        }
        for (text, message) in [
            (##"{"type":"object","properties":{"a":{"$ref":"#/x"}}}"##, "json_schema: the schema cannot be used: properties.a.$ref: the gateway cannot check the keyword"),
            (#"{"type":"thing"}"#, "json_schema: the schema cannot be used: type: unknown type"),
            (#"{"type":"object","minItems":-1}"#, "json_schema: the schema cannot be used: minItems: must be a non-negative integer"),
            ("[]", "json_schema: must be a JSON object"),
            ("{", "json_schema: is not JSON text"),
        ] {
            #expect(throws: OutputSchema.Invalid.self) { try OutputSchema(text: text) }
            do { _ = try OutputSchema(text: text) } catch { #expect("\(error)".hasPrefix(message), "\(text): \(error)") }
        }
        #expect(throws: OutputSchema.Invalid.self) { try OutputSchema(text: "{}", name: String(repeating: "n", count: 65)) }
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
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}"#, "response_format.type"),
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}"#, "response_format.json_schema.schema"),
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a b","schema":{"type":"object"}}}}"#, "response_format.json_schema.name"),
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","oneOf":[]}}}}"#, "response_format.json_schema.schema"),
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":[1]}}}"#, "response_format.json_schema.schema"),
            (#"{"messages":[{"role":"user","content":"x"}],"stream":true,"response_format":{"type":"json_object"}}"#, "response_format"),
            (#"{"messages":[{"role":"user","content":"x"}],"response_format":"json"}"#, "response_format"),
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
