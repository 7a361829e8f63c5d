import Testing

@testable import KBKnowledge

@Suite("The data model's rules say which rule broke, for programs")
struct KnowledgeRuleReasonTests {
    /// The reason `body` fails with, as its wire word.
    private func reason(_ body: () throws(KnowledgeRuleError) -> Void) -> (field: String, reason: String?)? {
        do {
            try body()
            return nil
        } catch {
            return (error.field, error.reason?.rawValue)
        }
    }

    @Test("names, teams, numbers and observations fail with their documented reason")
    func reasons() throws {
        let empty = reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkName("", field: "entities[0].name") }
        #expect(empty?.field == "entities[0].name" && empty?.reason == "REQUIRED")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkName(String(repeating: "x", count: 201), field: "name") }?.reason == "TOO_LONG")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkName("a/b", field: "name") }?.reason == "NAME_INVALID")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkName(" a", field: "name") }?.reason == "NAME_INVALID")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkTeam("a:b") }?.reason == "NAME_INVALID")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkType("a\u{1}b", field: "entity_type") }?.reason == "INVALID_FORMAT")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkSignificance(11, field: "significance") }?.reason == "OUT_OF_RANGE")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkConfidence(.nan, field: "confidence") }?.reason == "OUT_OF_RANGE")
        #expect(reason { () throws(KnowledgeRuleError) in try KnowledgeRules.checkName("Fine Name", field: "name") } == nil)
    }
}
