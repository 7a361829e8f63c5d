import Foundation

/// Reads a transcript's bytes into exchanges, from the start of a file or from where an earlier
/// read stopped, so a follower of a growing file reads each exchange exactly once.
///
/// An exchange starts at a prompt and runs to the next prompt. The last one of the bytes given
/// may still be growing (the assistant is still answering), so it is returned only when `final`
/// is true (a whole file; or a followed file that has been quiet for a while); otherwise
/// `consumedBytes` stops at its start and the next read begins there. A last line without its
/// newline is never read unless `final`.
public enum SessionReader {
    /// What one read found.
    public struct Result: Sendable, Equatable {
        /// The complete exchanges, in order.
        public var exchanges: [SessionExchange]
        /// Where the next read starts: a byte offset into the file, and that byte's line number.
        public var nextOffset: Int
        public var nextLine: Int
        /// Lines that could not be read (JSON lines that are not JSON objects), by line number.
        public var unreadable: [Int]
    }

    /// What a transcript says about its session, from its start (front matter) or its name.
    public struct SessionContext: Sendable, Equatable {
        public var sessionID: String
        public var project: String?
        public var startMs: Int64?
        /// Lines of front matter at the start of the file (skipped by the first read).
        public var headerLines: Int

        public init(sessionID: String, project: String? = nil, startMs: Int64? = nil, headerLines: Int = 0) {
            self.sessionID = sessionID
            self.project = project
            self.startMs = startMs
            self.headerLines = headerLines
        }

        /// The context of `file` from its first bytes: YAML front matter (`session_id`,
        /// `project`, `start_time`) for markdown; otherwise the file's name without extension.
        public static func of(file: String, head: Data, format: SessionFormat) -> SessionContext {
            // Two transcripts of the same name in different folders are different sessions.
            let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent + "-" + pathTag(file)
            var context = SessionContext(sessionID: name)
            guard format != .claudeCode else { return context }
            let lines = String(decoding: head.prefix(16_384), as: UTF8.self).split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            guard lines.first.map({ $0.trimmingCharacters(in: .whitespaces) == "---" }) == true else { return context }
            for (index, line) in lines.enumerated().dropFirst() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed == "---" || trimmed == "..." {
                    context.headerLines = index + 1
                    return context
                }
                guard let colon = trimmed.firstIndex(of: ":") else { continue }
                let key = trimmed[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                var value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first { value = String(value.dropFirst().dropLast()) }
                guard !value.isEmpty else { continue }
                switch key {
                case "session_id", "sessionid", "session": context.sessionID = value
                case "project": context.project = value
                case "start_time", "started", "date": context.startMs = parseTime(value)
                default: break
                }
            }
            return SessionContext(sessionID: name)  // no closing line: not front matter
        }
    }

    /// Reads `data`, the bytes of `file` from byte `offset` (at line `line`, 1-based).
    public static func read(_ data: Data, file: String, format: SessionFormat, context: SessionContext, offset: Int = 0, line: Int = 1, final: Bool) -> Result {
        var builder = ExchangeBuilder(file: file, context: context)
        builder.lineStartOffset = offset
        var position = 0
        var lineNumber = line
        var unreadable: [Int] = []
        let bytes = [UInt8](data)
        while position < bytes.count {
            let end = bytes[position...].firstIndex(of: UInt8(ascii: "\n"))
            if end == nil && !final { break }
            let lineEnd = end ?? bytes.count
            var text = String(decoding: bytes[position..<lineEnd], as: UTF8.self)
            // A log line still being written (no newline yet, not JSON yet) waits for the next
            // read even at the end of a batch.
            if end == nil, format == .claudeCode, !text.trimmingCharacters(in: .whitespaces).isEmpty,
               (try? JSONSerialization.jsonObject(with: Data(text.utf8))) == nil {
                break
            }
            // Windows line ends.
            if text.hasSuffix("\r") { text.removeLast() }
            let next = end.map { $0 + 1 } ?? bytes.count
            if lineNumber > context.headerLines {
                switch format {
                case .claudeCode:
                    if !ClaudeCodeLine.read(text, line: lineNumber, into: &builder) { unreadable.append(lineNumber) }
                case .markdown, .plainText:
                    MarkdownLine.read(text, line: lineNumber, plain: format == .plainText, into: &builder)
                }
            }
            builder.endOfLine(lineNumber, nextOffset: offset + next)
            position = next
            lineNumber += 1
        }
        let (exchanges, resume) = builder.finish(final: final)
        return Result(
            exchanges: exchanges,
            nextOffset: resume?.offset ?? offset + position,
            nextLine: resume?.line ?? lineNumber,
            unreadable: unreadable
        )
    }

