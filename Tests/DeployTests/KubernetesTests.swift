import BudgetKit
import Foundation
import GraphStoreKit
import InferenceKit
import KBEmbeddings
import KBRuntime
import KBTestSupport
import Testing
import VKBKit
import VectorSearchKit
import Yams

/// deploy/kubernetes rendered by kustomize (`kubectl kustomize`), validated against the Kubernetes
/// schemas of a current version (PyPI's `kubernetes-validate`, offline), and its cross-references
/// checked: Services select workloads and target their ports, probes hit the admin ports, every
/// configuration key a service reads (its `ConfigKey` declarations) is set or has a default that
/// works in a pod, and the NetworkPolicies admit exactly each service's documented callers.
@Suite("Kubernetes manifests")
struct KubernetesTests {
    static let skipReason: Comment = "kubectl or kubernetes-validate is not installed (python3 -m pip install kubernetes-validate; kubectl renders the kustomizations); KB_REQUIRE_DEPLOY_TOOLS=1 makes this a failure instead of a skip"
    /// The Kubernetes version the manifests must validate for.
    static let kubernetesVersion = "1.37.0"
    static let kustomizations = ["deploy/kubernetes/base", "deploy/kubernetes/overlays/small"]

    @Test("the base and the overlay validate against the Kubernetes 1.37 schemas (strict)", .enabled(if: OpsTool.shouldRun(.kubectl, .kubernetesValidate), skipReason), arguments: kustomizations)
    func manifestsValidate(kustomization: String) throws {
        let rendered = try RenderedManifests.render(kustomization)
        let file = temporaryDirectory("kb-k8s").appendingPathComponent("rendered.yaml")
        try rendered.text.write(to: file, atomically: true, encoding: .utf8)
        let result = try OpsTool.kubernetesValidate.run(["--kubernetes-version", Self.kubernetesVersion, "--strict", "--quiet", file.path])
        #expect(result.status == 0, "kubernetes-validate \(kustomization): \(result.stdout)\(result.stderr)")
        #expect(rendered.objects.count >= 23, "\(rendered.objects.count) objects")
    }

    @Test("kubernetes-validate refuses a manifest with an unknown field (the check can fail)", .enabled(if: OpsTool.shouldRun(.kubernetesValidate), skipReason))
    func validatorRefusesUnknownFields() throws {
        let file = temporaryDirectory("kb-k8s").appendingPathComponent("bad.yaml")
        try "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {a: b}, prots: [{port: 1}]}\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try OpsTool.kubernetesValidate.run(["--kubernetes-version", Self.kubernetesVersion, "--strict", "--quiet", file.path])
        #expect(result.status != 0)
    }

