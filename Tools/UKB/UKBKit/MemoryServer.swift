import Foundation
import Logging
import MCP

/// `ukb mcp`: a Model Context Protocol server on standard input and output whose tools are
/// `MemoryTools`. Standard output carries the protocol alone; logs go to standard error.
public enum MemoryServer {
    /// The server's name in the MCP handshake.
    public static let name = "ukb-memory"
    /// The server's version in the MCP handshake.
    public static let version = "1.0.0"

    /// Serves `tools` on standard input and output until the client closes standard input.
    /// Sends every log (this process's, the MCP kit's) to standard error at `logLevel`.
    public static func serveOnStandardStreams(_ tools: MemoryTools, logLevel: Logger.Level = .notice) async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "ukb.mcp")
        let server = await makeServer(tools)
        let transport = StdioTransport(logger: logger)
        try await server.start(transport: transport)
        logger.notice("ukb mcp: serving team \(tools.team) on stdio")
        await server.waitUntilCompleted()
        await server.stop()
    }

    /// An MCP server answering `tools/list` with `definitions` and `tools/call` with `tools`.
    public static func makeServer(_ tools: MemoryTools) async -> Server {
        let server = Server(
            name: name,
            version: version,
            instructions: "The team's knowledge graph (team \(tools.team)): entities with observations and typed relations. search_nodes matches words; semantic_search and similar find by meaning.",
            capabilities: .init(tools: .init(listChanged: false))
        )
        _ = await server.withMethodHandler(ListTools.self) { _ in ListTools.Result(tools: definitions) }
        _ = await server.withMethodHandler(CallTool.self) { parameters in
            await tools.call(parameters.name, arguments: parameters.arguments)
        }
        return server
    }

    // MARK: Tool definitions (the reference server's schemas, plus search by meaning)

    private static let entitySchema: Value = .object([
        "type": "object",
        "properties": .object([
            "name": .object(["type": "string", "description": "The name of the entity"]),
            "entityType": .object(["type": "string", "description": "The type of the entity"]),
            "observations": .object(["type": "array", "items": .object(["type": "string"]), "description": "An array of observation contents associated with the entity"]),
        ]),
        "required": ["name", "entityType", "observations"],
        "additionalProperties": false,
    ])

    private static let relationSchema: Value = .object([
        "type": "object",
        "properties": .object([
            "from": .object(["type": "string", "description": "The name of the entity where the relation starts"]),
            "to": .object(["type": "string", "description": "The name of the entity where the relation ends"]),
            "relationType": .object(["type": "string", "description": "The type of the relation"]),
        ]),
        "required": ["from", "to", "relationType"],
        "additionalProperties": false,
    ])

    private static func object(_ properties: [String: Value], required: [String]) -> Value {
        .object(["type": "object", "properties": .object(properties), "required": .array(required.map(Value.string))])
    }

    private static func strings(_ description: String) -> Value {
        .object(["type": "array", "items": .object(["type": "string"]), "description": .string(description)])
    }

    private static let graphOutput = object(["entities": .object(["type": "array", "items": entitySchema]), "relations": .object(["type": "array", "items": relationSchema])], required: ["entities", "relations"])
    private static let messageOutput = object(["success": .object(["type": "boolean"]), "message": .object(["type": "string"])], required: ["success", "message"])
    private static let searchOutput = object([
        "entities": .object(["type": "array", "items": .object(["type": "object"]), "description": "name, entityType, observations and score, best first"]),
        "mode": .object(["type": "string", "description": "hybrid or semantic; keyword when degraded"]),
        "degraded": .object(["type": "boolean", "description": "true when search by meaning could not run and the graph's word search answered"]),
        "reason": .object(["type": "string"]),
    ], required: ["entities", "mode", "degraded"])

    private static let limit: Value = .object(["type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many entities (default 10)"])

    private static func hints(readOnly: Bool, destructive: Bool, idempotent: Bool, title: String) -> Tool.Annotations {
        Tool.Annotations(title: title, readOnlyHint: readOnly, destructiveHint: destructive, idempotentHint: idempotent, openWorldHint: false)
    }

    /// The eleven tools, in `MemoryTools.names` order.
    public static let definitions: [Tool] = [
        Tool(name: "create_entities", title: "Create Entities", description: "Create multiple new entities in the knowledge graph",
             inputSchema: object(["entities": .object(["type": "array", "items": entitySchema])], required: ["entities"]),
             annotations: hints(readOnly: false, destructive: false, idempotent: false, title: "Create Entities"),
             outputSchema: object(["entities": .object(["type": "array", "items": entitySchema])], required: ["entities"])),
        Tool(name: "create_relations", title: "Create Relations", description: "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice",
             inputSchema: object(["relations": .object(["type": "array", "items": relationSchema])], required: ["relations"]),
             annotations: hints(readOnly: false, destructive: false, idempotent: false, title: "Create Relations"),
             outputSchema: object(["relations": .object(["type": "array", "items": relationSchema])], required: ["relations"])),
        Tool(name: "add_observations", title: "Add Observations", description: "Add new observations to existing entities in the knowledge graph",
             inputSchema: object(["observations": .object(["type": "array", "items": object([
                 "entityName": .object(["type": "string", "description": "The name of the entity to add the observations to"]),
                 "contents": strings("An array of observation contents to add"),
             ], required: ["entityName", "contents"])])], required: ["observations"]),
             annotations: hints(readOnly: false, destructive: false, idempotent: false, title: "Add Observations"),
             outputSchema: object(["results": .object(["type": "array", "items": object([
                 "entityName": .object(["type": "string"]), "addedObservations": .object(["type": "array", "items": .object(["type": "string"])]),
             ], required: ["entityName", "addedObservations"])])], required: ["results"])),
        Tool(name: "delete_entities", title: "Delete Entities", description: "Delete multiple entities and their associated relations from the knowledge graph",
             inputSchema: object(["entityNames": strings("An array of entity names to delete")], required: ["entityNames"]),
             annotations: hints(readOnly: false, destructive: true, idempotent: true, title: "Delete Entities"),
             outputSchema: messageOutput),
        Tool(name: "delete_observations", title: "Delete Observations", description: "Delete specific observations from entities in the knowledge graph",
             inputSchema: object(["deletions": .object(["type": "array", "items": object([
                 "entityName": .object(["type": "string", "description": "The name of the entity containing the observations"]),
                 "observations": strings("An array of observations to delete"),
             ], required: ["entityName", "observations"])])], required: ["deletions"]),
             annotations: hints(readOnly: false, destructive: true, idempotent: true, title: "Delete Observations"),
             outputSchema: messageOutput),
        Tool(name: "delete_relations", title: "Delete Relations", description: "Delete multiple relations from the knowledge graph",
             inputSchema: object(["relations": .object(["type": "array", "items": relationSchema, "description": "An array of relations to delete"])], required: ["relations"]),
             annotations: hints(readOnly: false, destructive: true, idempotent: true, title: "Delete Relations"),
             outputSchema: messageOutput),
        Tool(name: "read_graph", title: "Read Graph", description: "Read the entire knowledge graph",
             inputSchema: object([:], required: []),
             annotations: hints(readOnly: true, destructive: false, idempotent: true, title: "Read Graph"),
             outputSchema: graphOutput),
        Tool(name: "search_nodes", title: "Search Nodes", description: "Search for nodes in the knowledge graph based on a query",
             inputSchema: object(["query": .object(["type": "string", "maxLength": .int(MemoryTools.maxQueryLength), "description": "The search query to match against entity names, types, and observation content"])], required: ["query"]),
             annotations: hints(readOnly: true, destructive: false, idempotent: true, title: "Search Nodes"),
             outputSchema: graphOutput),
        Tool(name: "open_nodes", title: "Open Nodes", description: "Open specific nodes in the knowledge graph by their names",
             inputSchema: object(["names": strings("An array of entity names to retrieve")], required: ["names"]),
             annotations: hints(readOnly: true, destructive: false, idempotent: true, title: "Open Nodes"),
             outputSchema: graphOutput),
        Tool(name: "semantic_search", title: "Semantic Search",
             description: "Find entities by meaning, not only by shared words (hybrid: vector similarity 0.7 + BM25 0.3), best first. When search by meaning is unavailable the graph's word search answers and the result says degraded",
             inputSchema: object([
                 "query": .object(["type": "string", "maxLength": .int(MemoryTools.maxQueryLength), "description": "What to find, in plain words"]),
                 "limit": limit,
                 "entityTypes": strings("Only entities of these types (optional)"),
             ], required: ["query"]),
             annotations: hints(readOnly: true, destructive: false, idempotent: true, title: "Semantic Search"),
             outputSchema: searchOutput),
        Tool(name: "similar", title: "Similar Entities", description: "The entities nearest in meaning to an entity, best first (not the entity itself)",
             inputSchema: object([
                 "name": .object(["type": "string", "description": "The name of the entity"]),
                 "limit": limit,
             ], required: ["name"]),
             annotations: hints(readOnly: true, destructive: false, idempotent: true, title: "Similar Entities"),
             outputSchema: searchOutput),
    ]
}
