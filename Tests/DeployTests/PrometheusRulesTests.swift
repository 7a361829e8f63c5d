import Foundation
import KBTestSupport
import Testing
import Yams

/// deploy/prometheus checked by Prometheus's own tool: the rules and the scrape configuration load,
/// and every alert passes its unit tests on synthetic series (alerts_test.yml).
@Suite("Prometheus rules (promtool)")
struct PrometheusRulesTests {
    static let skipReason: Comment = "promtool is not installed: apt-get install prometheus (scripts/setup-system.sh --test); KB_REQUIRE_DEPLOY_TOOLS=1 makes this a failure instead of a skip"

    @Test("promtool accepts alerts.yml and prometheus.yml", .enabled(if: OpsTool.shouldRun(.promtool), skipReason))
    func rulesAndConfigurationLoad() throws {
        let rules = try OpsTool.promtool.run(["check", "rules", MonitoringFiles.alerts.path])
        #expect(rules.status == 0, "promtool check rules: \(rules.stdout)\(rules.stderr)")
        let configuration = try OpsTool.promtool.run(["check", "config", MonitoringFiles.scrapeConfiguration.path])
        #expect(configuration.status == 0, "promtool check config: \(configuration.stdout)\(configuration.stderr)")
    }

    @Test("every alert passes its unit tests (promtool test rules alerts_test.yml)", .enabled(if: OpsTool.shouldRun(.promtool), skipReason))
    func alertUnitTestsPass() throws {
        let result = try OpsTool.promtool.run(["test", "rules", MonitoringFiles.alertTests.lastPathComponent], currentDirectory: MonitoringFiles.prometheusFolder)
        #expect(result.status == 0, "promtool test rules: \(result.stdout)\(result.stderr)")
    }

    @Test("every alert has a unit test in which it fires, and the guide's alerts are all there")
    func everyAlertIsTested() throws {
        let alerts = Set(try MonitoringFiles.alertRules().map(\.name))
        let document = try #require(try Yams.load(yaml: String(contentsOf: MonitoringFiles.alertTests, encoding: .utf8)) as? [String: Any])
        let cases = (document["tests"] as? [[String: Any]] ?? []).flatMap { ($0["alert_rule_test"] as? [[String: Any]]) ?? [] }
        let firing = Set(cases.filter { !(($0["exp_alerts"] as? [Any]) ?? []).isEmpty }.compactMap { $0["alertname"] as? String })
        #expect(alerts.subtracting(firing).isEmpty, "alerts with no unit test that sees them fire: \(alerts.subtracting(firing).sorted())")
        #expect(firing.subtracting(alerts).isEmpty, "tests of alerts that do not exist: \(firing.subtracting(alerts).sorted())")
        let guide: Set = [
            "HighInferenceLatency", "CriticalInferenceLatency", "LowCacheHitRate", "BudgetNearLimit", "BudgetExceeded", "CircuitBreakerOpen",
            "HighVectorSearchLatency", "GraphEntityCountDrop", "KnowledgeExtractionRateLow", "ServiceDown",
        ]
        #expect(guide.subtracting(alerts).isEmpty, "the guide's alerts missing from alerts.yml: \(guide.subtracting(alerts).sorted())")
    }

    @Test("the scrape configuration names every service's admin port and the learner's")
    func scrapeTargetsAreTheServices() throws {
        let targets = try PrometheusScrapeConfiguration.load().targets
        #expect(Set(targets["knowledge-system"] ?? []) == Set(["localhost:9101", "localhost:9102", "localhost:9103", "localhost:9104", "localhost:8080"]))
        #expect(targets["knowledge-learner"] == ["localhost:9106"])
    }
}

/// deploy/prometheus/prometheus.yml, read as YAML.
struct PrometheusScrapeConfiguration {
    var document: [String: Any]

    static func load() throws -> PrometheusScrapeConfiguration {
        let text = try String(contentsOf: MonitoringFiles.scrapeConfiguration, encoding: .utf8)
        return PrometheusScrapeConfiguration(document: try #require(try Yams.load(yaml: text) as? [String: Any]))
    }

    /// Each job's static targets.
    var targets: [String: [String]] {
        var targets: [String: [String]] = [:]
        for job in document["scrape_configs"] as? [[String: Any]] ?? [] {
            guard let name = job["job_name"] as? String else { continue }
            let configs = job["static_configs"] as? [[String: Any]] ?? []
            targets[name] = configs.flatMap { $0["targets"] as? [String] ?? [] }
        }
        return targets
    }
}
