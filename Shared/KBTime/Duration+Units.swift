/// A `Duration` in the units metrics, logs and wire fields use: the one place those
/// conversions are written (the RPC kit builds NIO's `TimeAmount` on `inNanoseconds`).
extension Duration {
    /// Whole nanoseconds (truncated; saturates at `Int64.max` for durations past ~292 years).
    public var inNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowAgain ? (seconds < 0 ? .min : .max) : total
    }

    /// Whole milliseconds (truncated).
    public var inMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number (also a `TimeInterval`).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
