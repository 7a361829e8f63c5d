import Foundation
import KBHTTPClient

/// Calls one provider over the shared HTTP client: a whole answer, or a stream of events.
/// Every failure is a `ProviderFailure` with the provider's meaning, its key redacted.
public struct ProviderClient: Sendable {
    public let name: String
    public let codec: ProviderCodec
    let http: HTTPClient
    let redactor: SecretRedactor
    /// The most bytes of an answer read (a whole answer, or an error body).
    public var maximumAnswerBytes = 32 << 20

    public init(name: String, endpoint: ProviderEndpoint, http: HTTPClient) {
        self.name = name
        codec = ProviderCodec(endpoint: endpoint)
        self.http = http
        redactor = SecretRedactor(secrets: endpoint.apiKey.map { [$0] } ?? [])
    }

    /// A whole answer.
    public func complete(_ chat: ChatRequest) async throws -> ChatResult {
        do {
            let response = try await http.execute(try codec.request(chat, stream: false))
            let body = try await response.body.collect(upTo: maximumAnswerBytes)
            guard (200..<300).contains(response.head.status) else {
                throw redacted(ProviderFailure.answer(status: response.head.status, head: response.head, body: body))
            }
            return try codec.result(body)
        } catch let error as HTTPClientError {
            throw redacted(ProviderFailure.transport(error))
        } catch let failure as ProviderFailure {
            throw redacted(failure)
        }
    }

    /// A streamed answer: returns once the provider accepted the request (2xx head); the events
    /// follow. An error answer throws before any event, so a caller can still fall back.
    public func stream(_ chat: ChatRequest) async throws -> AsyncThrowingStream<ChatStreamEvent, Error> {
        let response: HTTPResponse
        do {
            response = try await http.execute(try codec.request(chat, stream: true))
            guard (200..<300).contains(response.head.status) else {
                let body = try await response.body.collect(upTo: 1 << 20)
                throw redacted(ProviderFailure.answer(status: response.head.status, head: response.head, body: body))
            }
        } catch let error as HTTPClientError {
            throw redacted(ProviderFailure.transport(error))
        } catch let failure as ProviderFailure {
            throw redacted(failure)
        }
        let events = codec.events(response.body)
        let redactor = self.redactor
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await event in events { continuation.yield(event) }
                    continuation.finish()
                } catch let failure as ProviderFailure {
                    var failure = failure
                    failure.message = redactor.redact(failure.message)
                    continuation.finish(throwing: failure)
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func redacted(_ failure: ProviderFailure) -> ProviderFailure {
        var failure = failure
        failure.message = redactor.redact(failure.message)
        return failure
    }
}