    @Test("the workloads: stores as StatefulSets with volumes, the gateway (with an HPA) and VKB as Deployments, one image, hardened, with requests and limits", .enabled(if: OpsTool.shouldRun(.kubectl), skipReason), arguments: kustomizations)
    func workloads(kustomization: String) throws {
        let manifests = try RenderedManifests.render(kustomization)
        let expected: [String: String] = [
            "graph-store": "StatefulSet", "vector-search": "StatefulSet", "budget-service": "StatefulSet",
            "inference-gateway": "Deployment", "vkb": "Deployment",
        ]
        #expect(Dictionary(uniqueKeysWithValues: manifests.workloads.map { ($0.name, $0.kind) }) == expected)
        for workload in manifests.workloads {
            let container = workload.container
            #expect(container["image"] as? String == "kb-system:latest", "\(workload.name)")
            #expect(container["command"] as? [String] == ["/usr/local/bin/\(workload.name)"], "\(workload.name)")
            let pod = workload.podSpec["securityContext"] as? [String: Any] ?? [:]
            #expect(pod["runAsNonRoot"] as? Bool == true, "\(workload.name): runAsNonRoot")
            let security = container["securityContext"] as? [String: Any] ?? [:]
            #expect(security["readOnlyRootFilesystem"] as? Bool == true, "\(workload.name): readOnlyRootFilesystem")
            #expect(security["allowPrivilegeEscalation"] as? Bool == false, "\(workload.name): allowPrivilegeEscalation")
            #expect((security["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"], "\(workload.name): capabilities")
            let resources = container["resources"] as? [String: Any] ?? [:]
            for kind in ["requests", "limits"] {
                let values = resources[kind] as? [String: Any] ?? [:]
                #expect(values["cpu"] != nil && values["memory"] != nil, "\(workload.name): \(kind) of cpu and memory")
            }
            // A read-only root: every folder the process writes is a mounted volume.
            let mounts = workload.mountPaths
            #expect(mounts.contains("/tmp"), "\(workload.name) mounts /tmp")
            if workload.kind == "StatefulSet" {
                let claims = (workload.spec["volumeClaimTemplates"] as? [[String: Any]] ?? []).compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
                #expect(claims == ["data"], "\(workload.name): one PersistentVolumeClaim")
                #expect(workload.volumeMounts.contains { $0.name == "data" }, "\(workload.name) mounts its claim")
                let serviceName = workload.spec["serviceName"] as? String
                #expect(manifests.objects(kind: "Service").contains { $0.name == serviceName }, "\(workload.name): serviceName \(serviceName ?? "nil") is a Service")
            }
        }
        let autoscalers = manifests.objects(kind: "HorizontalPodAutoscaler")
        #expect(autoscalers.map { ($0.spec["scaleTargetRef"] as? [String: Any])?["name"] as? String } == ["inference-gateway"])
        #expect(autoscalers.allSatisfy { ($0.spec["scaleTargetRef"] as? [String: Any])?["kind"] as? String == "Deployment" })
        // Every workload has a PodDisruptionBudget selecting it.
        for workload in manifests.workloads {
            let budgets = manifests.objects(kind: "PodDisruptionBudget").filter { workload.isSelected(by: ($0.spec["selector"] as? [String: Any])?["matchLabels"] as? [String: String]) }
            #expect(budgets.count == 1, "\(workload.name): \(budgets.count) PodDisruptionBudgets")
        }
    }