    /// Eight hex digits from a path (FNV-1a): a file-named session's id tells same-named files apart.
    static func pathTag(_ path: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in path.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// An ISO 8601 time (with or without fractional seconds; a date alone) in ms since the epoch.
    public static func parseTime(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        // "2025-06-01 10:00:00" (a space instead of T, no zone): UTC.
        if text.count >= 19, text.dropFirst(10).first == " " {
            formatter.formatOptions = [.withInternetDateTime]
            if let date = formatter.date(from: text.prefix(10) + "T" + text.dropFirst(11).prefix(8) + "Z") { return Int64(date.timeIntervalSince1970 * 1000) }
        }
        return nil
    }
}

/// Collects a transcript's parts into exchanges as its lines are read.
struct ExchangeBuilder {
    let file: String
    let context: SessionContext

    struct Open {
        var prompt: [String] = []
        var answer: [String] = []
        var tools: [(id: String?, line: String)] = []
        var firstLine: Int
        var lastLine: Int
        var startOffset: Int
        var endOffset = 0
        var timeMs: Int64?
        var sessionID: String?
        var project: String?
        /// Who is speaking now, for transcripts whose text runs on over lines.
        var speaker: Speaker
        var hasContent: Bool { !prompt.isEmpty || !answer.isEmpty || !tools.isEmpty }
    }

    enum Speaker { case user, assistant }

    var done: [SessionExchange] = []
    var open: Open?
    /// The byte offset (in the file) where the line being read starts.
    var lineStartOffset = 0

    typealias SessionContext = SessionReader.SessionContext

    init(file: String, context: SessionContext) {
        self.file = file
        self.context = context
    }

    /// A new prompt starts a new exchange (closing the open one).
    mutating func prompt(_ text: String, line: Int, timeMs: Int64? = nil, sessionID: String? = nil, project: String? = nil) {
        close()
        open = Open(prompt: text.isEmpty ? [] : [text], firstLine: line, lastLine: line, startOffset: lineStartOffset, timeMs: timeMs, sessionID: sessionID, project: project, speaker: .user)
    }

    /// More of the prompt (a transcript whose prompt runs over several lines).
    mutating func promptText(_ text: String, line: Int) {
        ensureOpen(line: line, speaker: .user)
        open!.prompt.append(text)
        open!.lastLine = line
    }

    mutating func answer(_ text: String, line: Int, sessionID: String? = nil, project: String? = nil) {
        ensureOpen(line: line, speaker: .assistant, sessionID: sessionID, project: project)
        open!.answer.append(text)
        open!.speaker = .assistant
        open!.lastLine = line
    }

    mutating func tool(_ summary: String, id: String?, line: Int) {
        ensureOpen(line: line, speaker: .assistant)
        open!.tools.append((id, summary))
        open!.lastLine = line
    }

    mutating func toolFailed(id: String, reason: String, line: Int) {
        guard var current = open, let index = current.tools.lastIndex(where: { $0.id == id }) else { return }
        current.tools[index].line += " (failed: \(SessionExchange.Limits.cut(reason, 120)))"
        current.lastLine = line
        open = current
    }

    mutating func ensureOpen(line: Int, speaker: Speaker, sessionID: String? = nil, project: String? = nil) {
        if open == nil {
            open = Open(firstLine: line, lastLine: line, startOffset: lineStartOffset, sessionID: sessionID, project: project, speaker: speaker)
        }
    }

    var speaker: Speaker? { open?.speaker }

