import Foundation

/// Group commit for every store (graph store, budget ledger, vector store): callers `submit` a
/// job and wait; one dedicated thread takes as many jobs as are waiting (up to
/// `maxJobsPerGroup`) and hands them to the owner's `runGroup`, which writes them with one synced
/// commit and gives each job its result. Each caller is answered only after `runGroup` returns,
/// so only once its group is on disk.
///
/// The queue owns the caller side once for every store: the continuation of each waiting caller,
/// refusal after `close()`, and cancellation. A caller whose task is cancelled while its job is
/// still waiting gets `CancellationError` and its job is dropped; a job already taken into a group
/// runs to the end and its caller gets its result.
public final class GroupCommitQueue<Job, Output: Sendable>: @unchecked Sendable {
    /// What `runGroup` returns: one result per job, in the order of the jobs it was given.
    public typealias Outcome = Result<Output, any Error>

    private final class Waiter {
        let id: UInt64
        let job: Job
        let continuation: CheckedContinuation<Output, any Error>
        init(id: UInt64, job: Job, continuation: CheckedContinuation<Output, any Error>) {
            self.id = id
            self.job = job
            self.continuation = continuation
        }
    }

    private let condition = NSCondition()
    private var pending: [Waiter] = []
    private var nextId: UInt64 = 0
    private var closed = false
    private let finished = DispatchSemaphore(value: 0)
    private let maxJobsPerGroup: Int
    private let closedError: @Sendable () -> any Error
    private let runGroup: ([Job]) -> [Outcome]

    /// Starts the commit thread, named `name`.
    ///
    /// - Parameters:
    ///   - closedError: what a `submit` after `close()` throws (the store's "shutting down").
    ///   - runGroup: writes a group of jobs in one synced commit and returns each job's result,
    ///     in order; it runs on the commit thread, one group at a time.
    public init(name: String, maxJobsPerGroup: Int, closedError: @escaping @Sendable () -> any Error, runGroup: @escaping ([Job]) -> [Outcome]) {
        self.maxJobsPerGroup = maxJobsPerGroup
        self.closedError = closedError
        self.runGroup = runGroup
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Queues `job` for the next group and returns its result once its group is written.
    ///
    /// Throws `closedError()` after `close()`, and `CancellationError` when the calling task is
    /// cancelled before the job is taken into a group (the job is then never run).
    public func submit(_ job: Job) async throws -> Output {
        let id = condition.withLock {
            defer { nextId &+= 1 }
            return nextId
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
                condition.lock()
                if closed {
                    condition.unlock()
                    continuation.resume(throwing: closedError())
                } else if Task.isCancelled {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    pending.append(Waiter(id: id, job: job, continuation: continuation))
                    condition.signal()
                    condition.unlock()
                }
            }
        } onCancel: {
            condition.lock()
            let index = pending.firstIndex { $0.id == id }
            let dropped = index.map { pending.remove(at: $0) }
            condition.unlock()
            dropped?.continuation.resume(throwing: CancellationError())
        }
    }

    /// How many jobs wait for a group (not counting the group being written).
    public var waitingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Runs what is queued, then stops the thread; later `submit`s throw `closedError()`.
    /// Idempotent.
    public func close() {
        condition.lock()
        let wasClosed = closed
        closed = true
        condition.signal()
        condition.unlock()
        if !wasClosed { finished.wait() }
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !closed { condition.wait() }
            if pending.isEmpty && closed {
                condition.unlock()
                finished.signal()
                return
            }
            let group = Array(pending.prefix(maxJobsPerGroup))
            pending.removeFirst(group.count)
            condition.unlock()
            let outcomes = runGroup(group.map(\.job))
            precondition(outcomes.count == group.count, "runGroup must return one result per job")
            for (waiter, outcome) in zip(group, outcomes) { waiter.continuation.resume(with: outcome) }
        }
    }
}
