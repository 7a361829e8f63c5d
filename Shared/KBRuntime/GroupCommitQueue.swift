import Foundation

/// The thread behind every group commit (graph store, budget ledger): writes queue here and one
/// dedicated thread takes as many as are waiting (up to `maxJobsPerGroup`) and hands them to
/// `runGroup` together, which writes them with one synced commit and answers each caller. The
/// storage-specific part (what a group writes, how callers are answered) is the owner's.
public final class GroupCommitQueue<Job>: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var closed = false
    private let finished = DispatchSemaphore(value: 0)
    private let maxJobsPerGroup: Int
    private let runGroup: ([Job]) -> Void

    /// Starts the thread, named `name`.
    public init(name: String, maxJobsPerGroup: Int, runGroup: @escaping ([Job]) -> Void) {
        self.maxJobsPerGroup = maxJobsPerGroup
        self.runGroup = runGroup
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Queues `job` for the next group; false (and the job is not queued) once closed.
    public func enqueue(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        pending.append(job)
        condition.signal()
        return true
    }

    /// Runs what is queued, then stops the thread; later `enqueue`s return false. Idempotent.
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
            let jobs = Array(pending.prefix(maxJobsPerGroup))
            pending.removeFirst(jobs.count)
            condition.unlock()
            runGroup(jobs)
        }
    }
}
