import Foundation
import KBKnowledge

/// The kinds of knowledge the learner extracts: the original system's taxonomy.
public enum KnowledgeKind: String, CaseIterable, Sendable, Codable {
    case codingPattern = "coding_pattern"
    case architecturalDecision = "architectural_decision"
    case bugSolution = "bug_solution"
    case implementationStrategy = "implementation_strategy"
    case toolUsage = "tool_usage"
    case optimization
    case integrationPattern = "integration_pattern"
    case refactoring
    case testingStrategy = "testing_strategy"
    case deploymentApproach = "deployment_approach"
}

/// One piece of knowledge extracted from an exchange, as the model returns it (and as the
/// extraction schema describes it).
public struct KnowledgeItem: Sendable, Equatable, Codable {
    /// A short, reusable name ("Exponential backoff with jitter").
    public var name: String
    public var type: KnowledgeKind
    /// What was learned, as self-contained sentences.
    public var observations: [String]
    /// How sure the model is that this is real, reusable knowledge: 0–1.
    public var confidence: Double
    /// How much it matters: 1–10.
    public var significance: Int
    /// Links to other items of the same answer or to entities already known, by name.
    public var relations: [ItemRelation]

    public struct ItemRelation: Sendable, Equatable, Codable {
        public var to: String
        public var relationType: String

        public init(to: String, relationType: String) {
            self.to = to
            self.relationType = relationType
        }
    }

    public init(name: String, type: KnowledgeKind, observations: [String], confidence: Double, significance: Int, relations: [ItemRelation] = []) {
        self.name = name
        self.type = type
        self.observations = observations
        self.confidence = confidence
        self.significance = significance
        self.relations = relations
    }

    /// The text embedded to find the same knowledge already known (as the indexer embeds
    /// entities: name, type, observations).
    public var embeddingText: String {
        ([name, type.rawValue] + observations).joined(separator: "\n")
    }

    /// `text` as an entity name the graph accepts: letters, digits, space, `_ - .`; anything else
    /// becomes a space; at most 200 characters.
    public static func entityName(_ text: String) -> String {
        var name = ""
        var lastWasSpace = true
        for character in text {
            if character.isLetter || character.isNumber || character == "_" || character == "-" || character == "." {
                name.append(character)
                lastWasSpace = false
            } else if !lastWasSpace {
                name.append(" ")
                lastWasSpace = true
            }
        }
        return String(name.trimmingCharacters(in: .whitespaces).prefix(KnowledgeRules.maxNameLength)).trimmingCharacters(in: .whitespaces)
    }
}

/// The JSON the extraction call asks for, its schema, and the check of what comes back.
public enum ExtractionFormat {
    /// The schema of the answer: `{"items": [KnowledgeItem…]}`.
    public static let schema: String = {
        let kinds = KnowledgeKind.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        let intents = SessionIntent.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        return """
        {"type":"object","additionalProperties":false,"required":["intent","intentConfidence","goal","items"],"properties":{\
        "intent":{"type":"string","enum":[\(intents)]},"intentConfidence":{"type":"number","minimum":0,"maximum":1},\
        "goal":{"type":"string","maxLength":200},"items":{"type":"array","maxItems":6,"items":{\
        "type":"object","additionalProperties":false,"required":["name","type","observations","confidence","significance","relations"],\
        "properties":{"name":{"type":"string","minLength":3,"maxLength":120},"type":{"type":"string","enum":[\(kinds)]},\
        "observations":{"type":"array","minItems":1,"maxItems":4,"items":{"type":"string","minLength":10,"maxLength":400}},\
        "confidence":{"type":"number","minimum":0,"maximum":1},"significance":{"type":"integer","minimum":1,"maximum":10},\
        "relations":{"type":"array","maxItems":6,"items":{"type":"object","additionalProperties":false,"required":["to","relationType"],\
        "properties":{"to":{"type":"string","minLength":1,"maxLength":120},"relationType":{"type":"string","minLength":1,"maxLength":60}}}}}}}}}
        """
    }()

