@_spi(Backend) import CoordinationCore
import Logging

extension CoordinationError {
    /// Whether a failed write may still have been applied by the server: the reply was lost (a
    /// timeout, a broken connection, a cancelled call) or the failure says nothing about the write.
    /// A recipe must then resolve the outcome — adopt, remove or end the session — and never
    /// assume that nothing happened.
    var outcomeIsUnknown: Bool {
        switch code {
        case .timeout, .connectionFailed, .cancelled, .serverError, .protocolError, .storeClosed: true
        default: false
        }
    }
}

/// How hard a recipe tries to confirm a cleanup (a release, the removal of a contender left by a
/// join whose outcome is unknown) before it ends the session instead, so the server removes every
/// key bound to it.
enum Cleanup {
    static let attempts = 3
    static func backoff(_ attempt: Int) -> Duration { Duration.milliseconds(100 << min(attempt, 4)).jittered() }

    /// Ends `session` because `what` could not be confirmed: its keys go when the server ends it
    /// (at once when the close reaches the server; one TTL later when it does not, since the store
    /// stops renewing it either way). Logged at warning: the caller's session is gone.
    static func endSession(_ session: Session, because what: String, _ error: CoordinationError) async {
        Logger.current.warning(
            "ending the session: \(what) could not be confirmed",
            metadata: ["session": "\(session.id)", "error": "\(error)"])
        do {
            try await session.close()
        } catch {
            // Closing stopped the renewals even though the server did not answer: the session
            // expires within its TTL and its keys go then.
            Logger.current.warning(
                "the session could not be closed on the server; it expires within its TTL",
                metadata: ["session": "\(session.id)", "error": "\(error)"])
        }
    }
}

extension ContenderLine {
    /// Removes every contender bound to `session` under `prefix`: what a join whose outcome is
    /// unknown may have left in line. If that cannot be confirmed within ``Cleanup/attempts``, the
    /// session is ended so that the server removes them. Never leaves an orphan that would reach the
    /// head of the line with nobody to hold it.
    func removeContenders(of session: Session, in prefix: Key) async {
        var lastError = CoordinationError(.timeout, "no attempt made")
        for attempt in 0..<Cleanup.attempts {
            do throws(CoordinationError) {
                for contender in try await contenders(in: prefix) where contender.session == session.id {
                    do throws(CoordinationError) {
                        try await leave(contender)
                    } catch  where error.code == .keyNotFound || error.code == .revisionMismatch {
                        // Gone already, or changed: read the line again on the next attempt.
                        throw error
                    }
                }
                return
            } catch  where !session.isActive {
                return  // the session ended: its contenders go with it
            } catch {
                lastError = error
                try? await Task.sleep(for: Cleanup.backoff(attempt))
            }
        }
        await Cleanup.endSession(session, because: "removing the contender under '\(prefix)'", lastError)
    }
}
