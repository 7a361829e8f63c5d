import Foundation

/// Structured output: the JSON Schema a completion's answer must follow (`json_schema` of
/// `CompletionRequest`, `response_format` of the OpenAI front). Providers are asked to follow it
/// in their own way (`ProviderEndpoint.StructuredOutput`); the gateway checks every answer
/// against it whatever the provider did (`check`).
public struct OutputSchema: Sendable, Equatable {
    /// The name providers see (OpenAI's `json_schema.name`, Anthropic's tool name).
    public let name: String
    /// The schema as the caller wrote it (JSON text of an object): sent to providers as it is,
    /// so the order of its properties (which some providers generate in) is kept.
    public let text: String
    /// The schema, compiled for checking answers.
    public let schema: JSONSchema
    /// `text` without the whitespace between its tokens (key order and string contents kept):
    /// what the completion cache keys on, so a schema re-indented by another client shares
    /// answers, while one with its properties in another order (which providers generate in)
    /// does not.
    public let compactText: String

    /// Why a schema or its name cannot be used; `field` is `json_schema` or `json_schema_name`.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let field: String
        public let message: String
        public var description: String { "\(field): \(message)" }
    }

    /// The most bytes of schema text a request may carry.
    public static let maximumBytes = 64 << 10

    /// Parses and compiles `text` under `name` (empty: `output`).
    public init(text: String, name: String = "") throws {
        let name = name.isEmpty ? "output" : name
        guard name.utf8.count <= 64, name.unicodeScalars.allSatisfy({ ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "_" || $0 == "-" }) else {
            throw Invalid(field: "json_schema_name", message: "may hold only letters, digits, '_' and '-', at most 64 (found \(name.debugDescription))")
        }
        guard text.utf8.count <= Self.maximumBytes else {
            throw Invalid(field: "json_schema", message: "the schema is longer than \(Self.maximumBytes) bytes")
        }
        guard let value = JSONValue.parse(text) else {
            throw Invalid(field: "json_schema", message: "is not JSON text (a JSON Schema object is expected)")
        }
        guard case .object = value else {
            throw Invalid(field: "json_schema", message: "must be a JSON object (a JSON Schema), found \(value.brief)")
        }
        do {
            schema = try JSONSchema(value)
        } catch let invalid as JSONSchema.Invalid {
            throw Invalid(field: "json_schema", message: "the schema cannot be used: \(invalid)")
        }
        self.name = name
        self.text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        compactText = Self.compact(text)
    }

    /// JSON text (already parsed, so well formed) without insignificant whitespace.
    static func compact(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var inString = false, escaped = false
        for byte in text.utf8 {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                continue
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            }
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// An answer checked against the schema: the JSON text (without the markdown code fence a
    /// model may wrap it in) or what is wrong with it.
    public func check(_ content: String) -> Result<String, Mismatch> {
        var text = content.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("```"), text.hasSuffix("```"), text.count >= 6 {
            text = String(text.dropFirst(3).dropLast(3))
            if let newline = text.firstIndex(of: "\n"), text[..<newline].allSatisfy({ $0.isLetter }) { text = String(text[text.index(after: newline)...]) }
            text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let value = JSONValue.parse(text) else {
            return .failure(Mismatch(problem: "the answer is not JSON: \(String(content.prefix(120)).debugDescription)"))
        }
        if let problem = schema.violation(of: value) { return .failure(Mismatch(problem: problem)) }
        return .success(text)
    }

    /// How an answer breaks the schema.
    public struct Mismatch: Error, Sendable, Equatable, CustomStringConvertible {
        public let problem: String
        public var description: String { problem }
    }

    /// What to tell a model that is not given the schema any other way (`prompt` providers).
    var instruction: String {
        "Answer with one JSON value only (no prose, no code fence) that follows this JSON Schema:\n\(text)"
    }
}

/// A structured completion whose answers did not follow the schema: the first answer and its
/// one retry both broke it. The caller sees RPC `ABORTED` with reason `SCHEMA_MISMATCH` (field
/// `json_schema`), never a provider failure's code, and never the half-right answer.
public struct SchemaMismatch: Error, Sendable, CustomStringConvertible {
    /// How the last answer broke the schema.
    public var problem: String
    public var attempts: [Attempt]

    public var description: String {
        "the answers did not follow the schema (after one retry): \(problem)"
            + (attempts.isEmpty ? "" : "; attempts: " + attempts.map { "\($0.provider)/\($0.model): \($0.outcome)" }.joined(separator: "; "))
    }
}