    /// The instructions sent before the exchange.
    public static let instructions = """
    You extract reusable software-engineering knowledge from one exchange of a coding session \
    between a developer and an AI assistant. Return only JSON: {"items": [...]}, each item with \
    "name" (a short reusable title, not a sentence), "type" (one of \(KnowledgeKind.allCases.map(\.rawValue).joined(separator: ", "))), \
    "observations" (1-4 self-contained sentences a teammate could act on, without "the user" or "the assistant"), \
    "confidence" (0-1: how sure you are this is real, reusable knowledge), "significance" (1-10), \
    and "relations" ([{"to": name of another item or a known concept, "relationType": e.g. "solves", "uses", "related_to"}]). \
    Small talk, status updates and one-off facts are not knowledge: return "items": [] for them. \
    Also return "intent": what the developer was doing in this exchange, one of \(SessionIntent.allCases.map(\.rawValue).joined(separator: ", ")); \
    "intentConfidence" (0-1); and "goal": the session's goal in one short sentence, as understood so far \
    (keep the previous goal unless this exchange changes it).
    """

    /// A problem with the model's answer, said so that a person can see what was wrong.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// What one extraction call returns: the items, and the exchange's place in the trajectory
    /// (the intent and the session's goal; absent when the model left them out).
    public struct Answer: Sendable, Equatable {
        public var items: [KnowledgeItem]
        public var intent: SessionIntent?
        public var intentConfidence: Double?
        public var goal: String?
    }

    /// An answer: JSON (a fenced block or surrounding prose tolerated) with the schema's shape;
    /// anything else is `Invalid`. A missing or unknown intent or goal is left nil (the keyword
    /// classifier fills the intent in); wrong items are `Invalid`.
    public static func answer(from content: String) throws(Invalid) -> Answer {
        var text = content.trimmingCharacters(in: .whitespacesAndNewlines)
        if let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close {
            text = String(text[open...close])
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw Invalid(description: "the answer is not a JSON object: \(content.prefix(120).debugDescription)")
        }
        guard let rawItems = object["items"] as? [Any] else { throw Invalid(description: "the answer has no \"items\" array") }
        let intent = (object["intent"] as? String).flatMap { SessionIntent(rawValue: $0.lowercased().replacingOccurrences(of: "_", with: "-")) }
        let intentConfidence = (object["intentConfidence"] as? NSNumber)?.doubleValue.clamped(to: 0...1)
        let goal = (object["goal"] as? String).map { String($0.trimmingCharacters(in: .whitespacesAndNewlines).prefix(200)) }.flatMap { $0.isEmpty ? nil : $0 }
        var items: [KnowledgeItem] = []
        for (index, raw) in rawItems.enumerated() {
            guard let item = raw as? [String: Any] else { throw Invalid(description: "items[\(index)] is not an object") }
            guard let name = item["name"] as? String, !KnowledgeItem.entityName(name).isEmpty else { throw Invalid(description: "items[\(index)].name is missing or has no letters") }
            guard let typeText = item["type"] as? String, let type = KnowledgeKind(rawValue: typeText.lowercased().replacingOccurrences(of: " ", with: "_")) else {
                throw Invalid(description: "items[\(index)].type \(String(describing: item["type"])) is not one of the taxonomy's types")
            }
            let observations = (item["observations"] as? [Any] ?? []).compactMap { $0 as? String }.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            guard !observations.isEmpty else { throw Invalid(description: "items[\(index)].observations is empty") }
            guard let confidence = (item["confidence"] as? NSNumber)?.doubleValue, (0...1).contains(confidence) else {
                throw Invalid(description: "items[\(index)].confidence must be a number 0-1")
            }
            let significance = (item["significance"] as? NSNumber)?.intValue ?? 5
            let relations = (item["relations"] as? [Any] ?? []).compactMap { raw -> KnowledgeItem.ItemRelation? in
                guard let relation = raw as? [String: Any], let to = relation["to"] as? String, let type = relation["relationType"] as? String ?? relation["type"] as? String else { return nil }
                let target = KnowledgeItem.entityName(to), relationType = type.trimmingCharacters(in: .whitespaces)
                return target.isEmpty || relationType.isEmpty ? nil : .init(to: target, relationType: String(relationType.prefix(100)))
            }
            items.append(KnowledgeItem(
                name: KnowledgeItem.entityName(name), type: type,
                observations: observations.map { String($0.prefix(2000)) },
                confidence: confidence, significance: min(10, max(1, significance)),
                relations: relations
            ))
        }
        return Answer(items: items, intent: intent, intentConfidence: intentConfidence, goal: goal)
    }
}

extension Double {
    func clamped(to range: ClosedRange<Double>) -> Double { Swift.min(range.upperBound, Swift.max(range.lowerBound, self)) }
}
