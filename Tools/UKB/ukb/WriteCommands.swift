import ArgumentParser
import Foundation
import KBKnowledge
import KBKnowledgeTransfer
import KBProto
import KBRPC
import KBRuntime
import UKBKit

/// `key=value` pairs as a map; a pair without `=` fails.
func keyValues(_ pairs: [String], option: String) -> [String: String] {
    var map: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "=") else { fail("\(option) takes key=value (got \(pair))") }
        map[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    return map
}

/// Entities and relations read from standard input: one object, an array, or a whole
/// shared-memory document.
func documentFromStandardInput(kind: String) -> SharedMemoryDocument {
    let data = readStandardInput()
    guard let root = try? JSONSerialization.jsonObject(with: data) else { fail("standard input is not JSON") }
    let wrapped: Any
    if let object = root as? [String: Any], object["entities"] != nil || object["relations"] != nil {
        wrapped = object
    } else if let list = root as? [Any] {
        wrapped = [kind: list]
    } else {
        wrapped = [kind: [root]]
    }
    do {
        return try SharedMemoryDocument(json: JSONSerialization.data(withJSONObject: wrapped))
    } catch let error as KnowledgeRuleError {
        fail("standard input: \(error)")
    } catch {
        fail("standard input: \(error)")
    }
}

struct AddEntity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add or update an entity (observations merge); with no --name, JSON on standard input.",
        discussion: "JSON: {\"name\", \"entityType\", \"observations\": [...], \"significance\", \"confidence\", \"source\", \"metadata\"}, an array of them, or a shared-memory document."
    )
    @OptionGroup var common: Common
    @Option(help: "The entity's name.") var name: String?
    @Option(name: .customLong("type"), help: "The entity type, e.g. Pattern, Bug, Decision.") var entityType: String?
    @Option(name: .customLong("observation"), help: "An observation (repeatable).") var observations: [String] = []
    @Option(help: "1–10.") var significance: Int32?
    @Option(help: "In (0, 1].") var confidence: Double?
    @Option(help: "manual or auto.") var source: String?
    @Option(name: .customLong("metadata"), help: "key=value (repeatable).") var metadata: [String] = []

    func run() async throws {
        var entities: [Kb_Graph_V1_Entity]
        if let name {
            var entity = Kb_Graph_V1_Entity()
            entity.name = name
            entity.entityType = entityType ?? ""
            entity.observations = observations.map { text in .with { $0.content = text } }
            entity.significance = significance ?? 0
            entity.confidence = confidence ?? 0
            if let source {
                guard let value = Kb_Graph_V1_Source(name: source) else { fail("--source must be manual or auto (got \(source))") }
                entity.source = value
            }
            entity.metadata = keyValues(metadata, option: "--metadata")
            entities = [entity]
        } else {
            entities = documentFromStandardInput(kind: "entities").entities
            guard !entities.isEmpty else { fail("standard input holds no entity") }
        }
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = common.resolvedTeam
                $0.entities = entities
            })
            if common.json { return try printJSON(response) }
            for entity in response.entities { print("\(entity.team):\(entity.name) (\(entity.entityType)), \(entity.observations.count) observations") }
            print("created \(response.created), updated \(response.updated)")
        }
    }
}

