import Foundation
import KBSessions

/// What a run of the learner did (`ukb learn`'s summary).
public struct LearnSummary: Sendable, Equatable {
    public var files = 0
    public var exchanges = 0
    public var itemsCreated = 0
    public var itemsMerged = 0
    public var skippedLowConfidence = 0
    /// Exchanges whose extraction failed, with the reason.
    public var failed: [String] = []
    /// Exchanges kept for later: no provider answered.
    public var queued = 0
    /// Queued exchanges of earlier runs learned in this one.
    public var dequeued = 0
    public var unreadableLines = 0
    public var costUSD = 0.0
    /// The exchanges' intents (the model's; the keyword fallback's for queued ones).
    public var intents: [String: Int] = [:]

    public init() {}

    public var itemsExtracted: Int { itemsCreated + itemsMerged + skippedLowConfidence }
}

/// One learner over a set of transcripts and its durable state.
public actor LearnRun {
    let learner: Learner
    let stateURL: URL
    public private(set) var state: LearnState
    public private(set) var summary = LearnSummary()

    /// When the queue was last tried (ms since the epoch).
    var queueTriedAtMs: Int64 = 0

    public init(learner: Learner, stateURL: URL, state: LearnState) {
        self.learner = learner
        self.stateURL = stateURL
        self.state = state
    }

    /// Learns what is new in `files` (and, first, what earlier runs queued, at most every
    /// `queueRetryMs`). The state is saved after every exchange. `idleMs`: 0 reads every file to
    /// its end (a batch); otherwise a file's last exchange waits until the file has been quiet
    /// that long. `shouldStop` is asked after every exchange: true ends the pass there.
    public func pass(_ files: [String], idleMs: Int64, queueRetryMs: Int64 = 0, shouldStop: @Sendable () -> Bool = { false }, progress: @Sendable (LearnSummary) -> Void = { _ in }) async throws {
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        if !state.queued.isEmpty, started - queueTriedAtMs >= queueRetryMs {
            queueTriedAtMs = started
            try await retryQueued(shouldStop: shouldStop, progress: progress)
        }
        for file in files {
            // A file more than one look behind is read look after look until its end.
            var progressed = true
            while progressed {
                if shouldStop() { return }
                progressed = try await look(at: file, idleMs: idleMs, shouldStop: shouldStop, progress: progress)
            }
        }
    }

    /// Reads what is new in one file and learns it; true when it read something and the file
    /// has more after it.
    func look(at file: String, idleMs: Int64, shouldStop: @Sendable () -> Bool, progress: @Sendable (LearnSummary) -> Void) async throws -> Bool {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let before = state.files[file]?.offset
        guard let found = try SessionFiles.readNew(file, from: state.files[file], idleMs: idleMs, nowMs: now) else {
            // Gone (Claude Code deletes old transcripts): forgotten.
            if state.files.removeValue(forKey: file) != nil { try state.save(stateURL) }
            return false
        }
        if state.files[file] == nil { summary.files += 1 }
        summary.unreadableLines += found.unreadable.count
        var position = found.position
        for exchange in found.exchanges {
            try await learn(exchange)
            position.offset = exchange.provenance.endOffset
            position.line = exchange.provenance.lastLine + 1
            // Mid-file: the next look reads on even if the file has not grown.
            position.size = -1
            state.files[file] = position
            try state.save(stateURL)
            progress(summary)
            if shouldStop() { return false }
        }
        if state.files[file] != found.position {
            state.files[file] = found.position
            try state.save(stateURL)
        }
        return found.position.offset != (before ?? 0) && found.position.offset < found.position.size
    }

    func learn(_ exchange: SessionExchange, fromQueue: Bool = false) async throws {
        if !fromQueue { summary.exchanges += 1 }
        switch try await learner.learn(exchange) {
        case .learned(let created, let merged, let skipped, let cost, let intent):
            summary.intents[intent.rawValue, default: 0] += 1
            summary.itemsCreated += created.count
            summary.itemsMerged += merged.count
            summary.skippedLowConfidence += skipped
            summary.costUSD += cost
            if fromQueue { summary.dequeued += 1 }
        case .failed(let reason, let cost):
            summary.failed.append("\(exchange.provenance.file):\(exchange.provenance.firstLine): \(reason)")
            summary.costUSD += cost
        case .queued(_, let intent, _):
            if !fromQueue {
                summary.queued += 1
                summary.intents[intent.rawValue, default: 0] += 1
            }
            state.queued.append(exchange)
        }
    }

    /// Exchanges queued by earlier runs, tried again in order; those that still find no
    /// provider stay queued (and the rest wait behind them: no provider is answering).
    func retryQueued(shouldStop: @Sendable () -> Bool, progress: @Sendable (LearnSummary) -> Void) async throws {
        var remaining = state.queued.count
        while remaining > 0, let exchange = state.queued.first {
            remaining -= 1
            state.queued.removeFirst()
            try await learn(exchange, fromQueue: true)
            if state.queued.last == exchange && state.queued.count > remaining {
                // Still no provider: back to the front, order kept; the rest wait behind it.
                state.queued.insert(state.queued.removeLast(), at: 0)
                try state.save(stateURL)
                break
            }
            try state.save(stateURL)
            progress(summary)
            if shouldStop() { return }
        }
    }
}
