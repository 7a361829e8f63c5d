import Foundation
import Testing
import KBTestSupport
import Yams

/// The operators' tools the deployment tests drive: Debian's `prometheus` and `promtool`, `kubectl`
/// (its built-in kustomize) and PyPI's `kubernetes-validate`. Without one the tests that need it
/// are skipped, unless `KB_REQUIRE_DEPLOY_TOOLS` is set (as `scripts/test.sh` and CI do): then
/// they fail.
enum OpsTool: String, CaseIterable {
    case prometheus, promtool, kubectl
    case kubernetesValidate = "kubernetes-validate"

    /// `KB_REQUIRE_DEPLOY_TOOLS` set (and not `0`): a missing tool fails instead of skipping.
    static var required: Bool {
        let value = ProcessInfo.processInfo.environment["KB_REQUIRE_DEPLOY_TOOLS"] ?? ""
        return !value.isEmpty && value != "0"
    }

    /// How to install the tool.
    var installHint: String {
        switch self {
        case .prometheus, .promtool: "apt-get install prometheus (scripts/setup-system.sh --test)"
        case .kubectl: "kubectl (its built-in kustomize renders deploy/kubernetes)"
        case .kubernetesValidate: "python3 -m pip install kubernetes-validate (scripts/setup-system.sh --test)"
        }
    }

    /// The command that runs the tool: its executable and leading arguments; nil when missing.
    var command: (URL, [String])? {
        switch self {
        case .kubernetesValidate:
            guard let python = Self.which("python3"),
                  (try? runProgram(python, ["-c", "import kubernetes_validate"]))?.status == 0 else { return nil }
            return (python, ["-m", "kubernetes_validate"])
        default:
            return Self.which(rawValue).map { ($0, []) }
        }
    }

    /// Whether every tool in `tools` is installed, or they must be (then the test runs and fails).
    /// kubectl is never required: it has no Debian package and CI cannot install it, so a machine
    /// without it skips the kustomize tests (with the reason) rather than failing the run.
    static func shouldRun(_ tools: OpsTool...) -> Bool {
        tools.allSatisfy { $0.command != nil } || (required && !tools.contains(.kubectl))
    }

    /// Runs the tool with `arguments`; a missing tool throws with how to install it.
    func run(_ arguments: [String], environment: [String: String] = [:], currentDirectory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let (executable, leading) = command else {
            throw ProcessFailure("\(rawValue) is not installed (KB_REQUIRE_DEPLOY_TOOLS is set): \(installHint)")
        }
        return try runProgram(executable, leading + arguments, environment: environment, currentDirectory: currentDirectory)
    }

    /// The first executable called `name` on PATH.
    static func which(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(folder)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }
}

/// The project's monitoring files: the rules, their unit tests, the scrape configuration and the dashboard.
enum MonitoringFiles {
    static let prometheusFolder = packageRoot.appendingPathComponent("deploy/prometheus")
    static let alerts = prometheusFolder.appendingPathComponent("alerts.yml")
    static let alertTests = prometheusFolder.appendingPathComponent("alerts_test.yml")
    static let scrapeConfiguration = prometheusFolder.appendingPathComponent("prometheus.yml")
    static let dashboard = packageRoot.appendingPathComponent("deploy/grafana/dashboards/knowledge-system.json")

    /// Every alert rule of alerts.yml: name and expression.
    static func alertRules() throws -> [(name: String, expression: String)] {
        let document = try #require(try Yams.load(yaml: String(contentsOf: alerts, encoding: .utf8)) as? [String: Any])
        let groups = document["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.compactMap { rule in
            guard let name = rule["alert"] as? String, let expression = rule["expr"] as? String else { return nil }
            return (name, expression.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Every PromQL expression of the dashboard's panels: panel title and expression.
    static func dashboardExpressions() throws -> [(panel: String, expression: String)] {
        let data = try Data(contentsOf: dashboard)
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = document["panels"] as? [[String: Any]] ?? []
        return panels.flatMap { panel -> [(panel: String, expression: String)] in
            let title = panel["title"] as? String ?? "?"
            return ((panel["targets"] as? [[String: Any]]) ?? []).compactMap { target in (target["expr"] as? String).map { (panel: title, expression: $0) } }
        }
    }

    /// The metric names an expression reads (ours start with `knowledge_` or `kb_`; `up` is Prometheus's).
    static func metricNames(in expression: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: #"\b(?:knowledge|kb)_[a-z0-9_]+\b"#)
        let range = NSRange(expression.startIndex..., in: expression)
        var names = Set(pattern.matches(in: expression, range: range).compactMap { Range($0.range, in: expression).map { String(expression[$0]) } })
        if expression.range(of: #"\bup\{"#, options: .regularExpression) != nil { names.insert("up") }
        return names
    }
}