    @Test("every Service selects one workload and targets ports it has; every probe hits the admin port", .enabled(if: OpsTool.shouldRun(.kubectl), skipReason), arguments: kustomizations)
    func servicesAndProbes(kustomization: String) throws {
        let manifests = try RenderedManifests.render(kustomization)
        for service in manifests.objects(kind: "Service") {
            let selector = service.spec["selector"] as? [String: String]
            let selected = manifests.workloads.filter { $0.isSelected(by: selector) }
            try #require(selected.count == 1, "Service \(service.name) selects \(selected.map(\.name))")
            for port in service.spec["ports"] as? [[String: Any]] ?? [] {
                let target = port["targetPort"] ?? port["port"]!
                #expect(selected[0].hasContainerPort(target), "Service \(service.name): targetPort \(target) is not a containerPort of \(selected[0].name)")
            }
        }
        for workload in manifests.workloads {
            #expect(manifests.objects(kind: "Service").contains { workload.isSelected(by: $0.spec["selector"] as? [String: String]) }, "\(workload.name) has no Service")
            let descriptor = try #require(ServiceDescriptor.named(workload.name))
            let environment = try manifests.environment(of: workload)
            let adminPort = Int(environment[descriptor.adminPortKey] ?? "") ?? descriptor.defaultAdminPort
            for (probe, path) in [("startupProbe", "/health/live"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")] {
                let get = try #require((workload.container[probe] as? [String: Any])?["httpGet"] as? [String: Any], "\(workload.name) has no \(probe)")
                #expect(get["path"] as? String == path, "\(workload.name) \(probe)")
                let port = try #require(get["port"])
                #expect(workload.containerPortNumber(port) == adminPort, "\(workload.name) \(probe) port \(port) is not the admin port \(adminPort)")
            }
        }
    }

    @Test("every configuration key a service reads is set in its pod or defaulted to something that works there", .enabled(if: OpsTool.shouldRun(.kubectl), skipReason), arguments: kustomizations)
    func configurationKeys(kustomization: String) throws {
        let manifests = try RenderedManifests.render(kustomization)
        var readByAnyone: Set<String> = []
        for workload in manifests.workloads {
            let descriptor = try #require(ServiceDescriptor.named(workload.name))
            let reads = ServiceKeys.read(by: descriptor)
            readByAnyone.formUnion(reads)
            let environment = try manifests.environment(of: workload)
            // Set directly on the container: a key this service reads (a typo or a misplaced key is caught).
            for name in workload.directEnvironmentNames where name.hasPrefix("KB_") {
                #expect(reads.contains(name), "\(workload.name) sets \(name), which it does not read")
            }
            // Keys whose defaults do not work in a pod must be set.
            #expect(environment["KB_BIND_HOST"] == "0.0.0.0", "\(workload.name): KB_BIND_HOST must be 0.0.0.0 (loopback is unreachable from other pods)")
            #expect(environment["KB_AUTH_TOKEN"] == ManifestEnvironment.fromSecret, "\(workload.name): KB_AUTH_TOKEN must come from a Secret")
            let dataDirectory = try #require(environment["KB_DATA_DIR"], "\(workload.name): KB_DATA_DIR unset (the default .data is on the read-only root)")
            if descriptor.dataSubdirectory != nil {
                #expect(workload.volumeMounts.contains { $0.path == dataDirectory }, "\(workload.name): KB_DATA_DIR \(dataDirectory) is not a mounted volume")
                let backups = try #require(environment["KB_BACKUP_DIR"], "\(workload.name): KB_BACKUP_DIR unset (the default is beside KB_DATA_DIR, on the read-only root)")
                #expect(backups.hasPrefix(dataDirectory + "/"), "\(workload.name): KB_BACKUP_DIR \(backups) is not on the data volume")
            }
            // Ports: set or default, each a containerPort.
            var portKeys = [descriptor.adminPortKey]
            if descriptor.defaultPort != nil { portKeys.append(descriptor.portKey) }
            if descriptor == .vectorSearch { portKeys.append(VectorSearchConfiguration.Keys.qdrantPort.name) }
            for key in portKeys {
                let value = environment[key] ?? ServiceKeys.defaultPort(key, of: descriptor)
                #expect(value.flatMap(Int.init).map { workload.hasContainerPort($0) } == true, "\(workload.name): \(key) = \(value ?? "nil") is not a containerPort")
            }
            // Peers: their address set to a Service of the peer on its RPC port.
            for peer in ServiceKeys.peers(of: descriptor) {
                let address = try #require(environment[peer.addressKey], "\(workload.name) calls \(peer.name) but \(peer.addressKey) is unset (the default is loopback)")
                let parts = address.split(separator: ":")
                let service = manifests.objects(kind: "Service").first { $0.name == parts.first.map(String.init) }
                let port = (service?.spec["ports"] as? [[String: Any]] ?? []).first { ($0["port"] as? Int) == parts.last.flatMap { Int($0) } }
                let peerWorkload = try #require(manifests.workloads.first { $0.name == peer.name })
                #expect(port.flatMap { peerWorkload.containerPortNumber($0["targetPort"] ?? $0["port"]!) } == peer.defaultPort, "\(workload.name): \(peer.addressKey)=\(address) is not \(peer.name)'s RPC port behind a Service")
            }
            // Every value parses as the service reads it (a bad one would exit 78 at start).
            do {
                let source = try ConfigSource(environment: environment)
                let shared = try ServiceConfiguration(descriptor: descriptor, source: source)
                switch descriptor {
                case .graphStore: _ = try GraphStoreConfiguration(source: source, shared: shared)
                case .vectorSearch: _ = try VectorSearchConfiguration(source: source, shared: shared)
                case .budgetService: _ = try BudgetConfiguration(source: source, shared: shared)
                case .inferenceGateway:
                    let gateway = try InferenceConfiguration(source: source, shared: shared)
                    #expect(gateway.indexer != nil, "the gateway's indexer is off: it needs KB_GRAPH_STORE_ADDR and KB_VECTOR_SEARCH_ADDR")
                default: _ = try VKBConfiguration(source: source, shared: shared)
                }
                #expect(shared.host == "0.0.0.0" && shared.dataDirectory.path == dataDirectory, "\(workload.name)")
            } catch {
                Issue.record("\(workload.name): its pod's configuration is refused: \(error)")
            }
            // Every other key it reads is either set or has a declared default.
            for key in reads where environment[key] == nil {
                #expect(ServiceKeys.hasDefault(key), "\(workload.name) reads \(key), which is neither set nor defaulted")
            }
        }
        // The shared ConfigMap holds only keys some service reads.
        for map in manifests.objects(kind: "ConfigMap") {
            for key in (map.object["data"] as? [String: Any] ?? [:]).keys {
                #expect(readByAnyone.contains(key), "ConfigMap \(map.name) sets \(key), which no service reads")
            }
        }
    }

    @Test("the NetworkPolicies admit exactly each service's documented callers, on ports the service has", .enabled(if: OpsTool.shouldRun(.kubectl), skipReason), arguments: kustomizations)
    func networkPolicies(kustomization: String) throws {
        let manifests = try RenderedManifests.render(kustomization)
        var admitted: [String: [String: Set<String>]] = [:]  // service → port name → callers
        for policy in manifests.objects(kind: "NetworkPolicy") {
            let target = manifests.workloads.filter { $0.isSelected(by: (policy.spec["podSelector"] as? [String: Any])?["matchLabels"] as? [String: String]) }
            try #require(target.count == 1, "NetworkPolicy \(policy.name) selects \(target.map(\.name))")
            #expect(policy.spec["policyTypes"] as? [String] == ["Ingress"], "\(policy.name)")
            for rule in policy.spec["ingress"] as? [[String: Any]] ?? [] {
                let callers: Set<String>
                if let from = rule["from"] as? [[String: Any]] {
                    callers = Set(try from.map { (peer: [String: Any]) throws -> String in
                        let labels = (peer["podSelector"] as? [String: Any])?["matchLabels"] as? [String: String] ?? [:]
                        if labels == ["knowledge-base/client": "true"] { return "client" }
                        if labels == ["app.kubernetes.io/name": "prometheus"], peer["namespaceSelector"] != nil { return "prometheus" }
                        let matched = manifests.workloads.filter { $0.isSelected(by: labels) }
                        try #require(matched.count == 1, "NetworkPolicy \(policy.name): a caller selector \(labels) matches \(matched.map(\.name))")
                        return matched[0].name
                    })
                } else {
                    callers = ["anyone"]
                }
                for port in rule["ports"] as? [[String: Any]] ?? [] {
                    let name = try #require(port["port"] as? String, "NetworkPolicy \(policy.name): ports are named")
                    #expect(target[0].hasContainerPort(name), "NetworkPolicy \(policy.name): port \(name) is not a containerPort of \(target[0].name)")
                    admitted[target[0].name, default: [:]][name, default: []].formUnion(callers)
                }
            }
        }
        // Who calls whom (docs/ARCHITECTURE.md): VKB → graph, vectors, gateway; the gateway → budget
        // (budget gate), graph and vectors (indexer); ukb / kb / the learner → every RPC port and the
        // gateway's HTTP front; Prometheus → every admin port.
        let documented: [String: [String: Set<String>]] = [
            "graph-store": ["rpc": ["vkb", "inference-gateway", "client"], "admin": ["prometheus"]],
            "vector-search": ["rpc": ["vkb", "inference-gateway", "client"], "qdrant": ["client"], "admin": ["prometheus"]],
            "budget-service": ["rpc": ["inference-gateway", "client"], "admin": ["prometheus"]],
            "inference-gateway": ["rpc": ["vkb", "client"], "admin": ["prometheus", "client"]],
            "vkb": ["http": ["anyone"]],
        ]
        #expect(admitted == documented)
        // Every container port is covered (a port no rule names is unreachable), and every peer a
        // service's configuration reads may reach that peer's RPC port.
        for workload in manifests.workloads {
            for name in workload.containerPortNames {
                #expect(admitted[workload.name]?[name] != nil, "\(workload.name): no NetworkPolicy admits anyone to port \(name)")
            }
            let descriptor = try #require(ServiceDescriptor.named(workload.name))
            for peer in ServiceKeys.peers(of: descriptor) {
                #expect(admitted[peer.name]?["rpc"]?.contains(workload.name) == true, "\(workload.name) calls \(peer.name), whose NetworkPolicy does not admit it")
            }
        }
    }
}

/// The configuration keys each service reads, from the declarations (README's table).
enum ServiceKeys {
    /// The peers a service calls, as its configuration reads them (`clientConfiguration(for:)`):
    /// the gateway's budget gate and indexer, VKB's graph, search by meaning and embeddings.
    static func peers(of service: ServiceDescriptor) -> [ServiceDescriptor] {
        switch service {
        case .inferenceGateway: [.budgetService, .graphStore, .vectorSearch]
        case .vkb: [.graphStore, .vectorSearch, .inferenceGateway]
        default: []
        }
    }

