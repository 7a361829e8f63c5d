// ukb: capture, find and move knowledge in the graph store. A client of graph-store over RPC;
// it never opens the store's files.
import ArgumentParser
import Foundation
import KBKnowledge
import KBProto
import KBRPC
import KBRuntime
import SwiftProtobuf
import UKBKit

@main
struct UKB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ukb",
        abstract: "Capture, find and move team knowledge in the graph store.",
        discussion: "The store is found at KB_GRAPH_STORE_ADDR (default 127.0.0.1:7101) with KB_AUTH_TOKEN; --team defaults to KB_TEAM, then \"default\".",
        subcommands: [
            Status.self, Query.self, Teams.self, Search.self, Similar.self, Show.self, Neighbors.self, Path.self,
            AddEntity.self, AddRelation.self, Delete.self,
            MCPCommand.self, Changes.self, Learn.self, Trajectory.self, Export.self, Import.self, Backup.self, Verify.self, Restore.self,
        ]
    )
}

/// Options every command takes.
struct Common: ParsableArguments {
    @Option(help: "The team (default: $KB_TEAM, then \"default\").")
    var team: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    /// The team named by --team or KB_TEAM, if any.
    var explicitTeam: String? { team ?? (try? ConfigSource.fromProcess()).flatMap(UKBConfiguration.team(in:)) }
    /// The team to use.
    var resolvedTeam: String { explicitTeam ?? UKBConfiguration.defaultTeam }
}

/// Runs a command body against graph-store: any failure becomes one line on stderr and exit status 1.
func execute(_ body: (RPCClient) async throws -> Void) async throws {
    try await CommandLineClient.run(.graphStore, tool: "ukb", passThrough: { $0 is ExitCode }, body)
}

/// Prints `ukb: reason` on stderr and exits 1.
func fail(_ reason: String) -> Never {
    CommandLineClient.fail("ukb", reason)
}

/// Prints a message as JSON (the proto3 JSON mapping, field names as in the .proto files).
func printJSON(_ message: some SwiftProtobuf.Message) throws {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    print(try message.jsonString(options: options))
}

/// Reads a JSON object from standard input.
func readStandardInput() -> Data {
    FileHandle.standardInput.readDataToEndOfFile()
}

/// A path made absolute against the working directory (the server resolves none).
func absolutePath(_ path: String) -> String {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)).standardizedFileURL.path
}
