import CCurl
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The system's one HTTP client: libcurl's multi interface, its sockets waited on by one thread of
/// its own; a request is started on the caller's thread when libcurl is free (`CurlLoop`).
///
/// - Connections are kept alive and reused across requests to the same host (libcurl's
///   connection cache in the multi handle); HTTP/2 is used where a TLS server offers it, with
///   requests multiplexed over one connection.
/// - `execute` returns when the response's status and headers have arrived; the body is an
///   `AsyncSequence` of chunks read as the server sends them (streams: SSE, NDJSON), with
///   backpressure: a consumer that stops reading pauses the transfer once 1 MiB is buffered.
/// - Cancelling the calling task, or dropping / abandoning the body, aborts the transfer.
/// - Time limits per request: connect, total, and a low-speed limit that catches servers that
///   hang or drip.
///
/// Thread-safe; one instance per process is enough (it holds the connection cache).
public final class HTTPClient: Sendable {
    /// Settings of a client.
    public struct Configuration: Sendable {
        /// Connections kept open for reuse, in all.
        public var maximumIdleConnections = 64
        /// Connections at once to one host (0: no limit; HTTP/2 multiplexes over fewer).
        public var maximumConnectionsPerHost = 0
        /// The body buffered per transfer before the transfer pauses for its reader.
        public var bufferedBodyBytes = 1 << 20
        /// The `User-Agent` sent unless a request sets one.
        public var userAgent = "kb-http-client/1 (libcurl)"
        /// A PEM file of certificate authorities to trust instead of the system's (a company's
        /// TLS-inspecting proxy, a test server's own); nil: the system's.
        public var caBundlePath: String?

        /// Default settings.
        public init() {}
    }

    let loop: CurlLoop

    /// Starts a client (and its thread).
    public init(configuration: Configuration = Configuration()) {
        loop = CurlLoop(configuration: configuration)
    }

    deinit { loop.shutdown() }

    /// libcurl's version string (`libcurl/7.88.1 OpenSSL/3.0 ... nghttp2/1.52`).
    public static var libcurlVersion: String { String(cString: curl_version()) }

    /// Sends `request` and returns when the response head has arrived; read `body` for the rest.
    /// Throws `HTTPClientError` when no response came (the server's error statuses are answers).
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = try Transfer(request: request, loop: loop)
        let head = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponseHead, Error>) in
                transfer.awaitHead(continuation)
                loop.submit(transfer)
            }
        } onCancel: {
            loop.cancel(transfer, HTTPClientError(.cancelled, "the request was cancelled"))
        }
        return HTTPResponse(head: head, body: HTTPBody(transfer: transfer))
    }

    /// Sends `request` and reads the whole body (at most `maximumBodyBytes`, else `tooLarge`).
    /// The caller is resumed once, when the transfer has ended (one thread switch, not one per
    /// chunk).
    public func fetch(_ request: HTTPRequest, maximumBodyBytes: Int = 64 << 20) async throws -> (head: HTTPResponseHead, body: [UInt8]) {
        let transfer = try Transfer(request: request, loop: loop)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(head: HTTPResponseHead, body: [UInt8]), Error>) in
                transfer.awaitWhole(continuation, limit: maximumBodyBytes)
                loop.submit(transfer)
            }
        } onCancel: {
            loop.cancel(transfer, HTTPClientError(.cancelled, "the request was cancelled"))
        }
    }

    /// Aborts every transfer (`shutDown`) and stops the client's thread. Later requests fail.
    public func shutdown() { loop.shutdown() }
}

/// A response: its head, and its body still to be read.
public struct HTTPResponse: Sendable {
    /// Status and headers.
    public let head: HTTPResponseHead
    /// The body, as chunks in arrival order.
    public let body: HTTPBody
}

/// A response body: chunks of bytes as they arrive. Read it once; dropping it unread (or
/// cancelling the reading task) aborts the transfer.
public final class HTTPBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let transfer: Transfer

    init(transfer: Transfer) { self.transfer = transfer }

    deinit { transfer.abandon() }

    /// Reads the rest of the body; throws `tooLarge` past `maximum` bytes (and aborts).
    public func collect(upTo maximum: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in self {
            guard bytes.count + chunk.count <= maximum else {
                transfer.abandon()
                throw HTTPClientError(.tooLarge, "the response body is larger than \(maximum) bytes")
            }
            bytes += chunk
        }
        return bytes
    }

    public func makeAsyncIterator() -> Iterator { Iterator(body: self) }

    /// Reads chunks (and keeps the body, hence the transfer, alive while it reads).
    public struct Iterator: AsyncIteratorProtocol {
        let body: HTTPBody

        public mutating func next() async throws -> [UInt8]? {
            try await body.transfer.nextChunk()
        }
    }
}

