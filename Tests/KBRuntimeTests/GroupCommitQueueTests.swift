import Foundation
import Synchronization
import Testing

@testable import KBRuntime

/// What a test's `runGroup` saw, and a gate that holds the commit thread inside a group.
private final class GroupLog: Sendable {
    let groups = Mutex<[[Int]]>([])
    let holding = Mutex(false)
    let gate = DispatchSemaphore(value: 0)

    /// Each even job succeeds with its double, each odd one fails alone; a job of 0 holds the
    /// thread until `gate` is signalled.
    func run(_ jobs: [Int]) -> [Result<Int, any Error>] {
        groups.withLock { $0.append(jobs) }
        if jobs.contains(0) {
            holding.withLock { $0 = true }
            gate.wait()
        }
        return jobs.map { $0 % 2 == 0 ? .success($0 * 2) : .failure(OddJob(value: $0)) }
    }

    var jobsRun: [Int] { groups.withLock { $0.flatMap { $0 } } }
}

private struct OddJob: Error, Equatable { var value: Int }
private struct ShuttingDown: Error {}

@Suite("Group commit queue")
struct GroupCommitQueueTests {
    private func makeQueue(_ log: GroupLog) -> GroupCommitQueue<Int, Int> {
        GroupCommitQueue(name: "test commit", maxJobsPerGroup: 64, closedError: { ShuttingDown() }) { log.run($0) }
    }

    /// Waits (without a clock) until the commit thread is inside the group holding job 0.
    private func waitUntilHeld(_ log: GroupLog) async {
        while !log.holding.withLock({ $0 }) { await Task.yield() }
    }

    @Test("each caller gets its own job's result; a failing job fails only its caller; jobs waiting together share a group")
    func resultsPerJob() async throws {
        let log = GroupLog()
        let queue = makeQueue(log)
        defer { queue.close() }
        let holder = Task { try await queue.submit(0) }
        await waitUntilHeld(log)
        // While the thread is held, these wait together and go in one group.
        let results = await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            for job in 1...6 {
                group.addTask {
                    do { return (job, .success(try await queue.submit(job))) } catch { return (job, .failure(error)) }
                }
            }
            while queue.waitingCount < 6 { await Task.yield() }
            log.gate.signal()
            var results: [Int: Result<Int, any Error>] = [:]
            for await (job, result) in group { results[job] = result }
            return results
        }
        #expect(try await holder.value == 0)
        for job in 1...6 {
            switch results[job] {
            case .success(let value)?: #expect(job % 2 == 0 && value == job * 2)
            case .failure(let error)?: #expect(job % 2 == 1 && (error as? OddJob)?.value == job)
            case nil: Issue.record("job \(job) got no answer")
            }
        }
        #expect(log.groups.withLock { $0 }.count == 2, "the six waiting jobs went in one group")
    }

    @Test("a caller cancelled while its job waits gets CancellationError and the job never runs; a taken job runs to the end")
    func cancellationBeforeTaken() async throws {
        let log = GroupLog()
        let queue = makeQueue(log)
        let holder = Task { try await queue.submit(0) }
        await waitUntilHeld(log)
        holder.cancel()  // already taken: it still runs and answers
        let waiting = Task { try await queue.submit(2) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        log.gate.signal()
        #expect(try await holder.value == 0)
        #expect(try await queue.submit(4) == 8)
        queue.close()
        #expect(log.jobsRun == [0, 4])
    }

    @Test("a task cancelled before it submits never queues its job")
    func cancelledBeforeSubmit() async throws {
        let log = GroupLog()
        let queue = makeQueue(log)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await queue.submit(2)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        queue.close()
        #expect(log.jobsRun.isEmpty)
    }

    @Test("close runs what is queued, then every submit gets the closed error")
    func closeRefusesLaterJobs() async throws {
        let log = GroupLog()
        let queue = makeQueue(log)
        #expect(try await queue.submit(2) == 4)
        queue.close()
        queue.close()
        await #expect(throws: ShuttingDown.self) { try await queue.submit(4) }
        #expect(log.jobsRun == [2])
    }
}
