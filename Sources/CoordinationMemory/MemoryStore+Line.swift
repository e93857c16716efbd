@_spi(Backend) import CoordinationCore

extension MemoryStore {
    /// The line on the in-memory store: contenders are `prefix/<session id>`, created if absent and
    /// bound to the session, first in line by create revision. Every step completes without
    /// suspending, so a join needs no protection from cancellation.
    public struct Line: ContenderLine {
        public let store: MemoryStore

        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            let key = try prefix.appending(session.id.rawValue)
            let entry = try await store.atomicPut(key, value, condition: .absent, options: .boundTo(session))
            return try await placing(Contender(entry: entry), in: prefix)
        }

        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            let children = try store.withOpenState { state in
                state.children[prefix.path].map { $0.compactMap { state.entries[$0] } } ?? []
            }
            return contenders(in: prefix, from: children)
        }
    }

    public var line: Line { Line(store: self) }
}
