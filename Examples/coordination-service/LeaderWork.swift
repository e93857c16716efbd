import Coordination
import Logging
import ServiceLifecycle

/// What only the leader does: here, saying so. Reads the candidate's statuses until the group
/// tells it to stop (it is listed after the candidate, so it is stopped first).
struct LeaderWork: Service {
    let candidate: LeaderCandidate
    let logger: Logger

    func run() async throws {
        for await status in candidate.statuses().cancelOnGracefulShutdown() {
            switch status {
            case .leader(let term):
                logger.info("leading", metadata: ["term": "\(term)"])
            case .campaigning:
                logger.info("following")
            case .idle, .stopping, .stopped:
                break
            }
        }
    }
}
