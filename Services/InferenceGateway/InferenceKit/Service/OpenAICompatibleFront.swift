import Foundation
import HTTPTypes
import Hummingbird
import KBProto
import KBRPC
import KBRuntime
import NIOCore

/// OpenAI's API on the gateway's HTTP port, so tools written for OpenAI work by changing their
/// base URL to `http://127.0.0.1:9103/v1`:
///
///     POST /v1/chat/completions   whole, or `stream: true` as OpenAI's SSE chunks
///                                 (`stream_options.include_usage`: a last chunk with `choices: []`
///                                 and the usage), ending `data: [DONE]`
///     POST /v1/embeddings         the local 384-dimensional model (all-MiniLM-L6-v2), or a
///                                 provider's embedding model (`text-embedding-3-small`, 1536)
///     GET  /v1/models             every configured provider's models, as `provider/model`
///
/// Errors are OpenAI's JSON (`{"error": {"message", "type", "param", "code"}}`). With
/// `KB_AUTH_TOKEN` set, `Authorization: Bearer <token>` is required. Each answer says who served
/// it: `x-kb-provider`, `x-kb-attempts`, `x-kb-cost-usd` (priced by budget-service's table; 0 for
/// local providers and cached answers), `x-kb-overhead-ms` (the gateway's own time: total minus
/// time waiting on providers), and `x-kb-usage` (`counted` or `estimated`; in a stream's usage
/// chunk, the usage object's `estimated`).
///
/// `response_format` (`{"type": "json_schema", "json_schema": {name, schema, strict}}` or
/// `{"type": "json_object"}`) takes the gateway's structured-output path (`OutputSchema`): the
/// provider is asked to follow the schema and the answer is checked; answers that break it even
/// after one retry are `502` with code `schema_mismatch`. Whole completions only (with `stream`:
/// `400`, param `response_format`).
enum OpenAICompatibleFront {
    static let maximumBody = 16 << 20

