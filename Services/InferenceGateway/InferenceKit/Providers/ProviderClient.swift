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

    /// A whole answer. Past `deadline` the transfer is aborted and `DeadlineExceeded` thrown
    /// (libcurl's own time limit, so no timer task races the call).
    public func complete(_ chat: ChatRequest, deadline: ContinuousClock.Instant? = nil) async throws -> ChatResult {
        var request = try codec.request(chat, stream: false)
        let clamped = Self.clamp(&request, to: deadline)
        do {
            let (head, body) = try await http.fetch(request, maximumBodyBytes: maximumAnswerBytes)
            guard (200..<300).contains(head.status) else {
                throw redacted(ProviderFailure.answer(status: head.status, head: head, body: body))
            }
            return try codec.result(body, schema: chat.schema)
        } catch let error as HTTPClientError {
            if clamped, Self.hitDeadline(error, deadline) { throw DeadlineExceeded() }
            throw redacted(ProviderFailure.transport(error))
        } catch let failure as ProviderFailure {
            throw redacted(failure)
        }
    }

    /// A streamed answer: returns once the provider accepted the request (2xx head); the events
    /// follow. An error answer throws before any event, so a caller can still fall back.
    /// Past `deadline` (before or while streaming) the transfer is aborted: `DeadlineExceeded`
    /// before the head, a transient failure after it.
    public func stream(_ chat: ChatRequest, deadline: ContinuousClock.Instant? = nil) async throws -> ProviderEvents {
        let response: HTTPResponse
        var request = try codec.request(chat, stream: true)
        let clamped = Self.clamp(&request, to: deadline)
        do {
            response = try await http.execute(request)
            guard (200..<300).contains(response.head.status) else {
                let body = try await response.body.collect(upTo: 1 << 20)
                throw redacted(ProviderFailure.answer(status: response.head.status, head: response.head, body: body))
            }
        } catch let error as HTTPClientError {
            if clamped, Self.hitDeadline(error, deadline) { throw DeadlineExceeded() }
            throw redacted(ProviderFailure.transport(error))
        } catch let failure as ProviderFailure {
            throw redacted(failure)
        }
        var events = codec.events(response.body)
        events.redactor = redactor
        return events
    }

    /// Shortens the request's total time limit to end at `deadline` (a limit of 0, libcurl's
    /// "none", is replaced too); true when it did.
    static func clamp(_ request: inout HTTPRequest, to deadline: ContinuousClock.Instant?) -> Bool {
        guard let deadline else { return false }
        let left = deadline - ContinuousClock.now
        guard request.timeouts.total <= .zero || left < request.timeouts.total else { return false }
        request.timeouts.total = max(left, .milliseconds(1))
        return true
    }

    /// Whether a time-limit failure of a clamped request is the caller's deadline: libcurl's
    /// total limit can fire while resolving or connecting (reported as a connect failure).
    /// How early libcurl's time limit (whole milliseconds, its own timer) may end a call that
    /// was clamped to the caller's deadline: that close to it, the deadline counts as passed.
    static let deadlineTolerance: Duration = .milliseconds(5)

    static func hitDeadline(_ error: HTTPClientError, _ deadline: ContinuousClock.Instant?) -> Bool {
        guard let deadline, [.timedOut, .connect, .tooSlow].contains(error.kind) else { return false }
        return error.kind == .timedOut || ContinuousClock.now >= deadline - deadlineTolerance
    }

    func redacted(_ failure: ProviderFailure) -> ProviderFailure {
        var failure = failure
        failure.message = redactor.redact(failure.message)
        return failure
    }
}
