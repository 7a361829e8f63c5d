import ArgumentParser
import Foundation
import KBKnowledge
import KBRPC
import KBRuntime
import UKBKit

struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve the team's knowledge to a coding agent: a Model Context Protocol server on standard input and output.",
        discussion: """
            The tools of the reference MCP memory server (create_entities, create_relations, \
            add_observations, delete_entities, delete_observations, delete_relations, read_graph, \
            search_nodes, open_nodes) with the same arguments, plus semantic_search and similar. \
            Every tool works in one team (--team, else KB_TEAM, else "default"); entities it creates \
            have source auto. Needs graph-store (KB_GRAPH_STORE_ADDR); search by meaning also needs \
            the inference gateway (KB_INFERENCE_GATEWAY_ADDR) and vector-search (KB_VECTOR_SEARCH_ADDR). \
            Standard output carries the protocol alone; logs go to standard error.
            """
    )
    @Option(help: "The team (default: $KB_TEAM, then \"default\").") var team: String?

    func run() async throws {
        let source: ConfigSource
        do { source = try ConfigSource.fromProcess() } catch { fail("\(error)") }
        let team = team ?? UKBConfiguration.team(in: source) ?? UKBConfiguration.defaultTeam
        do { try KnowledgeRules.checkTeam(team, field: "--team") } catch { fail("\(error)") }
        let configuration: RPCClient.Configuration
        do { configuration = try source.clientConfiguration(for: .graphStore) } catch { fail("\(error)") }
        let graph = RPCClient(configuration: MemoryTools.graphClientConfiguration(configuration))
        let meaning: MeaningSearch?
        do {
            meaning = try MeaningSearch.fromEnvironment()
        } catch {
            FileHandle.standardError.write(Data("ukb mcp: search by meaning is not configured (\(error)); semantic_search will answer with the graph's word search\n".utf8))
            meaning = nil
        }
        do {
            try await MemoryServer.serveOnStandardStreams(MemoryTools(team: team, graph: graph, meaning: meaning))
        } catch {
            await meaning?.close()
            await graph.close()
            fail("the MCP server stopped: \(error)")
        }
        await meaning?.close()
        await graph.close()
    }
}
