import BudgetKit
import Foundation
import GraphStoreKit
import InferenceKit
import KBEmbeddings
import KBRuntime
import KBTestSupport
import Testing
import UKBKit
import VKBKit
import VectorSearchKit

/// Every configuration the system declares, in the README's order.
let declaredConfigurations: [(owner: String, keys: [ConfigKeyDocumentation])] = [
    ("every service", ServiceConfiguration.keys),
    ("ukb", UKBConfiguration.keys),
    ("graph-store", GraphStoreConfiguration.keys),
    ("budget-service", BudgetConfiguration.keys),
    ("inference-gateway", InferenceConfiguration.keys),
    ("vector-search", VectorSearchConfiguration.keys),
    ("vkb", VKBConfiguration.keys),
    ("embeddings", EmbeddingConfiguration.keys),
]

@Suite("Configuration declarations")
struct ConfigurationDeclarationTests {
    @Test("the README's configuration table is the declarations, row for row")
    func readmeTableMatchesDeclarations() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.firstIndex(of: "| variable | default | meaning |"), "README.md has no configuration table")
        let documented = lines[(header + 2)...].prefix { $0.hasPrefix("|") }
        let declared = declaredConfigurations.flatMap(\.keys).map(\.markdownRow)
        #expect(
            Array(documented) == declared,
            "README.md's configuration table differs from the declarations; the table they declare is:\n\(declared.joined(separator: "\n"))"
        )
    }

    @Test("no key is declared twice")
    func keysAreDeclaredOnce() {
        let names = declaredConfigurations.flatMap(\.keys).map(\.name)
        #expect(Set(names).count == names.count, "\(names.sorted())")
    }

    @Test("a bad value of a service's own key is refused with an error that names the key and the value")
    func badServiceValuesNameTheirKey() throws {
        let cases: [(String, String, (ConfigSource, ServiceConfiguration) throws -> Void)] = [
            ("KB_BUDGET_MONTHLY_LIMIT_USD", "-3", { _ = try BudgetConfiguration(source: $0, shared: $1) }),
            ("KB_BUDGET_RESERVATION_TTL_SECONDS", "soon", { _ = try BudgetConfiguration(source: $0, shared: $1) }),
            ("KB_BUDGET_PRICES_FILE", "/nonexistent/prices.json", { _ = try BudgetConfiguration(source: $0, shared: $1) }),
            ("KB_VECTOR_SNAPSHOT_EVERY", "0", { _ = try VectorSearchConfiguration(source: $0, shared: $1) }),
            ("KB_VKB_GRAPH_MAX_NODES", "20001", { _ = try VKBConfiguration(source: $0, shared: $1) }),
            ("KB_GRAPH_STORE_ADDR", "nowhere", { _ = try VKBConfiguration(source: $0, shared: $1) }),
        ]
        for (key, value, read) in cases {
            let source = try ConfigSource(environment: [key: value])
            let shared = try ServiceConfiguration(descriptor: .vkb, source: source)
            #expect {
                try read(source, shared)
            } throws: { error in
                (error as? ConfigError)?.key == key && "\(error)".contains(value)
            }
        }
    }

    @Test("unset keys take their declared defaults")
    func declaredDefaultsApply() throws {
        let source = try ConfigSource(environment: [:])
        let shared = try ServiceConfiguration(descriptor: .budgetService, source: source)
        let budget = try BudgetConfiguration(source: source, shared: shared)
        #expect(budget.options.defaultLimitUSD == BudgetConfiguration.Keys.monthlyLimitUSD.defaultValue)
        #expect(budget.options.reservationTTL == .seconds(BudgetConfiguration.Keys.reservationTTLSeconds.defaultValue))
        #expect(budget.options.busyTimeout == .milliseconds(BudgetConfiguration.Keys.busyTimeoutMilliseconds.defaultValue))
        let vkb = try VKBConfiguration(source: source, shared: shared)
        #expect(vkb.graphMaxNodes == 5000 && vkb.webDirectory == nil)
        #expect(try VectorSearchConfiguration(source: source, shared: shared).snapshotEvery == 20_000)
    }
}
