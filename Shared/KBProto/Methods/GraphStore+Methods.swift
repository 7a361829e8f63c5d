/// The methods of `kb.graph.v1.GraphStore`.
public enum GraphStoreMethods {
    /// The service's full name on the wire.
    public static let service = "kb.graph.v1.GraphStore"
    public static let putEntities = RPCMethod<Kb_Graph_V1_PutEntitiesRequest, Kb_Graph_V1_PutEntitiesResponse>(service: service, method: "PutEntities")
    public static let deleteEntities = RPCMethod<Kb_Graph_V1_DeleteEntitiesRequest, Kb_Graph_V1_DeleteEntitiesResponse>(service: service, method: "DeleteEntities")
    public static let putRelations = RPCMethod<Kb_Graph_V1_PutRelationsRequest, Kb_Graph_V1_PutRelationsResponse>(service: service, method: "PutRelations")
    public static let deleteRelations = RPCMethod<Kb_Graph_V1_DeleteRelationsRequest, Kb_Graph_V1_DeleteRelationsResponse>(service: service, method: "DeleteRelations")
    public static let deleteObservations = RPCMethod<Kb_Graph_V1_DeleteObservationsRequest, Kb_Graph_V1_DeleteObservationsResponse>(service: service, method: "DeleteObservations")
    public static let getEntity = RPCMethod<Kb_Graph_V1_GetEntityRequest, Kb_Graph_V1_GetEntityResponse>(service: service, method: "GetEntity")
    public static let queryEntities = RPCMethod<Kb_Graph_V1_QueryEntitiesRequest, Kb_Graph_V1_QueryEntitiesResponse>(service: service, method: "QueryEntities")
    public static let queryRelations = RPCMethod<Kb_Graph_V1_QueryRelationsRequest, Kb_Graph_V1_QueryRelationsResponse>(service: service, method: "QueryRelations")
    public static let neighbors = RPCMethod<Kb_Graph_V1_NeighborsRequest, Kb_Graph_V1_NeighborsResponse>(service: service, method: "Neighbors")
    public static let shortestPath = RPCMethod<Kb_Graph_V1_ShortestPathRequest, Kb_Graph_V1_ShortestPathResponse>(service: service, method: "ShortestPath")
    public static let subgraph = RPCMethod<Kb_Graph_V1_SubgraphRequest, Kb_Graph_V1_SubgraphResponse>(service: service, method: "Subgraph")
    public static let listTeams = RPCMethod<Kb_Graph_V1_ListTeamsRequest, Kb_Graph_V1_ListTeamsResponse>(service: service, method: "ListTeams")
    public static let getStats = RPCMethod<Kb_Graph_V1_GetStatsRequest, Kb_Graph_V1_GetStatsResponse>(service: service, method: "GetStats")
    public static let backup = RPCMethod<Kb_Graph_V1_BackupRequest, Kb_Graph_V1_BackupResponse>(service: service, method: "Backup")
    public static let verify = RPCMethod<Kb_Graph_V1_VerifyRequest, Kb_Graph_V1_VerifyResponse>(service: service, method: "Verify")
    public static let changes = RPCMethod<Kb_Graph_V1_ChangesRequest, Kb_Graph_V1_ChangesResponse>(service: service, method: "Changes")
}
