import Coordination
import Logging
import ServiceLifecycle

/// A job that runs every `interval` while holding a lock, on whichever instance gets it first;
/// the lock's fencing token goes with the work. Stops at graceful shutdown (a wait for the lock is
/// cancelled and leaves no key; the session is closed).
struct LockedJob: Service {
    let lock: Key
    let store: any KeyValueStore
    let sessionTTL: Duration
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let session = try await store.makeSession(ttl: sessionTTL)
                do {
                    try await runJobs(in: session)
                } catch let error as CoordinationError where error.code != .cancelled && !Task.isCancelled {
                    // The session or the lock was lost (a pause, an outage): start again on a new one.
                    logger.warning("locked job interrupted, starting again", metadata: ["error": "\(error)"])
                } catch {
                    // Cancelled: shutting down.
                }
                // Closed even though this task is cancelled, so the session's keys go now.
                await Task { try? await session.close() }.value
            }
        }
    }

    private func runJobs(in session: Session) async throws {
        while !Task.isCancelled {
            try await Lock(lock, session: session, store: store).withLock { grant in
                logger.info("job ran", metadata: ["token": "\(grant.token)"])
            }
            try await Task.sleep(for: interval)
        }
    }
}