    mutating func setSpeaker(_ speaker: Speaker, line: Int) {
        if speaker == .user {
            prompt("", line: line)
        } else {
            ensureOpen(line: line, speaker: .assistant)
            open!.speaker = .assistant
            open!.lastLine = line
        }
    }

    mutating func endOfLine(_ line: Int, nextOffset: Int) {
        lineStartOffset = nextOffset
        if open?.lastLine == line { open!.endOffset = nextOffset }
    }

    mutating func close() {
        guard let current = open else { return }
        open = nil
        guard current.hasContent else { return }
        let limits = SessionExchange.Limits.self
        let prompt = current.prompt.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        let answer = current.answer.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        var tools = current.tools.prefix(limits.toolLines).map { limits.cut($0.line, limits.toolLine) }
        if current.tools.count > limits.toolLines { tools.append("… \(current.tools.count - limits.toolLines) more tool calls") }
        guard !prompt.isEmpty || !answer.isEmpty || !tools.isEmpty else { return }
        done.append(SessionExchange(
            prompt: limits.cut(prompt, limits.prompt),
            answer: limits.cut(answer, limits.answer),
            tools: tools,
            provenance: SessionProvenance(
                file: file, firstLine: current.firstLine, lastLine: current.lastLine,
                sessionID: current.sessionID ?? context.sessionID,
                timeMs: current.timeMs ?? context.startMs,
                project: current.project ?? context.project,
                endOffset: current.endOffset
            )
        ))
    }

    /// The complete exchanges, and where to resume when the last one is still open.
    mutating func finish(final: Bool) -> ([SessionExchange], (offset: Int, line: Int)?) {
        if final {
            close()
            return (done, nil)
        }
        // Still open (even a speaker mark alone): read again from its start next time.
        guard let current = open else { return (done, nil) }
        return (done, (current.startOffset, current.firstLine))
    }
}

/// One line of a Claude Code session log.
enum ClaudeCodeLine {
    /// Reads one JSON line; false when it is not a JSON object.
    static func read(_ text: String, line: Int, into builder: inout ExchangeBuilder) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return true }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else { return false }
        // Sub-agent conversations (Task tool) and injected meta messages are not the developer's.
        if object["isSidechain"] as? Bool == true || object["isMeta"] as? Bool == true { return true }
        let sessionID = object["sessionId"] as? String
        let project = object["cwd"] as? String
        let timeMs = (object["timestamp"] as? String).flatMap(SessionReader.parseTime)
        let message = object["message"] as? [String: Any]
        let content = message?["content"]
        switch object["type"] as? String {
        case "user":
            if let text = content as? String {
                if !isCommandNoise(text) { builder.prompt(text, line: line, timeMs: timeMs, sessionID: sessionID, project: project) }
                return true
            }
            var words: [String] = []
            for block in content as? [[String: Any]] ?? [] {
                switch block["type"] as? String {
                case "text": if let text = block["text"] as? String, !isCommandNoise(text) { words.append(text) }
                case "image": words.append("[image]")
                case "tool_result":
                    if block["is_error"] as? Bool == true, let id = block["tool_use_id"] as? String {
                        builder.toolFailed(id: id, reason: firstLine(of: block["content"]), line: line)
                    }
                default: break
                }
            }
            let prompt = words.joined(separator: "\n")
            if !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, prompt != "[image]" || words.count > 1 {
                builder.prompt(prompt, line: line, timeMs: timeMs, sessionID: sessionID, project: project)
            }
        case "assistant":
            if let text = content as? String {
                builder.answer(text, line: line, sessionID: sessionID, project: project)
                return true
            }
            for block in content as? [[String: Any]] ?? [] {
                switch block["type"] as? String {
                case "text": if let text = block["text"] as? String { builder.answer(text, line: line, sessionID: sessionID, project: project) }
                case "tool_use": builder.tool(toolSummary(block), id: block["id"] as? String, line: line)
                default: break  // thinking, redacted thinking
                }
            }
        default:
            break  // summary, system, file snapshots
        }
        return true
    }

    /// Slash-command bookkeeping Claude Code writes as user messages.
    static func isCommandNoise(_ text: String) -> Bool {
        let start = text.drop { $0.isWhitespace }
        return start.hasPrefix("<command-") || start.hasPrefix("<local-command-") || start.hasPrefix("[Request interrupted")
    }

    /// `Name: main argument` of a tool call.
    static func toolSummary(_ block: [String: Any]) -> String {
        let name = block["name"] as? String ?? "tool"
        let input = block["input"] as? [String: Any] ?? [:]
        for key in ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"] {
            if let value = input[key] as? String, !value.isEmpty {
                return "\(name): \(value.split(separator: "\n").first.map(String.init) ?? value)"
            }
        }
        if let data = try? JSONSerialization.data(withJSONObject: input, options: [.sortedKeys]), input.count > 0 {
            return "\(name): \(String(decoding: data, as: UTF8.self))"
        }
        return name
    }

    static func firstLine(of content: Any?) -> String {
        if let text = content as? String { return text.split(separator: "\n").first.map(String.init) ?? "" }
        for block in content as? [[String: Any]] ?? [] {
            if let text = block["text"] as? String { return text.split(separator: "\n").first.map(String.init) ?? "" }
        }
        return "error"
    }
}

