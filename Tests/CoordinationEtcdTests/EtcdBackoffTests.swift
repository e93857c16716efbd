@_spi(Backend) import CoordinationCore
import Testing

@testable import CoordinationEtcd

@Suite("etcd reconnect backoff")
struct EtcdBackoffTests {
    @Test("after each round of refused members: 50 ms growing by 1.6x to 1 s")
    func backoffGrowsToACap() {
        let waits = (1...10).map { EtcdTransport.backoff(afterRounds: $0) }
        #expect(waits[0] == .milliseconds(50))
        #expect(waits[1] == .milliseconds(80))
        #expect(waits[2] == .milliseconds(128))
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 <= $1 }, "\(waits)")
        #expect(waits.last == .seconds(1))
    }

    @Test("every reconnect wait is jittered by up to 20% either way, so clients that lost one member spread out")
    func jitter() {
        let base = Duration.milliseconds(500)
        let waits = (0..<200).map { _ in base.jittered() }
        #expect(waits.allSatisfy { $0 >= .milliseconds(400) && $0 <= .milliseconds(600) })
        #expect(Set(waits).count > 150, "the waits differ")
        #expect(waits.contains { $0 < .milliseconds(450) } && waits.contains { $0 > .milliseconds(550) })
    }
}