// MARK: - One transfer

/// An easy handle and everything it needs, shared by the loop (whichever thread drives libcurl) and the
/// reader of its response.
final class Transfer: @unchecked Sendable {
    let easy: UnsafeMutableRawPointer
    let loop: CurlLoop
    private let headerList: UnsafeMutablePointer<curl_slist>?
    private let requestBody: UnsafeMutableRawBufferPointer?
    let errorBuffer: UnsafeMutablePointer<CChar>

    // Touched only by the holder of the loop's driver lock (in libcurl's callbacks).
    var receivingStatus = 0
    var receivingVersion = ""
    var receivingHeaders: [(name: String, value: String)] = []
    var headSent = false

    private struct State {
        var headContinuation: CheckedContinuation<HTTPResponseHead, Error>?
        var chunks: [[UInt8]] = []
        var firstChunk = 0
        var buffered = 0
        var paused = false
        var end: Result<Void, HTTPClientError>?
        var reader: CheckedContinuation<[UInt8]?, Error>?
        /// `fetch`: resumed once with head and body when the transfer ends.
        var whole: CheckedContinuation<(head: HTTPResponseHead, body: [UInt8]), Error>?
        var wholeLimit = 0
        /// Set once the transfer was cancelled or abandoned before it ended.
        var abort: HTTPClientError?
    }
    private let state = Mutex(State())
    private let bufferLimit: Int
    /// The event loop the request was made on, if any: its waiting task is resumed there, so
    /// the answer is written from the loop that owns the caller's connection (one thread switch
    /// from libcurl's thread, not two: Swift concurrency would otherwise resume it on any loop).
    private let origin: (any EventLoop)? = MultiThreadedEventLoopGroup.currentEventLoop

