import CoordinationCore
import Testing

@Suite("StoreLimits")
struct StoreLimitsTests {
    @Test("the default session TTL: 10 s, twice the shortest where that is longer, never above the longest")
    func defaultSessionTTL() {
        func limits(_ minimum: Duration, _ maximum: Duration = .seconds(600)) -> StoreLimits {
            StoreLimits(maxValueSize: 1024, minimumSessionTTL: minimum, maximumSessionTTL: maximum)
        }
        #expect(limits(.seconds(1)).defaultSessionTTL == .seconds(10))
        #expect(limits(.seconds(5)).defaultSessionTTL == .seconds(10))
        #expect(limits(.seconds(13)).defaultSessionTTL == .seconds(26))
        #expect(limits(.seconds(1), .seconds(4)).defaultSessionTTL == .seconds(4))
    }
}
