import Foundation
import KBTestSupport
import Testing

/// The scoring of the extraction-quality evaluation (`Benchmarks/LearningEval/evaluate.py
/// --score`), run as a real `python3` process on a tiny hand-made case whose precision and
/// recall are worked out by hand: items taken per session file from an `ukb export` document
/// (a merged entity counts once for each session that gave it observations; `Session` entities
/// are not items), the type or a near type required, key terms deciding closeness, pairs taken
/// one to one, and an item from a session with nothing expected counting against precision.
@Suite("extraction-quality evaluation: the scoring")
struct LearningEvalScoringTests {
    static let expected = """
        {"version": 1, "sessions": [
         {"file": "a.jsonl", "format": "jsonl", "exchanges": 2, "expected": [
           {"name": "Idempotency key on retries", "type": "bug_solution", "keyTerms": ["idempotency", "retry", "uuid"], "description": ""},
           {"name": "Fake clock in retry tests", "type": "testing_strategy", "keyTerms": ["fake clock", "sleep"], "description": ""}]},
         {"file": "b.md", "format": "specstory", "exchanges": 2, "expected": [
           {"name": "Redis sliding window", "type": "implementation_strategy", "keyTerms": ["sorted set", "sliding window", "zadd"], "description": ""}]},
         {"file": "c.txt", "format": "txt", "exchanges": 2, "expected": []}
        ]}
        """

    /// Five items: (idempotency, a) right; (idempotency, b) — the same entity merged from b.md,
    /// two of b's key terms but the wrong type, and it loses b's item to the better candidate
    /// anyway; (tests never sleep, a) close in meaning but `coding_pattern` is no near type of
    /// `testing_strategy`; (limiter, b) three key terms, `coding_pattern` a near type of
    /// `implementation_strategy`; (cat names, c) from a session with nothing to learn.
    static let export = """
        {"entities": [
         {"name": "Retry with an idempotency key", "entityType": "bug_solution", "observations": [
           {"type": "learned", "content": "Send one UUID per payment as the Idempotency-Key and reuse it on every retry", "metadata": {"file": "/s/a.jsonl"}},
           {"type": "learned", "content": "Sliding window counters in a sorted set", "metadata": {"file": "/s/b.md"}}]},
         {"name": "Tests never sleep", "entityType": "coding_pattern", "observations": [
           {"type": "learned", "content": "Drive a fake clock so tests never sleep", "metadata": {"file": "/s/a.jsonl"}}]},
         {"name": "Redis sorted-set limiter", "entityType": "coding_pattern", "observations": [
           {"type": "learned", "content": "ZADD each request's time into a sorted set and count a sliding window", "metadata": {"file": "/s/b.md"}}]},
         {"name": "Cat names", "entityType": "coding_pattern", "observations": [
           {"type": "learned", "content": "Miso, Pixel or Nimbus", "metadata": {"file": "/s/c.txt"}}]},
         {"name": "session eval-a", "entityType": "Session", "observations": [
           {"type": "exchange", "content": "debugging: retry idempotency uuid fake clock", "metadata": {"file": "/s/a.jsonl"}}]}
        ]}
        """

    @Test("precision and recall of a hand-made case: 2 of 5 items match typed (precision 0.4, recall 2/3), 3 of 5 ignoring the type (0.6, 1.0)")
    func handMadeCase() throws {
        let folder = temporaryDirectory("kb-learn-eval-score")
        let expectedFile = folder.appendingPathComponent("expected.json"), exportFile = folder.appendingPathComponent("export.json")
        try Self.expected.write(to: expectedFile, atomically: true, encoding: .utf8)
        try Self.export.write(to: exportFile, atomically: true, encoding: .utf8)
        let script = packageRoot.appendingPathComponent("Benchmarks/LearningEval/evaluate.py")
        let run = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, "--score", exportFile.path, "--expected", expectedFile.path, "--no-embeddings"])
        try #require(run.status == 0, "stdout: \(run.stdout)\nstderr: \(run.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        #expect(result["extracted"] as? Int == 5, "one item per (entity, session file); the Session entity is none")
        #expect(result["expected"] as? Int == 3)
        let typed = try #require(result["typed"] as? [String: Any]), untyped = try #require(result["untyped"] as? [String: Any])
        #expect(typed["matched"] as? Int == 2)
        #expect(abs((typed["precision"] as? Double ?? -1) - 0.4) < 1e-9)
        #expect(abs((typed["recall"] as? Double ?? -1) - 2.0 / 3.0) < 1e-9)
        #expect(untyped["matched"] as? Int == 3)
        #expect(abs((untyped["precision"] as? Double ?? -1) - 0.6) < 1e-9)
        #expect(abs((untyped["recall"] as? Double ?? -1) - 1.0) < 1e-9)
        let pairs = Set(((typed["matches"] as? [[String: Any]]) ?? []).map { "\($0["file"] as? String ?? "")|\($0["expected"] as? String ?? "")|\($0["extracted"] as? String ?? "")" })
        #expect(pairs == ["a.jsonl|Idempotency key on retries|Retry with an idempotency key", "b.md|Redis sliding window|Redis sorted-set limiter"],
                "the near type counts, and b's item goes to the candidate with more key terms, once")
    }
}