    init(request: HTTPRequest, loop: CurlLoop) throws {
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            throw HTTPClientError(.invalidRequest, "only http:// and https:// URLs are supported")
        }
        guard let easy = curl_easy_init() else { throw HTTPClientError(.other, "libcurl could not make a transfer") }
        self.easy = easy
        self.loop = loop
        bufferLimit = loop.configuration.bufferedBodyBytes
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        var list: UnsafeMutablePointer<curl_slist>?
        var hasUserAgent = false
        for (name, value) in request.headers {
            // Bytes, not Characters: "\r\n" is one Character and equals neither "\r" nor "\n".
            guard !name.isEmpty, !name.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == UInt8(ascii: ":") || $0 == 0 }),
                  !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                curl_slist_free_all(list)
                curl_easy_cleanup(easy)
                errorBuffer.deallocate()
                throw HTTPClientError(.invalidRequest, "header \(name.debugDescription) has a line break or colon in its name or value")
            }
            if name.isHeaderName("User-Agent") { hasUserAgent = true }
            list = curl_slist_append(list, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // No `Expect: 100-continue` round trip for larger bodies.
        list = curl_slist_append(list, "Expect:")
        if !hasUserAgent { list = curl_slist_append(list, "User-Agent: \(loop.configuration.userAgent)") }
        headerList = list

        if let body = request.body {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 1)
            buffer.copyBytes(from: body)
            requestBody = buffer
        } else {
            requestBody = nil
        }

        kb_curl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        kb_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        kb_curl_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        kb_curl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        kb_curl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS)
        // Over TLS, wait for a connection being set up to say whether it multiplexes (HTTP/2)
        // rather than open another. Never over plain HTTP (HTTP/1.1 only): there libcurl would
        // park the request until the busy connection's first answer — behind a slow generation,
        // past the request's own time limit, which libcurl does not check while it waits.
        if request.url.hasPrefix("https://") { kb_curl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1) }
        // Behind an https_proxy, the proxy's "200 Connection established" is not the answer.
        kb_curl_easy_setopt_long(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        kb_curl_easy_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "")
        kb_curl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        kb_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        if let bundle = loop.configuration.caBundlePath { kb_curl_easy_setopt_string(easy, CURLOPT_CAINFO, bundle) }
        kb_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(request.timeouts.connect.milliseconds))
        kb_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(request.timeouts.total.milliseconds))
        if request.timeouts.lowSpeedBytesPerSecond > 0, request.timeouts.lowSpeedTime > .zero {
            kb_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, request.timeouts.lowSpeedBytesPerSecond)
            kb_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.timeouts.lowSpeedTime.milliseconds / 1000)))
        }
        let method = request.method.uppercased()
        if let requestBody {
            kb_curl_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body?.count ?? 0))
            kb_curl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, requestBody.baseAddress)
            if method != "POST" { kb_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) }
        } else if method == "HEAD" {
            kb_curl_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
        } else if method != "GET" {
            kb_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }
        kb_curl_easy_setopt_callback(easy, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            transfer.receivedHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
            return length
        }
        kb_curl_easy_setopt_callback(easy, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            return transfer.received(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
        }
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        requestBody?.deallocate()
        errorBuffer.deallocate()
    }

    /// The context pointer handed to libcurl's callbacks (retained while the loop drives it).
    func attach() {
        let context = Unmanaged.passRetained(self).toOpaque()
        kb_curl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        kb_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
    }

    /// Releases the retain taken by `attach`.
    func detach() {
        Unmanaged.passUnretained(self).release()
    }

    // MARK: Loop side

    private func receivedHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        var end = bytes.count
        while end > 0, bytes[end - 1] == 10 || bytes[end - 1] == 13 { end -= 1 }
        let line = String(decoding: bytes[..<end], as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A status line starts a response (an interim 1xx one is followed by the real one).
            let parts = line.split(separator: " ", maxSplits: 2)
            receivingVersion = parts.first.map(String.init) ?? "HTTP/1.1"
            receivingStatus = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            receivingHeaders = []
        } else if line.isEmpty {
            if receivingStatus >= 200 { sendHead() }
        } else if let colon = line.utf8.firstIndex(of: UInt8(ascii: ":")) {
            let name = String(line[..<colon])
            var value = line.utf8[line.utf8.index(after: colon)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            receivingHeaders.append((name, String(Substring(value))))
        }
    }

    /// Hands the head to `execute` (once).
    func sendHead() {
        guard !headSent else { return }
        headSent = true
        let head = receivedHead()
        let continuation = state.withLock { state in
            defer { state.headContinuation = nil }
            return state.headContinuation
        }
        if let continuation { deliver { continuation.resume(returning: head) } }
    }

    /// The head received (under the driver lock).
    private func receivedHead() -> HTTPResponseHead {
        if receivingStatus == 0 {
            var code = 0
            kb_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            receivingStatus = code
        }
        return HTTPResponseHead(status: receivingStatus, version: receivingVersion.isEmpty ? "HTTP/1.1" : receivingVersion, headers: receivingHeaders)
    }

    /// Body bytes from libcurl; false aborts the transfer (its reader is gone).
    private func received(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !headSent { sendHead() }
        let chunk = [UInt8](bytes)
        let collected: Bool? = state.withLock { state in
            guard state.whole != nil else { return nil }
            guard state.abort == nil else { return false }
            guard state.buffered + chunk.count <= state.wholeLimit else {
                state.abort = HTTPClientError(.tooLarge, "the response body is larger than \(state.wholeLimit) bytes")
                return false
            }
            state.chunks.append(chunk)
            state.buffered += chunk.count
            return true
        }
        if let collected { return collected }
        var pause = false
        let reader: CheckedContinuation<[UInt8]?, Error>?? = state.withLock { state in
            if state.abort != nil { return nil }
            if let reader = state.reader {
                state.reader = nil
                return .some(reader)
            }
            state.chunks.append(chunk)
            state.buffered += chunk.count
            if state.buffered >= bufferLimit, !state.paused {
                state.paused = true
                pause = true
            }
            return .some(nil)
        }
        guard let reader else { return false }
        if let reader { deliver { reader.resume(returning: chunk) } }
        if pause { curl_easy_pause(easy, 1 /* CURLPAUSE_RECV */) }
        return true
    }

    /// The transfer ended (under the driver lock): with success, or a failure.
    func finish(_ result: Result<Void, HTTPClientError>) {
        if case .success = result, !headSent { sendHead() }
        let whole: (CheckedContinuation<(head: HTTPResponseHead, body: [UInt8]), Error>, Result<[UInt8], HTTPClientError>)? = state.withLock { state in
            guard let whole = state.whole else { return nil }
            state.whole = nil
            let outcome: Result<Void, HTTPClientError> = state.abort.map { .failure($0) } ?? result
            if state.end == nil { state.end = outcome }
            let chunks = state.chunks
            state.chunks = []
            return (whole, outcome.map { chunks.count == 1 ? chunks[0] : Array(chunks.joined()) })
        }
        if let (continuation, outcome) = whole {
            switch outcome {
            case .success(let body) where receivingStatus > 0:
                let head = receivedHead()
                deliver { continuation.resume(returning: (head, body)) }
            case .success: deliver { continuation.resume(throwing: HTTPClientError(.connectionLost, "the transfer ended without a response")) }
            case .failure(let error): deliver { continuation.resume(throwing: error) }
            }
            return
        }
        let (head, reader): (CheckedContinuation<HTTPResponseHead, Error>?, CheckedContinuation<[UInt8]?, Error>?) = state.withLock { state in
            let outcome: Result<Void, HTTPClientError> = state.abort.map { .failure($0) } ?? result
            if state.end == nil { state.end = outcome }
            let head = state.headContinuation
            state.headContinuation = nil
            var reader: CheckedContinuation<[UInt8]?, Error>?
            if state.firstChunk == state.chunks.count {
                reader = state.reader
                state.reader = nil
            }
            return (head, reader)
        }
        let outcome = state.withLock { $0.end! }
        guard head != nil || reader != nil else { return }
        deliver {
            switch outcome {
            case .success:
                head?.resume(throwing: HTTPClientError(.connectionLost, "the transfer ended without a response"))
                reader?.resume(returning: nil)
            case .failure(let error):
                head?.resume(throwing: error)
                reader?.resume(throwing: error)
            }
        }
    }

    /// Runs `resume` on the event loop the request came from (at once when there is none, or
    /// when already on it).
    private func deliver(_ resume: @escaping @Sendable () -> Void) {
        if let origin, !origin.inEventLoop {
            origin.execute(resume)
        } else {
            resume()
        }
    }

    /// Whether the reader cancelled or abandoned the transfer.
    var abortReason: HTTPClientError? { state.withLock { $0.abort } }

    // MARK: Caller side

    func awaitHead(_ continuation: CheckedContinuation<HTTPResponseHead, Error>) {
        state.withLock { $0.headContinuation = continuation }
    }

    func awaitWhole(_ continuation: CheckedContinuation<(head: HTTPResponseHead, body: [UInt8]), Error>, limit: Int) {
        state.withLock { state in
            state.whole = continuation
            state.wholeLimit = limit
        }
    }

    /// Marks the transfer aborted; the loop removes it. Returns false when it had ended already.
    @discardableResult
    func markAborted(_ error: HTTPClientError) -> Bool {
        state.withLock { state in
            guard state.end == nil, state.abort == nil else { return false }
            state.abort = error
            return true
        }
    }

    /// The reader is gone: abort the transfer if it still runs.
    func abandon() {
        loop.cancel(self, HTTPClientError(.cancelled, "the response body was abandoned"))
    }

    func nextChunk() async throws -> [UInt8]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8]?, Error>) in
                enum Step { case chunk([UInt8], resume: Bool), end(Result<Void, HTTPClientError>), wait }
                let step: Step = state.withLock { state in
                    if state.firstChunk < state.chunks.count {
                        let chunk = state.chunks[state.firstChunk]
                        state.firstChunk += 1
                        state.buffered -= chunk.count
                        if state.firstChunk == state.chunks.count {
                            state.chunks.removeAll(keepingCapacity: true)
                            state.firstChunk = 0
                        }
                        var resume = false
                        if state.paused, state.buffered <= bufferLimit / 2, state.end == nil {
                            state.paused = false
                            resume = true
                        }
                        return .chunk(chunk, resume: resume)
                    }
                    if let end = state.end { return .end(end) }
                    if let abort = state.abort { return .end(.failure(abort)) }
                    guard state.reader == nil else {
                        return .end(.failure(HTTPClientError(.invalidRequest, "the response body is already being read by another reader")))
                    }
                    state.reader = continuation
                    return .wait
                }
                switch step {
                case .chunk(let chunk, let resume):
                    if resume { loop.resume(self) }
                    continuation.resume(returning: chunk)
                case .end(.success):
                    continuation.resume(returning: nil)
                case .end(.failure(let error)):
                    continuation.resume(throwing: error)
                case .wait:
                    break
                }
            }
        } onCancel: {
            loop.cancel(self, HTTPClientError(.cancelled, "reading the response was cancelled"))
        }
    }
}
