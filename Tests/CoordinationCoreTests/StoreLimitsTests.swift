import CoordinationCore
import Testing

@Suite("StoreLimits")
struct StoreLimitsTests {
    @Test("the default session TTL: 10 s unless the backend says otherwise, always within the limits")
    func defaultSessionTTL() {
        func limits(_ minimum: Duration, _ maximum: Duration = .seconds(600), _ chosen: Duration? = nil) -> StoreLimits
        {
            StoreLimits(
                maxValueSize: 1024, minimumSessionTTL: minimum, maximumSessionTTL: maximum, defaultSessionTTL: chosen)
        }
        #expect(limits(.seconds(1)).defaultSessionTTL == .seconds(10))
        #expect(limits(.seconds(10)).defaultSessionTTL == .seconds(10), "Consul's default minimum")
        #expect(limits(.seconds(13), .seconds(600), .seconds(22)).defaultSessionTTL == .seconds(22))
        #expect(limits(.seconds(15)).defaultSessionTTL == .seconds(15), "raised to the minimum")
        #expect(limits(.seconds(1), .seconds(4)).defaultSessionTTL == .seconds(4), "lowered to the maximum")
    }
}