struct AddRelation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relate two existing entities; with no --from, JSON on standard input.",
        discussion: "JSON: {\"from\", \"to\", \"relationType\", \"confidence\", \"significance\"}, an array of them, or a shared-memory document."
    )
    @OptionGroup var common: Common
    @Option(help: "The source entity.") var from: String?
    @Option(help: "The target entity.") var to: String?
    @Option(name: .customLong("type"), help: "The relation type, e.g. uses, fixes, depends_on.") var relationType: String?
    @Option(help: "In (0, 1].") var confidence: Double?
    @Option(help: "1–10.") var significance: Int32?

    func run() async throws {
        var relations: [Kb_Graph_V1_Relation]
        if let from {
            guard let to, let relationType else { fail("--from needs --to and --type") }
            relations = [.with {
                $0.from = from
                $0.to = to
                $0.relationType = relationType
                $0.confidence = confidence ?? 0
                $0.significance = significance ?? 0
            }]
        } else {
            relations = documentFromStandardInput(kind: "relations").relations
            guard !relations.isEmpty else { fail("standard input holds no relation") }
        }
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.putRelations, .with {
                $0.team = common.resolvedTeam
                $0.relations = relations
            })
            if common.json { return try printJSON(response) }
            print("created \(response.created), already present \(response.existing)")
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete entities (with their relations), or one relation with --from/--type/--to.")
    @OptionGroup var common: Common
    @Argument(help: "Entity names.") var names: [String] = []
    @Option(help: "Relation to delete: its source.") var from: String?
    @Option(name: .customLong("type"), help: "Relation to delete: its type.") var relationType: String?
    @Option(help: "Relation to delete: its target.") var to: String?

    func run() async throws {
        try await execute { client in
            if let from {
                guard let to, let relationType else { fail("--from needs --to and --type") }
                let response = try await client.call(GraphStoreMethods.deleteRelations, .with {
                    $0.team = common.resolvedTeam
                    $0.relations = [.with { $0.from = from; $0.to = to; $0.relationType = relationType }]
                })
                if common.json { return try printJSON(response) }
                guard response.deleted > 0 else { fail("no relation \(from) -[\(relationType)]-> \(to) in team \(common.resolvedTeam)") }
                print("deleted 1 relation")
                return
            }
            guard !names.isEmpty else { fail("name the entities to delete, or a relation with --from/--type/--to") }
            let response = try await client.call(GraphStoreMethods.deleteEntities, .with {
                $0.team = common.resolvedTeam
                $0.names = names
            })
            if common.json { return try printJSON(response) }
            print("deleted \(response.deletedEntities) entities and \(response.deletedRelations) relations")
            if response.deletedEntities < names.count { fail("\(names.count - Int(response.deletedEntities)) of the names were not found in team \(common.resolvedTeam)") }
        }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a team's graph (all teams without --team/KB_TEAM) to a shared-memory JSON file ('-' for stdout).")
    @OptionGroup var common: Common
    @Argument(help: "The file to write.") var file: String
    @Option(help: "Items per request.") var batchSize = 1000

    func run() async throws {
        try await execute { client in
            var teams: [String]
            if let team = common.explicitTeam {
                teams = [team]
            } else {
                teams = try await client.call(GraphStoreMethods.listTeams, .init()).teams.map(\.team)
            }
            let bar = ProgressBar(label: "exporting", enabled: file != "-" && isatty(STDERR_FILENO) == 1)
            let start = Date()
            let document = try await KnowledgeTransfer(client: client, batchSize: batchSize).export(teams: teams) { done, total in bar.update(done, of: total) }
            bar.finish()
            let data = document.jsonData()
            if file == "-" {
                FileHandle.standardOutput.write(data)
                FileHandle.standardOutput.write(Data("\n".utf8))
                return
            }
            let url = URL(fileURLWithPath: absolutePath(file))
            do {
                try data.write(to: url, options: .atomic)
            } catch {
                fail("cannot write \(url.path): \(error.localizedDescription)")
            }
            let seconds = String(format: "%.2f", Date().timeIntervalSince(start))
            print("exported \(document.entities.count) entities and \(document.relations.count) relations from \(teams.isEmpty ? "no teams" : teams.joined(separator: ", ")) to \(url.path) in \(seconds) s")
        }
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a shared-memory JSON file into the graph store.",
        discussion: "The whole file is checked first (entries, and that every relation's ends exist in the file or the store); a bad file changes nothing. Team: --team/KB_TEAM, else each entry's team, else the file's metadata.team, else the name shared-memory-TEAM.json, else \"default\"."
    )
    @OptionGroup var common: Common
    @Argument(help: "The file to read.") var file: String
    @Option(help: "Items per request.") var batchSize = 1000

    func run() async throws {
        let url = URL(fileURLWithPath: absolutePath(file))
        guard let data = FileManager.default.contents(atPath: url.path) else { fail("cannot read \(url.path)") }
        var document: SharedMemoryDocument
        do {
            document = try SharedMemoryDocument(json: data)
        } catch {
            fail("\(file): \(error); nothing was imported")
        }
        let base = url.deletingPathExtension().lastPathComponent
        var fallback = "default"
        if base.hasPrefix("shared-memory-"), base.count > 14 { fallback = String(base.dropFirst(14)) }
        if (try? KnowledgeRules.checkTeam(fallback)) == nil { fallback = "default" }
        KnowledgeTransfer.assignTeams(&document, override: common.explicitTeam, fallback: fallback)
        if let team = common.explicitTeam {
            do { try KnowledgeRules.checkTeam(team, field: "--team") } catch { fail("\(error)") }
        }
        let finalDocument = document
        try await execute { client in
            let transfer = KnowledgeTransfer(client: client, batchSize: max(1, batchSize))
            do {
                try await transfer.checkRelationEnds(finalDocument)
            } catch let error as KnowledgeTransfer.ImportRejected {
                fail("\(file): \(error); nothing was imported")
            }
            let bar = ProgressBar(label: "importing")
            let start = Date()
            let summary = try await transfer.importDocument(finalDocument) { done, total in bar.update(done, of: total) }
            bar.finish()
            let seconds = Date().timeIntervalSince(start)
            print("imported \(finalDocument.entities.count) entities (\(summary.entitiesCreated) new, \(summary.entitiesUpdated) updated) and \(finalDocument.relations.count) relations (\(summary.relationsCreated) new, \(summary.relationsExisting) already present) into \(summary.teams.joined(separator: ", ")) in \(String(format: "%.2f", seconds)) s")
        }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Online backup: the store writes a consistent snapshot to DIR, a new folder inside its backup folder (KB_BACKUP_DIR).")
    @OptionGroup var common: Common
    @Argument(help: "The folder to create: a relative path is taken inside the store's backup folder (KB_BACKUP_DIR); an absolute one must lie inside it.") var directory: String

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.backup, .with { $0.directory = directory }, options: CallOptions(timeout: .seconds(3600)))
            if common.json { return try printJSON(response) }
            print("backed up \(response.entities) entities and \(response.relations) relations to \(response.directory) (\(response.bytes) bytes)")
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that every index of the store agrees with its records; exit 1 on any problem.")
    @OptionGroup var common: Common

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.verify, .init(), options: CallOptions(timeout: .seconds(3600)))
            if common.json { try printJSON(response) } else {
                print(response.ok ? "OK: \(response.entities) entities, \(response.relations) relations, every index consistent" : "PROBLEMS in \(response.entities) entities, \(response.relations) relations:")
                for problem in response.problems { print("  \(problem)") }
            }
            if !response.ok { throw ExitCode(1) }
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the store with a backup. The graph store must be stopped (kb down); the store's own `graph-store restore` does the work."
    )
    @OptionGroup var common: Common
    @Argument(help: "A folder written by `ukb backup`.") var directory: String

    func run() async throws {
        var configuration = try ConfigSource.fromProcess().clientConfiguration(for: .graphStore)
        configuration.connections = 1
        configuration.connectTimeout = .seconds(1)
        let client = RPCClient(configuration: configuration)
        let running = (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(2)))) != nil
        await client.close()
        if running {
            fail("graph-store is running at \(configuration.host):\(configuration.port); stop it first (kb down), restore, then start it again")
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("graph-store")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else { fail("graph-store is not installed beside ukb (\(executable.path))") }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["restore", absolutePath(directory)]
        do { try process.run() } catch { fail("cannot run \(executable.path): \(error)") }
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw ExitCode(process.terminationStatus) }
    }
}
