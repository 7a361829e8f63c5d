/// The methods of `kb.budget.v1.Budget`.
public enum BudgetMethods {
    /// The service's full name on the wire.
    public static let service = "kb.budget.v1.Budget"
    public static let recordCost = RPCMethod<Kb_Budget_V1_RecordCostRequest, Kb_Budget_V1_RecordCostResponse>(service: service, method: "RecordCost")
    public static let recordCosts = RPCMethod<Kb_Budget_V1_RecordCostsRequest, Kb_Budget_V1_RecordCostsResponse>(service: service, method: "RecordCosts")
    public static let listEvents = RPCMethod<Kb_Budget_V1_ListEventsRequest, Kb_Budget_V1_ListEventsResponse>(service: service, method: "ListEvents")
    public static let getStatus = RPCMethod<Kb_Budget_V1_GetStatusRequest, Kb_Budget_V1_BudgetStatus>(service: service, method: "GetStatus")
    public static let admit = RPCMethod<Kb_Budget_V1_AdmitRequest, Kb_Budget_V1_AdmitResponse>(service: service, method: "Admit")
    public static let releaseReservation = RPCMethod<Kb_Budget_V1_ReleaseReservationRequest, Kb_Budget_V1_ReleaseReservationResponse>(service: service, method: "ReleaseReservation")
    public static let getReport = RPCMethod<Kb_Budget_V1_GetReportRequest, Kb_Budget_V1_Report>(service: service, method: "GetReport")
    public static let resetPeriod = RPCMethod<Kb_Budget_V1_ResetPeriodRequest, Kb_Budget_V1_ResetPeriodResponse>(service: service, method: "ResetPeriod")
    public static let setLimit = RPCMethod<Kb_Budget_V1_SetLimitRequest, Kb_Budget_V1_BudgetStatus>(service: service, method: "SetLimit")
    public static let freeze = RPCMethod<Kb_Budget_V1_FreezeRequest, Kb_Budget_V1_BudgetStatus>(service: service, method: "Freeze")
    public static let unfreeze = RPCMethod<Kb_Budget_V1_UnfreezeRequest, Kb_Budget_V1_BudgetStatus>(service: service, method: "Unfreeze")
    public static let backup = RPCMethod<Kb_Budget_V1_BackupRequest, Kb_Budget_V1_BackupResponse>(service: service, method: "Backup")
    public static let verify = RPCMethod<Kb_Budget_V1_VerifyRequest, Kb_Budget_V1_VerifyResponse>(service: service, method: "Verify")
    public static let listPrices = RPCMethod<Kb_Budget_V1_ListPricesRequest, Kb_Budget_V1_ListPricesResponse>(service: service, method: "ListPrices")
}