    /// Every key `service` reads: the shared ones (the `KB_<SERVICE>_…` patterns for itself and its
    /// peers), its own declarations, and the embedding engine's for the gateway.
    static func read(by service: ServiceDescriptor) -> Set<String> {
        var names = Set(ServiceConfiguration.keys.map(\.name).filter { !$0.contains("<SERVICE>") })
        names.formUnion([service.hostKey, service.portKey, service.adminPortKey])
        for peer in peers(of: service) { names.formUnion([peer.addressKey, peer.portKey]) }
        let own: [ConfigKeyDocumentation] = switch service {
        case .graphStore: GraphStoreConfiguration.keys
        case .vectorSearch: VectorSearchConfiguration.keys
        case .budgetService: BudgetConfiguration.keys
        case .inferenceGateway: InferenceConfiguration.keys + EmbeddingConfiguration.keys
        default: VKBConfiguration.keys
        }
        names.formUnion(own.map(\.name))
        return names
    }

    /// Whether a key has a declared default (every `ConfigKey` does: a value, or "unset" for an
    /// optional one); the per-service patterns default to the catalog's ports and `KB_BIND_HOST`.
    static func hasDefault(_ name: String) -> Bool {
        let documented = declared[name] ?? declared[pattern(of: name)]
        return documented.map { !$0.documentedDefault.isEmpty } ?? false
    }

