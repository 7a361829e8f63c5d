/// The methods of `kb.vector.v1.VectorSearch`.
public enum VectorSearchMethods {
    /// The service's full name on the wire.
    public static let service = "kb.vector.v1.VectorSearch"
    public static let createCollection = RPCMethod<Kb_Vector_V1_CreateCollectionRequest, Kb_Vector_V1_CollectionInfo>(service: service, method: "CreateCollection")
    public static let listCollections = RPCMethod<Kb_Vector_V1_ListCollectionsRequest, Kb_Vector_V1_ListCollectionsResponse>(service: service, method: "ListCollections")
    public static let describeCollection = RPCMethod<Kb_Vector_V1_DescribeCollectionRequest, Kb_Vector_V1_CollectionInfo>(service: service, method: "DescribeCollection")
    public static let deleteCollection = RPCMethod<Kb_Vector_V1_DeleteCollectionRequest, Kb_Vector_V1_DeleteCollectionResponse>(service: service, method: "DeleteCollection")
    public static let upsertPoints = RPCMethod<Kb_Vector_V1_UpsertPointsRequest, Kb_Vector_V1_UpsertPointsResponse>(service: service, method: "UpsertPoints")
    public static let getPoints = RPCMethod<Kb_Vector_V1_GetPointsRequest, Kb_Vector_V1_GetPointsResponse>(service: service, method: "GetPoints")
    public static let deletePoints = RPCMethod<Kb_Vector_V1_DeletePointsRequest, Kb_Vector_V1_DeletePointsResponse>(service: service, method: "DeletePoints")
    public static let search = RPCMethod<Kb_Vector_V1_SearchRequest, Kb_Vector_V1_SearchResponse>(service: service, method: "Search")
    public static let searchBatch = RPCMethod<Kb_Vector_V1_SearchBatchRequest, Kb_Vector_V1_SearchBatchResponse>(service: service, method: "SearchBatch")
    public static let snapshotCollection = RPCMethod<Kb_Vector_V1_SnapshotCollectionRequest, Kb_Vector_V1_SnapshotCollectionResponse>(service: service, method: "SnapshotCollection")
    public static let restoreCollection = RPCMethod<Kb_Vector_V1_RestoreCollectionRequest, Kb_Vector_V1_CollectionInfo>(service: service, method: "RestoreCollection")
    public static let rebuildIndex = RPCMethod<Kb_Vector_V1_RebuildIndexRequest, Kb_Vector_V1_CollectionInfo>(service: service, method: "RebuildIndex")
}
