import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing
@testable import GraphStoreKit

/// Issue 18, finding 2: the store never reports itself sound while its counters disagree with
/// its records.
@Suite("The graph store's damage reporting, on real LevelDB files")
struct GraphDamageTests {
    @Test("counters that disagree with the records: verify says so and the store reports damage until a verify passes")
    func counterDisagreementIsDamage() async throws {
        try await withStore { store, _ in
            _ = try await store.putEntities(.with { $0.team = "t"; $0.entities = [entity("a"), entity("b")] })
            #expect(try store.verify().ok)
            #expect(store.damage == nil)
            // A counter that says 2,000 over 2 records, as a log damaged in its middle left it.
            try store.db.put(GraphKey.counter("t", GraphKey.entitiesCounter), GraphKey.int64Value(2000))
            let report = try store.verify()
            #expect(!report.ok)
            let damage = try #require(store.damage)
            #expect(damage.contains("counts 2000 entities; the records hold 2"), "\(damage)")
            #expect(damage.contains("ukb restore"), "\(damage)")
            try store.db.put(GraphKey.counter("t", GraphKey.entitiesCounter), GraphKey.int64Value(2))
            #expect(try store.verify().ok)
            #expect(store.damage == nil)
        }
    }
}
