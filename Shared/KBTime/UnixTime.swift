import Foundation

/// The wall clock as the system stores it: Unix milliseconds (record timestamps, ledger events).
public enum UnixTime {
    /// Now, in whole milliseconds since 1970-01-01 UTC.
    public static func nowMilliseconds() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }
}
