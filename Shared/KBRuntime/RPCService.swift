import Foundation
import Hummingbird
import KBRPC
import ServiceLifecycle

/// The face every RPC service shows the runtime: its handlers, its health components, its admin
/// routes and the long-running parts (stores) that need an orderly close.
///
/// `ServiceRuntime.main` takes one: a service's `main` opens its stores, makes its face and hands
/// it over; the runtime registers, serves and shuts down.
public protocol RPCService: Sendable {
    /// Registers every method of the service on `router`; each handler a short function from
    /// request message to response message.
    func register(on router: inout RPCRouter)

    /// Adds the service's health components (stores, peers) to `health`.
    func registerHealth(on health: HealthRegistry)

    /// Adds service-specific routes to the admin HTTP router (beside `/health` and `/metrics`).
    func addAdminRoutes(to router: Router<BasicRequestContext>, configuration: ServiceConfiguration)

    /// What runs beside the RPC server and is shut down after it, in order (stores, timers).
    var lifecycleServices: [any Service] { get }

    /// Admin routes answered straight from the connection's pipeline (`HTTPDirectRoute`): hot
    /// routes whose body is collected anyway.
    func directAdminRoutes(configuration: ServiceConfiguration) -> [HTTPDirectRoute]
}

extension RPCService {
    /// No admin routes beyond the runtime's.
    public func addAdminRoutes(to router: Router<BasicRequestContext>, configuration: ServiceConfiguration) {}

    /// None.
    public func directAdminRoutes(configuration: ServiceConfiguration) -> [HTTPDirectRoute] { [] }
}

/// The offline `restore` subcommand of a service that owns a store: `<service> restore BACKUP`.
///
/// It runs with the service's data directory locked, so it refuses (exit 75) while the service
/// runs on that directory.
public struct RestoreCommand: Sendable {
    /// The argument's name in the usage line, e.g. `BACKUP_DIR`.
    public var argument: String
    /// What is in use when the lock is held, e.g. `the store`.
    public var subject: String
    /// Restores from the backup at the given path into the runtime's data directory and returns
    /// the lines to print.
    public var restore: @Sendable (_ backup: URL, _ runtime: ServiceRuntime) throws -> [String]

    /// Declares a service's restore.
    public init(argument: String, subject: String, restore: @escaping @Sendable (_ backup: URL, _ runtime: ServiceRuntime) throws -> [String]) {
        self.argument = argument
        self.subject = subject
        self.restore = restore
    }
}

/// The exit statuses every service executable uses (sysexits.h where one fits).
public enum ServiceExitCode {
    /// Success.
    public static let ok: Int32 = 0
    /// Any other failure.
    public static let failure: Int32 = 1
    /// EX_USAGE: a subcommand with the wrong arguments.
    public static let usage: Int32 = 64
    /// EX_TEMPFAIL: the data directory is in use by another process.
    public static let inUse: Int32 = 75
    /// EX_CONFIG: a configuration value cannot be used.
    public static let configuration: Int32 = 78
}
