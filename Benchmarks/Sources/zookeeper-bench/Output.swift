#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A progress note or summary for people, on stderr (stdout carries only the RESULT lines).
func note(_ text: String) {
    emit("zookeeper-bench: \(text)\n", to: STDERR_FILENO)
}

/// One machine-readable line on stdout, `RESULT <workload> key=value …` in the order given
/// (`RESULT <workload> failed` for a workload that failed).
func result(_ workload: String, _ figures: [(String, String)]) {
    emit((["RESULT", workload] + figures.map { "\($0.0)=\($0.1)" }).joined(separator: " ") + "\n", to: STDOUT_FILENO)
}

func resultFailed(_ workload: String) {
    emit("RESULT \(workload) failed\n", to: STDOUT_FILENO)
}

/// Written at once, unbuffered: the run script reads stdout through a pipe as lines come.
private func emit(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        bytes = bytes.dropFirst(written)
    }
}
