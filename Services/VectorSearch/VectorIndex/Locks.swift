#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A readers-writer lock (pthread): searches and inserts share it; growing the storage takes it
/// exclusively.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() { pthread_rwlock_init(lock, nil) }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inline(__always) func withReadLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    @inline(__always) func withWriteLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// Mutexes striped over node ids: an insert locks a node while it rewrites that node's links.
final class StripedLocks: @unchecked Sendable {
    private let count = 4096
    private let locks: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        locks = .allocate(capacity: count)
        for index in 0..<count { pthread_mutex_init(locks + index, nil) }
    }

    deinit {
        for index in 0..<count { pthread_mutex_destroy(locks + index) }
        locks.deallocate()
    }

    @inline(__always) func withLock<R>(_ node: UInt32, _ body: () throws -> R) rethrows -> R {
        let lock = locks + Int(node % UInt32(count))
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body()
    }
}
