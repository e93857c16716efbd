extension Duration {
    /// This delay moved at random by up to `fraction` of itself either way (±20% by default), so
    /// that many clients that lost the same server do not all come back at the same instant.
    @_spi(Backend) public func jittered(by fraction: Double = 0.2) -> Duration {
        precondition(fraction >= 0 && fraction < 1)
        return self * Double.random(in: (1 - fraction)...(1 + fraction))
    }
}
