import Foundation
import KBKnowledge
import KBProto
import Testing

@Suite("Shared-memory JSON")
struct SharedMemoryDocumentTests {
    @Test("string and object observations, metadata, timestamps and relations survive a write and a read")
    func roundTrip() throws {
        let json = #"""
        {"entities": [{"name": "Retry Policy", "entityType": "Pattern", "significance": 8, "confidence": 0.9, "source": "auto",
                       "observations": ["plain text", {"type": "rule", "content": "back off", "date": "2025-01-02", "tags": ["net"], "metadata": {"k": 1}}],
                       "metadata": {"owner": "ops", "nested": {"a": true}}, "created_at": "2025-10-22T09:30:00.123Z", "last_modified": "2025-10-23T00:00:00Z"},
                      {"name": "Timeout Bug", "entityType": "Bug"}],
         "relations": [{"from": "Timeout Bug", "to": "Retry Policy", "relationType": "fixed_by", "significance": 3}],
         "metadata": {"team": "coding"}}
        """#
        let document = try SharedMemoryDocument(json: Data(json.utf8))
        #expect(document.team == "coding")
        let retry = document.entities[0]
        #expect(retry.observations.count == 2 && retry.observations[1].tags == ["net"] && retry.observations[1].metadata == ["k": "1"])
        #expect(retry.metadata["nested"] == #"{"a":true}"#)
        #expect(retry.createdAtMs == 1_761_125_400_123)
        #expect(document.relations[0].significance == 3)
        let again = try SharedMemoryDocument(json: document.jsonData())
        // Writing fills the defaults (significance 5, confidence 1); after that nothing changes.
        #expect(again.entities[0] == retry)
        #expect(again.entities[1].significance == 5 && again.entities[1].confidence == 1)
        #expect(again.relations[0].significance == 3 && again.relations[0].confidence == 1)
        let third = try SharedMemoryDocument(json: again.jsonData())
        #expect(third.entities == again.entities && third.relations == again.relations)
        #expect(third.jsonData() == again.jsonData())
    }

    @Test("milliseconds print and parse back exactly, for every millisecond of a second")
    func millisecondsAreExact() {
        for offset in Int64(0)..<1000 {
            let milliseconds = 1_700_000_000_000 + offset
            #expect(SharedMemoryDocument.parseISO(SharedMemoryDocument.iso(milliseconds)) == milliseconds)
        }
        #expect(SharedMemoryDocument.parseISO("2025-10-22T09:30:00Z") == 1_761_125_400_000)
        #expect(SharedMemoryDocument.parseISO("yesterday") == nil)
    }

    @Test("the integer ISO 8601 printer agrees with Foundation's over 1970–2100, leap days and month ends included")
    func isoMatchesFoundation() {
        var state: UInt64 = 42
        var samples: [Int64] = [0, 951_782_400_000, 951_868_799_999, 1_709_164_800_000, 4_102_444_799_999]
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            samples.append(Int64(state >> 1) % 4_102_444_800_000)
        }
        for milliseconds in samples {
            let seconds = milliseconds / 1000
            let expected = String(Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle()).dropLast()) + "." + String(format: "%03lld", milliseconds % 1000) + "Z"
            #expect(SharedMemoryDocument.iso(milliseconds) == expected, "\(milliseconds)")
        }
    }

    @Test("a wrong entry is named with its index and the rule it breaks")
    func errorsNameTheEntry() {
        func failure(_ json: String) -> String? {
            do {
                _ = try SharedMemoryDocument(json: Data(json.utf8))
                return nil
            } catch {
                return error.description
            }
        }
        #expect(failure(#"{"entities": [{"name": "ok", "entityType": "T"}, {"name": "no/slash", "entityType": "T"}]}"#)?.hasPrefix("entities[1].name:") == true)
        #expect(failure(#"{"entities": [{"name": "ok", "entityType": "T", "significance": 11}]}"#)?.hasPrefix("entities[0].significance:") == true)
        #expect(failure(#"{"entities": [{"name": "ok", "entityType": "T", "significance": true}]}"#)?.hasPrefix("entities[0].significance: must be a number") == true)
        #expect(failure(#"{"entities": [{"name": "ok", "entityType": "T", "observations": [""]}]}"#)?.hasPrefix("entities[0].observations[0].content") == true)
        #expect(failure(#"{"entities": [], "relations": [{"from": "a", "to": "b"}]}"#)?.hasPrefix("relations[0].relation_type") == true)
        #expect(failure(#"{"entities": [{"name": "ok", "entityType": "T", "created_at": "soon"}]}"#)?.hasPrefix("entities[0].created_at") == true)
        #expect(failure("[1, 2]")?.hasPrefix("file:") == true)
        #expect(failure("{")?.contains("not valid JSON") == true)
    }
}
