import Foundation
import KBSessions

/// What an exchange was for: the trajectory's intents.
public enum SessionIntent: String, CaseIterable, Sendable, Codable {
    case learning, debugging
    case featureDev = "feature-dev"
    case refactoring, testing, optimization, documentation, exploration
}

/// The fallback when no model answers (as the original's was): words decide an exchange's intent
/// and a provisional knowledge type. Crude by design and marked so: its confidence is at most 0.4.
public enum KeywordClassifier {
    public struct Classification: Sendable, Equatable {
        public var intent: SessionIntent
        public var type: KnowledgeKind?
        /// 0.1–0.4: how many of the intent's words matched.
        public var confidence: Double
    }

    static let intentWords: [(SessionIntent, [String])] = [
        (.debugging, ["error", "bug", "fail", "fails", "failing", "crash", "exception", "broken", "timeout", "flaky", "stack trace", "doesn't work", "fix"]),
        (.testing, ["test", "tests", "testing", "assert", "coverage", "mock", "fixture"]),
        (.optimization, ["slow", "faster", "performance", "optimi", "latency", "memory", "speed up", "cache"]),
        (.refactoring, ["refactor", "rename", "extract", "clean up", "cleanup", "simplify", "restructure"]),
        (.documentation, ["readme", "document", "docs", "comment", "docstring", "changelog"]),
        (.featureDev, ["add", "implement", "build", "create", "feature", "support for", "new endpoint"]),
        (.learning, ["how do", "how does", "what is", "why", "explain", "difference between", "should i", "should we"]),
    ]

    static let typeWords: [(KnowledgeKind, [String])] = [
        (.bugSolution, ["bug", "fix", "error", "crash", "fails", "timeout"]),
        (.testingStrategy, ["test", "mock", "fixture", "coverage"]),
        (.optimization, ["performance", "faster", "optimi", "latency", "cache"]),
        (.refactoring, ["refactor", "rename", "simplify"]),
        (.deploymentApproach, ["deploy", "docker", "kubernetes", "release", "rollout", "ci"]),
        (.architecturalDecision, ["architecture", "decide", "decision", "should we", "trade-off", "tradeoff"]),
        (.integrationPattern, ["api", "webhook", "integration", "client", "endpoint"]),
        (.toolUsage, ["command", "cli", "flag", "git ", "npm ", "swift build"]),
        (.codingPattern, ["pattern", "idiom", "wrap", "backoff", "circuit breaker"]),
        (.implementationStrategy, ["implement", "approach", "strategy"]),
    ]

    public static func classify(_ exchange: SessionExchange) -> Classification {
        let prompt = exchange.prompt.lowercased()
        let all = (exchange.prompt + "\n" + exchange.answer).lowercased()
        func score(_ words: [String], in text: String) -> Int { words.reduce(0) { $0 + (text.contains($1) ? 1 : 0) } }
        // The prompt says what the developer wanted; the answer breaks ties.
        var intent = SessionIntent.exploration, best = 0
        for (candidate, words) in intentWords {
            let value = 2 * score(words, in: prompt) + score(words, in: all)
            if value > best { intent = candidate; best = value }
        }
        var type: KnowledgeKind?, bestType = 0
        for (candidate, words) in typeWords {
            let value = score(words, in: all)
            if value > bestType { type = candidate; bestType = value }
        }
        return Classification(intent: intent, type: type, confidence: min(0.4, 0.1 + 0.05 * Double(best)))
    }
}
