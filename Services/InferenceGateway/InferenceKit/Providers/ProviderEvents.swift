import KBHTTPClient

/// A provider's streamed answer as events, parsed from the response body as the reader pulls
/// them: no task and no buffer between libcurl's thread and the reader (one thread switch per
/// chunk instead of three). Ends after the provider's end marker; throws a `transient`
/// `ProviderFailure` when the body ends before it, the provider's failure for an error event,
/// and transport failures as `ProviderFailure.transport`, with the key redacted.
public struct ProviderEvents: AsyncSequence, Sendable {
    public typealias Element = ChatStreamEvent
    let body: HTTPBody
    let api: ProviderAPI
    var redactor = SecretRedactor(secrets: [])

    public func makeAsyncIterator() -> Iterator {
        switch api {
        case .ollama: Iterator(source: .lines(body.lines().makeAsyncIterator()), parser: .init(api: api), redactor: redactor)
        case .openAI, .anthropic, .gemini: Iterator(source: .events(body.serverSentEvents().makeAsyncIterator()), parser: .init(api: api), redactor: redactor)
        }
    }

    /// Reads events; nil after the end marker, or after a failure was thrown.
    public struct Iterator: AsyncIteratorProtocol {
        enum Source {
            case events(AsyncServerSentEvents<HTTPBody>.Iterator)
            case lines(AsyncByteLines<HTTPBody>.Iterator)
        }

        var source: Source
        var parser: ProviderCodec.StreamParser
        let redactor: SecretRedactor
        var pending: [ChatStreamEvent] = []
        var nextPending = 0
        var done = false

        public mutating func next() async throws -> ChatStreamEvent? {
            while true {
                if nextPending < pending.count {
                    defer { nextPending += 1 }
                    return pending[nextPending]
                }
                if done || parser.ended {
                    done = true
                    return nil  // the transfer, if still open, is dropped with the body
                }
                do {
                    pending = try await read()
                    nextPending = 0
                } catch {
                    done = true
                    throw redacted(error)
                }
            }
        }

        private mutating func read() async throws -> [ChatStreamEvent] {
            switch source {
            case .events(var events):
                defer { source = .events(events) }
                guard let event = try await events.next() else { throw endedEarly }
                return try parser.sse(event)
            case .lines(var lines):
                defer { source = .lines(lines) }
                guard let line = try await lines.next() else { throw endedEarly }
                return try parser.ndjson(line)
            }
        }

        private var endedEarly: ProviderFailure {
            ProviderFailure(.transient, "the stream ended before its end marker (\(parser.endMarker))")
        }

        private func redacted(_ error: Error) -> Error {
            switch error {
            case let error as HTTPClientError:
                var failure = ProviderFailure.transport(error)
                failure.message = redactor.redact(failure.message)
                return failure
            case var failure as ProviderFailure:
                failure.message = redactor.redact(failure.message)
                return failure
            default:
                return error
            }
        }
    }
}
