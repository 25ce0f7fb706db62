import ServiceLifecycle

/// Waits for `duration`, cut short when graceful shutdown starts (or the task is cancelled).
///
/// For a service's loop that does something every so often: `while await pause(interval) { … }` stops promptly on
/// SIGTERM instead of sleeping through it.
/// - Parameter duration: How long to wait.
/// - Returns: `true` when the whole duration passed, `false` when the service should stop.
public func pause(_ duration: Duration) async -> Bool {
    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    return !Task.isShuttingDownGracefully && !Task.isCancelled
}
