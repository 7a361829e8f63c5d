import KBProto
import KBRPC
import SwiftProtobuf

/// What the graph store bounds: an entity's size when it is written (so every stored entity can
/// be read back in one answer) and an answer's size when it is built (so no answer passes the
/// frame limit, however large the entities are).
public struct GraphLimits: Sendable, Hashable {
    /// Most observations one entity may hold after a write (a merge included).
    public var maxObservations: Int
    /// Most bytes one entity's record may take after a write (a merge included), all its
    /// observations and metadata counted.
    public var maxEntityBytes: Int
    /// Most bytes of entities and relations one answer carries; past it, a list answer stops
    /// and says so (`next_cursor`, `truncated`).
    public var maxAnswerBytes: Int

    /// Limits well under the default 16 MiB frame: 10,000 observations, 4 MiB per entity.
    public init(maxObservations: Int = 10_000, maxEntityBytes: Int = 4 << 20, maxAnswerBytes: Int = GraphLimits.answerBytes(frameLimit: Frame.defaultMaxLength)) {
        self.maxObservations = maxObservations
        self.maxEntityBytes = maxEntityBytes
        self.maxAnswerBytes = maxAnswerBytes
    }

    /// The bytes of items an answer may carry under a frame limit of `frameLimit`: the limit
    /// less a margin for the envelope, the status and the list framing (64 KiB, or an eighth of
    /// a small limit).
    public static func answerBytes(frameLimit: Int) -> Int {
        frameLimit - min(frameLimit / 8, 64 << 10)
    }

    /// The bytes one item of `size` bytes adds to an answer: itself and its tag and length.
    static func itemBytes(_ size: Int) -> Int { size + 6 }

    /// An upper bound of the size of `record` (stored in `storedBytes`) once its observations
    /// are dropped, without encoding it again: the contents, which dominate, are subtracted.
    static func sizeWithoutObservations(_ record: Kb_Graph_V1_Entity, storedBytes: Int) -> Int {
        max(0, storedBytes - record.observations.reduce(0) { $0 + $1.content.utf8.count })
    }

    /// The encoded size of `message` (swift-protobuf has no public size computation).
    static func encodedSize(_ message: some SwiftProtobuf.Message) throws -> Int {
        let bytes: [UInt8] = try message.serializedBytes()
        return bytes.count
    }
}

/// How a long read (scan, traversal, search) learns that nobody waits for its answer any more:
/// the RPC face passes the request's `RPCContext.isCancelled`; a loop calls `check()` at every
/// step, which asks every 256th step and throws `CancellationError` once it is true.
public struct WorkCancellation: Sendable {
    private let isCancelled: @Sendable () -> Bool
    private var countdown = WorkCancellation.interval
    /// Steps between two questions (a clock read and an atomic load each).
    static let interval = 256

    /// A check that asks `isCancelled`.
    public init(_ isCancelled: @escaping @Sendable () -> Bool) {
        self.isCancelled = isCancelled
    }

    /// Work nobody cancels (in-process callers, tests).
    public static let never = WorkCancellation { false }

    /// The check of an RPC request's work: its deadline, its connection, the server's stop.
    public static func of(_ context: RPCContext) -> WorkCancellation {
        WorkCancellation { context.isCancelled }
    }

    /// One step of a loop: throws `CancellationError` when the work is cancelled (asked every
    /// `interval` steps).
    public mutating func check() throws {
        countdown &-= 1
        guard countdown <= 0 else { return }
        countdown = Self.interval
        if isCancelled() { throw CancellationError() }
    }

    /// Asks now, whatever the step count (before an expensive phase).
    public func checkNow() throws {
        if isCancelled() { throw CancellationError() }
    }
}
