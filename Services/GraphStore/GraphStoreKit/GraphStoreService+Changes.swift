import KBKnowledge
import KBProto
import KBRPC

/// The `Changes` method: the change feed, long-polled.
///
/// Team scoping follows the rest of the service: a request names the teams it reads, and reads
/// across every team only when it says so (`all_teams`, as the indexer and VKB with no team
/// named do; GetStats and ListTeams are the other all-team reads). With `KB_AUTH_TOKEN` set,
/// every caller holds the one token, so naming teams is the caller's scoping, as in QueryEntities.
extension GraphStoreService {
    static func changes(_ request: Kb_Graph_V1_ChangesRequest, in store: GraphStore, context: RPCContext) async throws -> Kb_Graph_V1_ChangesResponse {
        let scope: FeedScope
        if request.allTeams {
            guard request.teams.isEmpty else {
                throw RPCError.invalidArgument(field: "teams", reason: .inconsistent, "must be empty with all_teams (got \(request.teams.count) teams)")
            }
            scope = .allTeams
        } else {
            scope = .teams(Set(try mapped { try GraphStore.teams(request.teams) }.map { Array($0.utf8) }))
        }
        guard request.afterSeq >= 0 else {
            throw RPCError.invalidArgument(field: "after_seq", reason: .outOfRange, "must be 0 (from the first change) or a sequence number of an earlier answer (got \(request.afterSeq))")
        }
        guard request.limit >= 0, request.limit <= GraphStore.maxChangeLimit else {
            throw RPCError.invalidArgument(field: "limit", reason: .outOfRange, "must be 0 (default \(GraphStore.defaultChangeLimit)) to \(GraphStore.maxChangeLimit) (got \(request.limit))")
        }
        guard request.waitMs >= 0, request.waitMs <= GraphStore.maxChangeWaitMs else {
            throw RPCError.invalidArgument(field: "wait_ms", reason: .outOfRange, "must be 0 (answer at once) to \(GraphStore.maxChangeWaitMs) ms (got \(request.waitMs))")
        }
        // The wait ends a little before the caller's deadline, so it gets an answer (possibly
        // empty) rather than DEADLINE_EXCEEDED.
        let wait = min(.milliseconds(Int64(request.waitMs)), context.timeRemaining - .milliseconds(200))
        let limit = request.limit == 0 ? GraphStore.defaultChangeLimit : Int(request.limit)
        return try await mapped { try await store.changes(scope: scope, after: request.afterSeq, limit: limit, wait: max(.zero, wait)) }
    }
}
