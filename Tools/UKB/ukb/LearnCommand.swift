import ArgumentParser
import Foundation
import KBKnowledge
import KBLearning
import KBProto
import KBRPC
import KBRuntime
import KBSessions
import Logging

/// `ukb learn PATH… [--watch]`: knowledge extracted from coding-session transcripts into the
/// team's graph, through the inference gateway.
struct Learn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Learn from coding sessions: extract the knowledge in transcripts into the team's graph.",
        discussion: """
        PATH: files or folders (searched for .jsonl Claude Code logs, .md live-session logs, .txt transcripts). Each exchange is \
        one extraction call through the inference gateway (KB_INFERENCE_GATEWAY_ADDR); items are deduplicated by meaning against \
        the team's knowledge (vector-search at KB_VECTOR_SEARCH_ADDR) and written to the graph store (KB_GRAPH_STORE_ADDR) with \
        source auto. How far each file was read is kept in the state file, so running again learns only what is new; --watch \
        follows the files as they grow until interrupted. When no provider answers, exchanges are queued in the state file and \
        learned by a later run.
        """
    )
    @OptionGroup var common: Common
    @Argument(help: "Transcript files or folders.") var paths: [String]
    @Flag(help: "Keep following the files (and new files in the folders) as they grow, until interrupted.") var watch = false
    @Option(help: "Seconds a followed file must be quiet before its last exchange counts as finished.") var idle = 30
    @Option(help: "Seconds between looks at the files when following.") var interval = 1.0
    @Option(help: "Items less sure than this (0–1) are skipped.") var minConfidence = 0.6
    @Option(help: "Cosine similarity (0–1) at or above which an item merges into the entity it matches.") var mergeThreshold: Float = 0.95
    @Flag(help: "Never call a paid provider.") var localOnly = false
    @Option(help: "Seconds one extraction call may take (a slow local model needs more); past it the exchange is queued for a later try.") var timeout = 120
    @Option(help: "The state file (default: KB_DATA_DIR/learn/<team>.json).") var state: String?
    @Flag(help: "Forget the state's positions and read every file from its start (queued exchanges are kept).") var fromStart = false
    @Option(help: "With --watch: serve /health and /metrics (extraction counts, latency) on this port, on KB_LEARNER_HOST or KB_BIND_HOST (0: any free port). `kb up` passes KB_LEARNER_PORT (9106).") var adminPort: Int?

    func validate() throws {
        guard (0...1).contains(minConfidence) else { throw ValidationError("--min-confidence must be 0–1") }
        guard (0...1).contains(mergeThreshold) else { throw ValidationError("--merge-threshold must be 0–1") }
        guard (0...86_400).contains(idle) else { throw ValidationError("--idle must be 0–86400 seconds") }
        guard (5...3600).contains(timeout) else { throw ValidationError("--timeout must be 5–3600 seconds") }
        guard interval >= 0.05, interval <= 3600 else { throw ValidationError("--interval must be 0.05–3600 seconds") }
        if let adminPort {
            guard watch else { throw ValidationError("--admin-port serves a learner that keeps running: it needs --watch") }
            guard (0...65_535).contains(adminPort) else { throw ValidationError("--admin-port must be 0–65535") }
        }
    }

    func run() async throws {
        let team = common.resolvedTeam
        do { try KnowledgeRules.checkTeam(team) } catch { fail("\(error)") }
        let source = try ConfigSource.fromProcess()
        let dataDirectory = try source.value(of: ServiceConfiguration.Keys.dataDirectory)
        let stateURL = URL(fileURLWithPath: state ?? "\(dataDirectory)/learn/\(team).json")
        // One learner per state file: a second would learn the same exchanges again, and the
        // last to save would drop the other's queue.
        let lockPath = stateURL.path + ".lock"
        try? FileManager.default.createDirectory(at: stateURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        let lock = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard lock >= 0 else { fail("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            fail("another `ukb learn` is using \(stateURL.path) (team \(team)); stop it first, or give this one its own --state")
        }
        defer { close(lock) }
        // Read under the lock: what a learner that just finished saved is seen.
        var saved: LearnState
        do {
            saved = try LearnState.load(stateURL, team: team)
        } catch {
            fail("\(error)")
        }
        if fromStart { saved.files = [:] }
        let graph = try CommandLineClient.makeClient(.graphStore, source: source)
        let gateway = try CommandLineClient.makeClient(.inferenceGateway, source: source)
        let vectors = try CommandLineClient.makeClient(.vectorSearch, source: source)
        for (name, peer) in [("graph-store", graph), ("inference-gateway", gateway), ("vector-search", vectors)] {
            do {
                _ = try await peer.call(HealthMethods.check, .init(), options: CallOptions(timeout: .milliseconds(1500)))
            } catch {
                fail("\(name) is not reachable at \(peer.configuration.host):\(peer.configuration.port) (\(error)); start the system with `kb up`")
            }
        }
        let learner = Learner(graph: graph, gateway: gateway, vectors: vectors, configuration: .init(
            team: team, minConfidence: minConfidence, mergeThreshold: mergeThreshold, localOnly: localOnly, timeout: .seconds(timeout)
        ))
        let run = LearnRun(learner: learner, stateURL: stateURL, state: saved)
        let bar = ProgressBar(label: "learning")
        let progress: @Sendable (LearnSummary) -> Void = { summary in
            bar.update(summary.exchanges, of: nil)
        }
        if watch { Self.stopOnSignals() }
        let stop: @Sendable () -> Bool = { Self.stopping.value }
        let status = LearnerStatus()
        let admin = try adminPort.map { port in try Self.serveAdmin(port: port, source: source, run: run, status: status) }
        defer { admin?.cancel() }
        do {
            repeat {
                do {
                    // Following: a folder that does not exist yet (no session recorded there so
                    // far) is waited for, not a reason to stop; the health component says so.
                    let present = watch ? paths.filter { FileManager.default.fileExists(atPath: $0) } : paths
                    status.waiting(for: paths.filter { !present.contains($0) })
                    let files = try SessionFiles.list(present)
                    try await run.pass(files, idleMs: watch ? Int64(idle) * 1000 : 0, queueRetryMs: watch ? 60_000 : 0, shouldStop: stop, progress: progress)
                    status.passed(files: files.count)
                } catch let error as RPCError where watch && [.unavailable, .deadlineExceeded, .cancelled].contains(error.code) {
                    // Following: a service restarting is waited for, not a reason to stop.
                    status.failed("\(error.code.name): \(error.message)")
                    FileHandle.standardError.write(Data("ukb learn: \(error.code.name): \(error.message); trying again in 5 s\n".utf8))
                    for _ in 0..<50 where !stop() { try? await Task.sleep(for: .milliseconds(100)) }
                    continue
                }
                if watch && !stop() {
                    try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                }
            } while watch && !stop()
        } catch let error as RPCError {
            bar.finish()
            await closeAll(graph, gateway, vectors)
            fail("\(error.code.name): \(error.message) (learned up to here; running again resumes after the last exchange learned)")
        } catch {
            bar.finish()
            await closeAll(graph, gateway, vectors)
            fail("\(error)")
        }
        bar.finish()
        let summary = await run.summary
        let queuedTotal = await run.state.queued.count
        await closeAll(graph, gateway, vectors)
        if common.json {
            let object: [String: Any] = [
                "team": team, "files": summary.files, "exchanges": summary.exchanges,
                "itemsExtracted": summary.itemsExtracted, "created": summary.itemsCreated, "merged": summary.itemsMerged,
                "skippedLowConfidence": summary.skippedLowConfidence, "failed": summary.failed, "queued": summary.queued,
                "queuedTotal": queuedTotal, "dequeued": summary.dequeued, "unreadableLines": summary.unreadableLines,
                "costUSD": summary.costUSD, "intents": summary.intents, "state": stateURL.path,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(Self.describe(summary, queuedTotal: queuedTotal, team: team))
        }
    }

    /// The learner's admin port: `/health` (component `learner`: files followed, exchanges
    /// queued, the last problem reaching a service) and `/metrics`.
    static func serveAdmin(port: Int, source: ConfigSource, run: LearnRun, status: LearnerStatus) throws -> Task<Void, any Error> {
        let configuration = try ServiceConfiguration(descriptor: .sessionLearner, source: source)
        MetricsRegistry.bootstrap()
        let health = HealthRegistry(service: ServiceDescriptor.sessionLearner.name, version: configuration.version)
        health.register("learner") {
            let queued = await run.state.queued.count
            let reading = status.reading
            var details: [String: HealthDetail] = ["files": .integer(Int64(reading.files)), "queued_exchanges": .integer(Int64(queued)), "passes": .integer(Int64(reading.passes))]
            if let problem = reading.problem {
                details["reason"] = .string("cannot reach a service: \(problem)")
                return ComponentHealth(.degraded, details)
            }
            if !reading.missing.isEmpty {
                details["reason"] = .string("waiting for folders that do not exist yet: \(reading.missing.joined(separator: ", "))")
                return ComponentHealth(.degraded, details)
            }
            return ComponentHealth(.healthy, details)
        }
        var logger = Logger(label: ServiceDescriptor.sessionLearner.name)
        logger.logLevel = .warning
        return AdminServer.serveInBackground(
            health: health, host: configuration.host, port: port, allowedHosts: configuration.allowedHosts, logger: logger
        ) { bound in
            FileHandle.standardError.write(Data("ukb learn: /health and /metrics on http://\(configuration.host):\(bound)\n".utf8))
        } onFailure: { error in
            // A learner asked to serve its admin port and unable to is not healthy: `kb up` sees it exit.
            FileHandle.standardError.write(Data("ukb learn: cannot serve /health and /metrics on \(configuration.host):\(port): \(error)\n".utf8))
            Glibc.exit(1)
        }
    }

    func closeAll(_ clients: RPCClient...) async {
        for client in clients { await client.close() }
    }

    static func describe(_ summary: LearnSummary, queuedTotal: Int, team: String) -> String {
        var lines = [
            "Learned from \(summary.exchanges) exchange\(summary.exchanges == 1 ? "" : "s") in \(summary.files) new file\(summary.files == 1 ? "" : "s") (team \(team)):",
            "  items extracted: \(summary.itemsExtracted) — \(summary.itemsCreated) new, \(summary.itemsMerged) merged into known knowledge, \(summary.skippedLowConfidence) skipped (below the confidence floor)",
            String(format: "  cost: $%.4f", summary.costUSD),
        ]
        if summary.dequeued > 0 { lines.append("  queued exchanges of earlier runs learned: \(summary.dequeued)") }
        if !summary.failed.isEmpty {
            lines.append("  failed exchanges (invalid model output twice): \(summary.failed.count)")
            lines += summary.failed.prefix(10).map { "    \($0)" }
        }
        if !summary.intents.isEmpty {
            lines.append("  intents: " + summary.intents.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if summary.queued > 0 || queuedTotal > 0 {
            lines.append("  queued (no provider answered): \(summary.queued) now, \(queuedTotal) waiting in all")
        }
        if summary.unreadableLines > 0 { lines.append("  unreadable lines skipped: \(summary.unreadableLines)") }
        return lines.joined(separator: "\n")
    }

    /// SIGINT / SIGTERM end a --watch after the exchange in hand (the state is saved after each).
    static let stopping = StopFlag()
    static func stopOnSignals() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stopping.set() }
            source.resume()
            signalSources.append(source)
        }
    }
    nonisolated(unsafe) static var signalSources: [any DispatchSourceSignal] = []
}

/// How the following learner is doing, for its health component.
final class LearnerStatus: @unchecked Sendable {
    struct Reading { var files = 0, passes = 0; var problem: String?; var missing: [String] = [] }
    private let lock = NSLock()
    private var current = Reading()
    var reading: Reading { lock.withLock { current } }
    func passed(files: Int) { lock.withLock { current.files = files; current.passes += 1; current.problem = nil } }
    func failed(_ problem: String) { lock.withLock { current.problem = problem } }
    func waiting(for missing: [String]) { lock.withLock { current.missing = missing } }
}

/// A flag set from a signal handler's queue and read by the loop.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    var value: Bool { lock.withLock { stopped } }
    func set() { lock.withLock { stopped = true } }
}
