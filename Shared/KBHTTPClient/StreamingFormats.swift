/// One event of a `text/event-stream` (Server-Sent Events, as the WHATWG HTML standard parses them).
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` field (`message` when the server named none).
    public var event: String
    /// The `data:` lines joined with `\n`.
    public var data: String
    /// The last `id:` seen (it carries over to later events).
    public var id: String
    /// The `retry:` field in milliseconds, when this event had one.
    public var retry: Int?

    /// Creates an event.
    public init(event: String = "message", data: String, id: String = "", retry: Int? = nil) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
    }
}

/// A line longer than the limit (a stream that never ends a line must not grow memory).
public struct StreamLineTooLong: Error, CustomStringConvertible, Sendable {
    /// The limit that was passed.
    public let limit: Int
    public var description: String { "a line of the stream is longer than \(limit) bytes" }
}

/// Splits bytes into lines at `\n`, `\r\n` or (with `acceptsLoneCR`) `\r`, bounded in length.
struct LineSplitter {
    let limit: Int
    let acceptsLoneCR: Bool
    private var line: [UInt8] = []
    private var lastWasCR = false

    init(limit: Int, acceptsLoneCR: Bool) {
        self.limit = limit
        self.acceptsLoneCR = acceptsLoneCR
    }

    /// Feeds bytes; returns the lines they complete (without their terminators).
    mutating func feed(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if lastWasCR, acceptsLoneCR {
                    lastWasCR = false
                    continue  // the \n of a \r\n already ended the line
                }
                if !acceptsLoneCR, line.last == UInt8(ascii: "\r") { line.removeLast() }
                lines.append(line)
                line.removeAll(keepingCapacity: true)
            } else if byte == UInt8(ascii: "\r"), acceptsLoneCR {
                lines.append(line)
                line.removeAll(keepingCapacity: true)
                lastWasCR = true
                continue
            } else {
                guard line.count < limit else { throw StreamLineTooLong(limit: limit) }
                line.append(byte)
            }
            lastWasCR = false
        }
        return lines
    }

    /// What is left when the stream ends (a last line without its terminator).
    mutating func finish() -> [UInt8]? {
        defer { line = [] }
        if !acceptsLoneCR, line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line.isEmpty ? nil : line
    }
}

/// The Server-Sent Events parser: fields into events, dispatched at blank lines.
struct ServerSentEventParser {
    private var splitter: LineSplitter
    private var data: [String] = []
    private var dataBytes = 0
    private let eventLimit: Int
    private var hasData = false
    private var event = ""
    private var lastID = ""
    private var retry: Int?
    private var sawFirstLine = false

    init(lineLimit: Int) {
        splitter = LineSplitter(limit: lineLimit, acceptsLoneCR: true)
        eventLimit = lineLimit
    }

    mutating func feed(_ bytes: [UInt8]) throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for line in try splitter.feed(bytes) {
            if let event = process(line) { events.append(event) }
            // An event's data lines together are bounded like one line.
            guard dataBytes <= eventLimit else { throw StreamLineTooLong(limit: eventLimit) }
        }
        return events
    }

    /// At the end of the stream an event not closed by a blank line is discarded (as browsers do).
    mutating func finish() {
        _ = splitter.finish()
    }

    private mutating func process(_ rawLine: [UInt8]) -> ServerSentEvent? {
        var line = rawLine[...]
        if !sawFirstLine {
            sawFirstLine = true
            if line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }  // a byte-order mark
        }
        if line.isEmpty {
            defer {
                data = []
                dataBytes = 0
                hasData = false
                event = ""
                retry = nil
            }
            guard hasData else { return nil }
            return ServerSentEvent(event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n"), id: lastID, retry: retry)
        }
        if line.first == UInt8(ascii: ":") { return nil }  // a comment (keep-alive)
        let name: String
        var value: ArraySlice<UInt8> = line
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            name = String(decoding: line[..<colon], as: UTF8.self)
            value = line[line.index(after: colon)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            name = String(decoding: line, as: UTF8.self)
            value = line[line.endIndex...]
        }
        let text = String(decoding: value, as: UTF8.self)
        switch name {
        case "data":
            data.append(text)
            dataBytes += text.utf8.count + 1
            hasData = true
        case "event": event = text
        case "id": if !text.contains("\0") { lastID = text }
        case "retry": if let milliseconds = Int(text), milliseconds >= 0 { retry = milliseconds }
        default: break
        }
        return nil
    }
}

/// Server-Sent Events read from a byte stream.
public struct AsyncServerSentEvents<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == [UInt8] {
    public typealias Element = ServerSentEvent
    let base: Base
    let lineLimit: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), parser: ServerSentEventParser(lineLimit: lineLimit))
    }

    /// Yields events as their closing blank line arrives.
    public struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var parser: ServerSentEventParser
        var pending: [ServerSentEvent] = []
        var ended = false

        public mutating func next() async throws -> ServerSentEvent? {
            while pending.isEmpty {
                if ended { return nil }
                guard let chunk = try await base.next() else {
                    parser.finish()
                    ended = true
                    return nil
                }
                pending = try parser.feed(chunk)
            }
            return pending.removeFirst()
        }
    }
}

/// Lines of a byte stream (NDJSON): split at `\n` (a `\r` before it dropped), empty lines
/// skipped, a last line without `\n` included.
public struct AsyncByteLines<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == [UInt8] {
    public typealias Element = [UInt8]
    let base: Base
    let lineLimit: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), splitter: LineSplitter(limit: lineLimit, acceptsLoneCR: false))
    }

    /// Yields each non-empty line.
    public struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var splitter: LineSplitter
        var pending: [[UInt8]] = []
        var ended = false

        public mutating func next() async throws -> [UInt8]? {
            while true {
                while let line = pending.first {
                    pending.removeFirst()
                    if !line.isEmpty { return line }
                }
                if ended { return nil }
                guard let chunk = try await base.next() else {
                    ended = true
                    if let last = splitter.finish() { return last }
                    return nil
                }
                pending = try splitter.feed(chunk)
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element == [UInt8] {
    /// The stream read as Server-Sent Events; a line over `lineLimit` bytes throws `StreamLineTooLong`.
    public func serverSentEvents(lineLimit: Int = 16 << 20) -> AsyncServerSentEvents<Self> {
        AsyncServerSentEvents(base: self, lineLimit: lineLimit)
    }

    /// The stream split into non-empty lines (NDJSON); a line over `lineLimit` bytes throws `StreamLineTooLong`.
    public func lines(lineLimit: Int = 16 << 20) -> AsyncByteLines<Self> {
        AsyncByteLines(base: self, lineLimit: lineLimit)
    }
}
