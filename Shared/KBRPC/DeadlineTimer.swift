import KBTime
import NIOCore

/// One timer for the many deadlines of one connection, armed for the earliest of them, so a
/// request or call costs no timer of its own. Confined to the connection's event loop.
struct DeadlineTimer {
    private var scheduled: Scheduled<Void>?
    private var armedFor: NIODeadline = .distantFuture

    /// Makes sure the timer fires no later than `deadline`, calling `fire` on `loop` then.
    mutating func cover(_ deadline: NIODeadline, on loop: any EventLoop, _ fire: @escaping () -> Void) {
        guard scheduled == nil || deadline < armedFor else { return }
        scheduled?.cancel()
        armedFor = deadline
        scheduled = loop.assumeIsolated().scheduleTask(deadline: deadline, fire)
    }

    /// Forgets the timer that just fired (call first thing in `fire`).
    mutating func fired() {
        scheduled = nil
    }

    /// Stops the timer.
    mutating func cancel() {
        scheduled?.cancel()
        scheduled = nil
    }

    /// Splits `entries` into the keys whose deadline has passed at `now` and the earliest
    /// deadline still ahead (to cover next).
    static func overdue<Key, Value>(_ entries: [Key: Value], at now: NIODeadline, deadline: (Value) -> NIODeadline) -> (keys: [Key], next: NIODeadline?) {
        var keys: [Key] = []
        var next: NIODeadline?
        for (key, value) in entries {
            let due = deadline(value)
            if due <= now { keys.append(key) } else { next = min(next ?? due, due) }
        }
        return (keys, next)
    }
}

extension Duration {
    /// The duration as NIO's `TimeAmount`, negative ones as zero (an absurdly long one saturates
    /// instead of trapping).
    var timeAmount: TimeAmount { .nanoseconds(max(0, inNanoseconds)) }
}
