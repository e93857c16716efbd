// The recipes' module is the one a user imports: the core's types (Key, Session, KeyValueStore,
// CoordinationError, WatchStream, …) come with it. A backend is imported by name, next to it.
@_exported import CoordinationCore