/// One line of a markdown or plain-text transcript.
enum MarkdownLine {
    static let userWords: Set<String> = ["user", "human", "you", "me", "developer", "question", "q"]
    static let assistantWords: Set<String> = ["assistant", "ai", "claude", "model", "agent", "copilot", "chatgpt", "gpt", "answer", "a", "cursor"]

    static func read(_ text: String, line: Int, plain: Bool, into builder: inout ExchangeBuilder) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let (speaker, rest) = mark(trimmed, plain: plain) {
            builder.setSpeaker(speaker, line: line)
            if !rest.isEmpty { add(rest, line: line, into: &builder) }
            return
        }
        // Separators between exchanges (`---`) are not text.
        if trimmed == "---" || trimmed == "***" { return }
        // Before the first speaker: blank lines, and in markdown a title or preamble.
        if builder.open == nil && (trimmed.isEmpty || !plain) { return }
        add(text, line: line, into: &builder)
    }

    static func add(_ text: String, line: Int, into builder: inout ExchangeBuilder) {
        if builder.speaker == .user { builder.promptText(text, line: line) } else { builder.answer(text, line: line) }
    }

    /// A speaker mark: a heading (`## User`, `### Assistant (10:02)`), a live-session log's
    /// `_**User**_`, or — in plain text — a `User:` / `Assistant:` line prefix.
    static func mark(_ line: String, plain: Bool) -> (ExchangeBuilder.Speaker, String)? {
        if line.hasPrefix("#") {
            let title = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)
            let word = title.prefix { $0.isLetter }.lowercased()
            let after = title.dropFirst(word.count).first
            guard after == nil || after == " " || after == "(" || after == ":" else { return nil }
            if userWords.contains(word) && word.count > 1 { return (.user, "") }
            if assistantWords.contains(word) && word.count > 1 { return (.assistant, "") }
            return nil
        }
        if line.hasPrefix("_**") {
            let word = line.dropFirst(3).prefix { $0.isLetter }.lowercased()
            if userWords.contains(word) { return (.user, "") }
            if assistantWords.contains(word) { return (.assistant, "") }
            return nil
        }
        guard plain else { return nil }
        let unbolded = line.hasPrefix("**") ? String(line.dropFirst(2)) : line
        let word = unbolded.prefix { $0.isLetter }
        guard !word.isEmpty, word.count <= 9 else { return nil }
        var rest = unbolded.dropFirst(word.count)
        if rest.hasPrefix("**") { rest = rest.dropFirst(2) }
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst()
        if rest.hasPrefix("**") { rest = rest.dropFirst(2) }
        let text = rest.trimmingCharacters(in: .whitespaces)
        let lower = word.lowercased()
        if userWords.contains(lower) { return (.user, text) }
        if assistantWords.contains(lower) { return (.assistant, text) }
        return nil
    }
}