    /// The default port of a port key of `service`.
    static func defaultPort(_ key: String, of service: ServiceDescriptor) -> String? {
        if key == VectorSearchConfiguration.Keys.qdrantPort.name { return "6333" }
        if key == service.adminPortKey { return String(service.defaultAdminPort) }
        return service.defaultPort.map(String.init)
    }

    private static let declared: [String: ConfigKeyDocumentation] = Dictionary(
        (ServiceConfiguration.keys + GraphStoreConfiguration.keys + VectorSearchConfiguration.keys + BudgetConfiguration.keys
            + InferenceConfiguration.keys + EmbeddingConfiguration.keys + VKBConfiguration.keys).map { ($0.name, $0) },
        uniquingKeysWith: { first, _ in first }
    )

    /// `KB_GRAPH_STORE_PORT` → `KB_<SERVICE>_PORT`.
    private static func pattern(of name: String) -> String {
        for service in ServiceDescriptor.catalog where name.hasPrefix(service.envPrefix + "_") {
            return "KB_<SERVICE>_" + name.dropFirst(service.envPrefix.count + 1)
        }
        return name
    }
}

/// What a container's environment resolves to: values, or `fromSecret` for a Secret's.
enum ManifestEnvironment {
    static let fromSecret = "<from a Secret>"
}

/// One rendered object.
struct ManifestObject {
    let object: [String: Any]
    var kind: String { object["kind"] as? String ?? "" }
    var name: String { (object["metadata"] as? [String: Any])?["name"] as? String ?? "" }
    var spec: [String: Any] { object["spec"] as? [String: Any] ?? [:] }
}

/// A Deployment or StatefulSet, with its one container.
struct Workload {
    let manifest: ManifestObject
    var kind: String { manifest.kind }
    var name: String { manifest.name }
    var spec: [String: Any] { manifest.spec }
    var podSpec: [String: Any] { (spec["template"] as? [String: Any])?["spec"] as? [String: Any] ?? [:] }
    var podLabels: [String: String] { ((spec["template"] as? [String: Any])?["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:] }
    var container: [String: Any] { (podSpec["containers"] as? [[String: Any]])?.first ?? [:] }
    var ports: [[String: Any]] { container["ports"] as? [[String: Any]] ?? [] }
    var containerPortNames: [String] { ports.compactMap { $0["name"] as? String } }
    var volumeMounts: [(name: String, path: String)] {
        (container["volumeMounts"] as? [[String: Any]] ?? []).compactMap { mount in
            guard let name = mount["name"] as? String, let path = mount["mountPath"] as? String else { return nil }
            return (name, path)
        }
    }
    var mountPaths: [String] { volumeMounts.map(\.path) }
    var directEnvironmentNames: [String] { (container["env"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }

    /// Whether a non-empty label selector selects this workload's pods.
    func isSelected(by selector: [String: String]?) -> Bool {
        guard let selector, !selector.isEmpty else { return false }
        return selector.allSatisfy { podLabels[$0.key] == $0.value }
    }

    /// The container port a port reference (a name or a number) means; nil when none.
    func containerPortNumber(_ reference: Any) -> Int? {
        if let number = reference as? Int { return ports.contains { $0["containerPort"] as? Int == number } ? number : nil }
        guard let name = reference as? String else { return nil }
        if let number = Int(name) { return containerPortNumber(number) }
        return ports.first { $0["name"] as? String == name }?["containerPort"] as? Int
    }

    func hasContainerPort(_ reference: Any) -> Bool { containerPortNumber(reference) != nil }
}

/// The objects `kubectl kustomize` renders from a kustomization.
struct RenderedManifests {
    let text: String
    let objects: [ManifestObject]

    static func render(_ kustomization: String) throws -> RenderedManifests {
        let result = try OpsTool.kubectl.run(["kustomize", packageRoot.appendingPathComponent(kustomization).path])
        guard result.status == 0 else { throw ProcessFailure("kubectl kustomize \(kustomization): \(result.stderr)") }
        var documents = try Yams.load_all(yaml: result.stdout)
        var objects: [ManifestObject] = []
        while let document = documents.next() {
            if let object = document as? [String: Any] { objects.append(ManifestObject(object: object)) }
        }
        if let error = documents.error { throw error }
        return RenderedManifests(text: result.stdout, objects: objects)
    }

    func objects(kind: String) -> [ManifestObject] { objects.filter { $0.kind == kind } }

    var workloads: [Workload] { objects.filter { ["Deployment", "StatefulSet"].contains($0.kind) }.map(Workload.init) }

    /// The container's environment: envFrom ConfigMaps and Secrets (which must exist), then env.
    /// A value from a Secret reads as `ManifestEnvironment.fromSecret`.
    func environment(of workload: Workload) throws -> [String: String] {
        var environment: [String: String] = [:]
        for source in workload.container["envFrom"] as? [[String: Any]] ?? [] {
            if let name = (source["configMapRef"] as? [String: Any])?["name"] as? String {
                let map = try #require(objects(kind: "ConfigMap").first { $0.name == name }, "\(workload.name): ConfigMap \(name) does not exist")
                for (key, value) in map.object["data"] as? [String: Any] ?? [:] { environment[key] = "\(value)" }
            }
            if let name = (source["secretRef"] as? [String: Any])?["name"] as? String {
                let secret = try #require(objects(kind: "Secret").first { $0.name == name }, "\(workload.name): Secret \(name) does not exist")
                let keys = Array((secret.object["stringData"] as? [String: Any] ?? [:]).keys) + Array((secret.object["data"] as? [String: Any] ?? [:]).keys)
                for key in keys { environment[key] = ManifestEnvironment.fromSecret }
            }
        }
        for variable in workload.container["env"] as? [[String: Any]] ?? [] {
            guard let name = variable["name"] as? String else { continue }
            if let value = variable["value"] { environment[name] = "\(value)"; continue }
            if let reference = (variable["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any] {
                let secretName = reference["name"] as? String ?? ""
                #expect(objects(kind: "Secret").contains { $0.name == secretName }, "\(workload.name): \(name) names Secret \(secretName), which does not exist")
                environment[name] = ManifestEnvironment.fromSecret
            }
        }
        return environment
    }
}
