import KBProto
import Synchronization

/// How much of the change feed the store keeps: the newest `maxChanges` changes, and none older
/// than `maxAgeMs`, whichever keeps fewer (`KB_GRAPH_FEED_MAX_CHANGES`,
/// `KB_GRAPH_FEED_MAX_AGE_SECONDS`). Older entries are removed by the commit thread in the
/// batches of later writes; LevelDB's compaction then reclaims their space.
public struct FeedWindow: Sendable, Hashable {
    /// Most changes kept.
    public var maxChanges: Int64
    /// Oldest change kept, in milliseconds of age.
    public var maxAgeMs: Int64

    /// A window of `maxChanges` changes and `maxAgeMs` milliseconds (defaults: a million, seven days).
    public init(maxChanges: Int64 = 1_000_000, maxAgeMs: Int64 = 7 * 24 * 3600 * 1000) {
        self.maxChanges = maxChanges
        self.maxAgeMs = maxAgeMs
    }
}

/// The change feed's live state (docs/ARCHITECTURE.md §6, README "The change feed"): where the
/// feed stands (its newest and oldest sequence numbers), the window it keeps, and the callers
/// waiting for the next commit (long polls of `Changes`).
///
/// The entries themselves are LevelDB keys (`GraphKey.feed`), written by the commit thread in
/// the same synced batch as the write they describe; this object only mirrors the position the
/// commit thread last put on disk and wakes the waiters once it is there. A waiter is a
/// suspended task (a continuation), never a thread.
final class ChangeFeed: Sendable {
    private struct State {
        var head: Int64
        var first: Int64
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    let window: FeedWindow
    private let state: Mutex<State>

    /// The feed at `head` (newest sequence number on disk, 0 for none) holding from `first`.
    init(head: Int64, first: Int64, window: FeedWindow) {
        self.window = window
        state = Mutex(State(head: head, first: first))
    }

    /// The newest sequence number on disk and the oldest held (head + 1 when none is held).
    var position: (head: Int64, first: Int64) { state.withLock { ($0.head, $0.first) } }

    /// Called by the commit thread once a batch moving the feed to `head`/`first` is synced:
    /// every waiter wakes and reads.
    func committed(head: Int64, first: Int64) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.head = head
            state.first = first
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Wakes every waiter and makes later waits return at once (the store is closing).
    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether the store is closing (waits return at once).
    var isClosed: Bool { state.withLock { $0.closed } }

    /// How many callers wait for a commit now (for tests and the health details).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Returns once a commit moves the head past `seq`, `timeout` passes, the calling task is
    /// cancelled, or the feed closes, whichever comes first.
    func waitForCommit(after seq: Int64, timeout: Duration) async {
        guard timeout > .zero else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForCommit(after: seq) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the head passes `seq` (or the task is cancelled, or the feed closes).
    private func waitForCommit(after seq: Int64) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.head > seq || state.closed || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
