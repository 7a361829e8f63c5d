import Foundation

/// One exchange of a coding session: what the developer asked and what the assistant answered,
/// with where it came from. The unit the learner extracts knowledge from.
///
/// Tool noise is summarised, not kept: each tool call becomes one line in `tools` (its name and
/// the start of its main argument, e.g. `Bash: swift build`), tool results are dropped except
/// that a failed one adds `(failed: first line of the error)` to its call's line, and the
/// assistant's private reasoning blocks are dropped. Long texts are cut (`Limits`) with a marker,
/// so one pasted log cannot make an extraction call unbounded.
public struct SessionExchange: Sendable, Equatable, Codable {
    /// The developer's words (empty for a transcript without speaker marks).
    public var prompt: String
    /// The assistant's words, in order.
    public var answer: String
    /// One line per tool call, in order (at most `Limits.toolLines`).
    public var tools: [String]
    /// Where the exchange is in its file and session.
    public var provenance: SessionProvenance

    public init(prompt: String, answer: String, tools: [String] = [], provenance: SessionProvenance) {
        self.prompt = prompt
        self.answer = answer
        self.tools = tools
        self.provenance = provenance
    }

    /// A stable identity: the session, and the exchange's place in its file.
    public var id: String { "\(provenance.sessionID)#\(provenance.firstLine)" }

    /// The exchange as one text for a model: the prompt, the tools used, the answer.
    public var text: String {
        var parts: [String] = []
        if !prompt.isEmpty { parts.append("User: \(prompt)") }
        if !tools.isEmpty { parts.append("Tools used:\n" + tools.map { "- \($0)" }.joined(separator: "\n")) }
        if !answer.isEmpty { parts.append("Assistant: \(answer)") }
        return parts.joined(separator: "\n\n")
    }

    /// The bounds of an exchange's parts.
    public enum Limits {
        /// The longest prompt kept, in characters.
        public static let prompt = 8_000
        /// The longest answer kept, in characters.
        public static let answer = 16_000
        /// Tool lines kept per exchange.
        public static let toolLines = 40
        /// The longest tool line, in characters.
        public static let toolLine = 160

        /// `text` cut to `limit` characters with a marker saying how much was left out.
        public static func cut(_ text: String, _ limit: Int) -> String {
            guard text.count > limit else { return text }
            return String(text.prefix(limit)) + " […\(text.count - limit) more characters left out]"
        }
    }
}

/// Where an exchange came from.
public struct SessionProvenance: Sendable, Equatable, Codable {
    /// The transcript file.
    public var file: String
    /// Its first and last line in the file (1-based, inclusive).
    public var firstLine: Int
    public var lastLine: Int
    /// The session: the log's `sessionId`, the front matter's `session_id`, or the file's name.
    public var sessionID: String
    /// When the exchange started (the prompt's timestamp, else the session's start), in ms since
    /// the epoch; nil when the transcript says nothing.
    public var timeMs: Int64?
    /// The project: the log's `cwd` or the front matter's `project`, when given.
    public var project: String?
    /// The byte offset just after the exchange's last line: where a follower that has learned
    /// this exchange reads on from (with `lastLine + 1`).
    public var endOffset: Int = 0

    public init(file: String, firstLine: Int, lastLine: Int, sessionID: String, timeMs: Int64? = nil, project: String? = nil, endOffset: Int = 0) {
        self.endOffset = endOffset
        self.file = file
        self.firstLine = firstLine
        self.lastLine = lastLine
        self.sessionID = sessionID
        self.timeMs = timeMs
        self.project = project
    }
}

/// The transcript formats read.
public enum SessionFormat: String, Sendable, Codable, CaseIterable {
    /// Claude Code's session logs: JSON lines, one message per line (`type`, `message.content`
    /// as text or content blocks, `timestamp`, `sessionId`, `cwd`).
    case claudeCode = "claude-code"
    /// Live-session-log markdown (`.specstory/history/*.md`): optional YAML front matter
    /// (`project`, `session_id`, `start_time`), exchanges under `## User` / `## Assistant`.
    case markdown
    /// Plain text: speaker lines (`User:` / `Assistant:` and the like), or none (one exchange).
    case plainText = "text"

    /// The format of a file, by its name and first bytes.
    public static func detect(path: String, head: Data) -> SessionFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return .claudeCode }
        let start = String(decoding: head.prefix(4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if start.hasPrefix("{"), let firstLine = start.split(separator: "\n").first,
           (try? JSONSerialization.jsonObject(with: Data(firstLine.utf8))) is [String: Any] {
            return .claudeCode
        }
        if lower.hasSuffix(".md") || lower.hasSuffix(".markdown") { return .markdown }
        return .plainText
    }

    /// Whether a file name is one of the formats (what a folder scan picks up).
    public static func isTranscript(_ path: String) -> Bool {
        let lower = path.lowercased()
        return [".jsonl", ".ndjson", ".md", ".markdown", ".txt"].contains { lower.hasSuffix($0) }
    }
}