    static func add(to router: Router<BasicRequestContext>, gateway: InferenceGatewayService, authToken: String?) {
        router.post("/v1/chat/completions") { request, _ -> Response in
            if let denied = unauthorized(request, authToken) { return denied }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: maximumBody) } catch {
                return failure(.contentTooLarge, "the body is larger than \(maximumBody) bytes", type: "invalid_request_error", param: nil)
            }
            var parsed: (chat: GatewayChat, stream: Bool, includeUsage: Bool)
            do { parsed = try parse(Data(buffer: body)) } catch let error as RequestError {
                return failure(.badRequest, error.message, type: "invalid_request_error", param: error.param)
            } catch {
                return failure(.badRequest, "\(error)", type: "invalid_request_error", param: nil)
            }
            let deadline = ContinuousClock.now + .seconds(300)
            if let control = request.headers[.cacheControl], control.contains("no-cache") || control.contains("no-store") { parsed.chat.noCache = true }
            if parsed.stream {
                return await stream(parsed.chat, includeUsage: parsed.includeUsage, gateway: gateway, deadline: deadline)
            }
            let started = ContinuousClock.now
            do {
                let answer = try await gateway.router.complete(parsed.chat, deadline: deadline)
                gateway.completed(answer, operation: parsed.chat.operation, elapsed: ContinuousClock.now - started)
                let usage = answer.result.usage ?? TokenUsage(inputTokens: 0, outputTokens: 0)
                let model = answer.result.model.isEmpty ? (answer.attempts.last?.model ?? "") : answer.result.model
                var response = json(completionJSON(
                    id: "chatcmpl-\(parsed.chat.requestId)", created: Int(Date().timeIntervalSince1970), model: model,
                    content: answer.result.content, finishReason: answer.result.finishReason, usage: usage
                ), status: .ok)
                let overhead = (ContinuousClock.now - started).nanoseconds - answer.providerNanoseconds
                response.headers[HTTPField.Name("x-kb-provider")!] = answer.provider
                response.headers[HTTPField.Name("x-kb-attempts")!] = String(answer.attempts.count)
                response.headers[HTTPField.Name("x-kb-cache")!] = answer.cached ? "hit" : "miss"
                response.headers[HTTPField.Name("x-kb-cost-usd")!] = decimal(answer.costUSD, places: 8)
                response.headers[HTTPField.Name("x-kb-usage")!] = usage.estimated ? "estimated" : "counted"
                response.headers[HTTPField.Name("x-kb-overhead-ms")!] = decimal(Double(max(0, overhead)) / 1e6, places: 3)
                return response
            } catch let failure as RoutingFailure {
                return routingFailure(failure)
            } catch let mismatch as SchemaMismatch {
                // The model's answers broke the schema: a bad answer from upstream, not a bad request.
                return failure(.badGateway, mismatch.description, type: "server_error", param: "response_format", code: "schema_mismatch")
            } catch {
                return failure(.internalServerError, "\(error)", type: "server_error", param: nil)
            }
        }
        router.post("/v1/embeddings") { request, _ -> Response in
            if let denied = unauthorized(request, authToken) { return denied }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: maximumBody) } catch {
                return failure(.contentTooLarge, "the body is larger than \(maximumBody) bytes", type: "invalid_request_error", param: nil)
            }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] else {
                return failure(.badRequest, "the body must be a JSON object", type: "invalid_request_error", param: nil)
            }
            let texts: [String]
            if let one = object["input"] as? String {
                texts = [one]
            } else if let many = object["input"] as? [String] {
                texts = many
            } else {
                return failure(.badRequest, "'input' must be a string or an array of strings (token arrays are not accepted)", type: "invalid_request_error", param: "input")
            }
            // OpenAI's Python package asks for base64 (little-endian float32) unless told otherwise.
            let format = object["encoding_format"] as? String ?? "float"
            guard format == "float" || format == "base64" else {
                return failure(.badRequest, "encoding_format must be 'float' or 'base64'", type: "invalid_request_error", param: "encoding_format")
            }
            let model = (object["model"] as? String) ?? ""
            guard object["dimensions"] == nil || object["dimensions"] is NSNull || object["dimensions"] as? Int != nil else {
                return failure(.badRequest, "dimensions must be an integer between 1 and 4096", type: "invalid_request_error", param: "dimensions")
            }
            let dimensions = (object["dimensions"] as? Int) ?? 0
            guard (0...4096).contains(dimensions) else {
                return failure(.badRequest, "dimensions must be an integer between 1 and 4096", type: "invalid_request_error", param: "dimensions")
            }
            guard !texts.isEmpty, texts.count <= InferenceGatewayService.maximumEmbedTexts else {
                return failure(.badRequest, "input must hold 1 to \(InferenceGatewayService.maximumEmbedTexts) texts (found \(texts.count))", type: "invalid_request_error", param: "input")
            }
            for (index, text) in texts.enumerated() where text.utf8.count > InferenceGatewayService.maximumEmbedCharacters {
                return failure(.badRequest, "input[\(index)] is longer than \(InferenceGatewayService.maximumEmbedCharacters) bytes", type: "invalid_request_error", param: "input")
            }
            let answer: (vectors: [[Float]], model: String, cached: Int, provider: String, costUSD: Double)
            do {
                answer = try await gateway.embeddings(texts, model: model, dimension: dimensions, deadline: .now + .seconds(300))
            } catch let error as RPCError {
                let status: HTTPResponse.Status = error.code == .invalidArgument ? .badRequest : (error.code == .unimplemented ? .notImplemented : .serviceUnavailable)
                return failure(status, error.message, type: error.code == .invalidArgument ? "invalid_request_error" : "server_error", param: error.field)
            } catch {
                return failure(.internalServerError, "\(error)", type: "server_error", param: nil)
            }
            let tokens = texts.reduce(0) { $0 + $1.utf8.count / 4 + 2 }
            var response = json([
                "object": "list",
                "model": answer.model,
                "data": answer.vectors.enumerated().map { index, values -> [String: Any] in
                    let vector: Any = format == "base64"
                        ? values.withUnsafeBufferPointer { Data(buffer: $0).base64EncodedString() }  // x86-64 and arm64 are little-endian
                        : values.map(Double.init)
                    return ["object": "embedding", "index": index, "embedding": vector]
                },
                "usage": ["prompt_tokens": tokens, "total_tokens": tokens],
            ], status: .ok)
            response.headers[HTTPField.Name("x-kb-provider")!] = answer.provider
            response.headers[HTTPField.Name("x-kb-cached")!] = String(answer.cached)
            response.headers[HTTPField.Name("x-kb-cost-usd")!] = decimal(answer.costUSD, places: 8)
            return response
        }
        router.get("/v1/models") { request, _ -> Response in
            if let denied = unauthorized(request, authToken) { return denied }
            var data: [[String: Any]] = []
            for name in gateway.router.routes.keys.sorted() {
                guard let route = gateway.router.routes[name], route.configured else { continue }
                for model in route.provider.models + route.provider.embeddingModels {
                    data.append(["id": "\(name)/\(model)", "object": "model", "created": 0, "owned_by": name])
                }
            }
            return json(["object": "list", "data": data], status: .ok)
        }
    }

    struct RequestError: Error {
        var param: String?
        var message: String
    }

    /// A streamed answer: the first event is awaited before the head is sent, so a failure
    /// before any text is still an ordinary error answer.
    static func stream(_ chat: GatewayChat, includeUsage: Bool, gateway: InferenceGatewayService, deadline: ContinuousClock.Instant) async -> Response {
        let events = IteratorBox(gateway.router.stream(chat, deadline: deadline).makeAsyncIterator())
        let first: GatewayStreamEvent?
        do { first = try await events.next() } catch let failure as RoutingFailure {
            return routingFailure(failure)
        } catch {
            return failure(.internalServerError, "\(error)", type: "server_error", param: nil)
        }
        var provider = "", model = chat.model
        if case .provider(let name, let served)? = first {
            provider = name
            model = served
        }
        let id = "chatcmpl-\(chat.requestId)"
        let created = Int(Date().timeIntervalSince1970)
        let servedModel = model
        let promptEstimate = estimatedTokens(chat.messages)
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        headers[HTTPField.Name("x-kb-provider")!] = provider
        let body = ResponseBody { writer in
            func send(_ json: [UInt8]) async throws {
                var buffer = ByteBuffer()
                buffer.reserveCapacity(json.count + 8)
                buffer.writeString("data: ")
                buffer.writeBytes(json)
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            var usage: TokenUsage?
            var characters = 0
            var sentRole = false
            do {
                while let event = try await events.next() {
                    switch event {
                    case .provider: break
                    case .text(let text):
                        characters += text.utf8.count
                        try await send(chunkJSON(id: id, created: created, model: servedModel, role: !sentRole, content: text, finishReason: nil))
                        sentRole = true
                    case .usage(let latest): usage = latest
                    case .finished(let reason): try await send(chunkJSON(id: id, created: created, model: servedModel, role: false, content: nil, finishReason: reason))
                    }
                }
                if includeUsage {
                    // Providers that do not report usage in streams (llama.cpp) get an estimate.
                    let final = usage ?? TokenUsage(inputTokens: promptEstimate, outputTokens: max(1, characters / 4), estimated: true)
                    try await send(chunkJSON(id: id, created: created, model: servedModel, role: false, content: nil, finishReason: nil, usage: final))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            } catch {
                // Never a clean end with a truncated answer: an error event, and no [DONE].
                let message = (error as? RoutingFailure)?.description ?? "\(error)"
                try? await send(errorJSON(message: message, type: "server_error", param: nil, code: "stream_failed"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// An async iterator shared with the response body's writer (one reader at a time).
    final class IteratorBox: @unchecked Sendable {
        var iterator: AsyncThrowingStream<GatewayStreamEvent, Error>.AsyncIterator
        init(_ iterator: AsyncThrowingStream<GatewayStreamEvent, Error>.AsyncIterator) { self.iterator = iterator }
        func next() async throws -> GatewayStreamEvent? { try await iterator.next() }
    }

    /// `value` with `places` decimals (as `%.Nf`), without `String(format:)`'s locale machinery.
    static func decimal(_ value: Double, places: Int) -> String {
        let scale = (0..<places).reduce(1.0) { value, _ in value * 10 }
        guard value.isFinite, abs(value) * scale < 9e15 else { return String(value) }
        let scaled = Int64((abs(value) * scale).rounded())
        let unit = Int64(scale)
        let fraction = String(scaled % unit)
        return (value < 0 && scaled != 0 ? "-" : "") + String(scaled / unit) + "." + String(repeating: "0", count: places - fraction.count) + fraction
    }

    static func routingFailure(_ routing: RoutingFailure) -> Response {
        switch routing.kind {
        case .request: failure(.badRequest, routing.description, type: "invalid_request_error", param: nil)
        case .exhausted: failure(.tooManyRequests, routing.description, type: "insufficient_quota", param: nil)
        case .configuration: failure(.serviceUnavailable, routing.description, type: "server_error", param: nil)
        case .cancelled: failure(.requestTimeout, routing.description, type: "server_error", param: nil)
        case .transient: failure(routing.message.contains("deadline") ? .gatewayTimeout : .serviceUnavailable, routing.description, type: "server_error", param: nil)
        }
    }

    static func unauthorized(_ request: Request, _ token: String?) -> Response? {
        guard let token else { return nil }
        if BearerToken.matches(request.headers[.authorization], token: token) { return nil }
        return failure(.unauthorized, "missing or wrong 'Authorization: Bearer <KB_AUTH_TOKEN>'", type: "invalid_request_error", param: nil, code: "invalid_api_key")
    }

    static func failure(_ status: HTTPResponse.Status, _ message: String, type: String, param: String?, code: String? = nil) -> Response {
        json(errorJSON(message: message, type: type, param: param, code: code), status: status)
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return json([UInt8](data), status: status)
    }

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
