import ArgumentParser
import Foundation
import KBKnowledge
import KBProto
import KBRPC

/// `ukb changes`: the graph store's change feed, once or followed.
struct Changes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The graph store's change feed: every committed write, numbered (all teams unless --team/KB_TEAM).",
        discussion: "Each line: sequence number, time, team, what changed. --follow waits for new changes (a long poll) until interrupted. A cursor older than the feed's window fails with OUT_OF_RANGE: start again without --after."
    )
    @OptionGroup var common: Common
    @Option(help: "List the changes after this sequence number (default: the last 20 before the head; 0: from the start of the feed).") var after: Int64?
    @Flag(help: "Keep waiting for new changes and print them as they commit.") var follow = false
    @Option(help: "At most this many changes per answer.") var limit = 1000

    func run() async throws {
        try await execute { client in
            let team = common.explicitTeam
            var cursor: Int64
            if let after {
                cursor = after
            } else {
                let stats = try await client.call(GraphStoreMethods.getStats, .init())
                cursor = max(stats.feedFirstSeq - 1, stats.feedHeadSeq - 20, 0)
            }
            repeat {
                let wait: Int32 = follow ? 25_000 : 0
                let page = try await client.call(GraphStoreMethods.changes, .with {
                    if let team { $0.teams = [team] } else { $0.allTeams = true }
                    $0.afterSeq = cursor
                    $0.limit = Int32(clamping: limit)
                    $0.waitMs = wait
                }, options: CallOptions(timeout: .milliseconds(Int64(wait) + 10_000)))
                if common.json {
                    try printJSON(page)
                } else {
                    for change in page.changes { print(Self.line(change)) }
                }
                // Followed through a pipe, each answer shows as it comes.
                fflush(nil)
                cursor = page.nextAfterSeq
                if !follow && cursor >= page.headSeq { break }
            } while !Task.isCancelled
        }
    }

    /// One change as a line: `seq  time  team  what`.
    static func line(_ change: Kb_Graph_V1_Change) -> String {
        let what: String = switch change.kind {
        case .entityUpserted: "upserted \(change.name) (content \(change.contentHash.prefix(12)))"
        case .entityDeleted: "deleted \(change.name)"
        case .relationAdded: "added \(change.from) -\(change.relationType)-> \(change.to)"
        case .relationRemoved: "removed \(change.from) -\(change.relationType)-> \(change.to)"
        default: "unknown change"
        }
        return "\(change.seq)  \(SharedMemoryDocument.iso(change.timeMs))  \(change.team)  \(what)"
    }
}
