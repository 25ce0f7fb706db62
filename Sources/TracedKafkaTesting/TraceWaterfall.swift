/// Renders a trace as an indented timeline, one span per line, children under their parents in start order:
///
/// ```
/// checkout                                12.4 ms
/// └─ send orders          (producer)       3.1 ms
///    └─ process orders    (consumer)       8.0 ms
/// ```
public enum TraceWaterfall {
    /// The waterfall of the spans given (typically one trace's). Spans whose parent is not among them are drawn as
    /// roots.
    /// - Parameter spans: The spans to draw.
    /// - Returns: The lines, joined with newlines.
    public static func render(_ spans: [RecordedSpan]) -> String {
        let ids = Set(spans.map(\.spanID))
        let ordered = spans.sorted { $0.startNanoseconds < $1.startNanoseconds }
        let children = Dictionary(grouping: ordered.filter { $0.parentSpanID.map(ids.contains) ?? false }) { $0.parentSpanID! }
        var rows: [(label: String, kind: String, duration: String)] = []

        func visit(_ span: RecordedSpan, prefix: String, isLast: Bool, isRoot: Bool) {
            let branch = isRoot ? "" : (isLast ? "└─ " : "├─ ")
            rows.append((prefix + branch + span.operationName, kindLabel(span), milliseconds(span.duration)))
            let next = isRoot ? prefix : prefix + (isLast ? "   " : "│  ")
            let kids = children[span.spanID] ?? []
            for (index, child) in kids.enumerated() {
                visit(child, prefix: next, isLast: index == kids.count - 1, isRoot: false)
            }
        }

        for root in ordered where !(root.parentSpanID.map(ids.contains) ?? false) {
            visit(root, prefix: "", isLast: true, isRoot: true)
        }
        let labelWidth = rows.map(\.label.count).max() ?? 0
        let kindWidth = rows.map(\.kind.count).max() ?? 0
        let durationWidth = rows.map(\.duration.count).max() ?? 0
        return rows.map { row in
            pad(row.label, labelWidth) + "  " + pad(row.kind, kindWidth) + "  "
                + String(repeating: " ", count: durationWidth - row.duration.count) + row.duration
        }.joined(separator: "\n")
    }

    private static func kindLabel(_ span: RecordedSpan) -> String {
        switch span.kind {
        case .producer: return "(producer)"
        case .consumer: return "(consumer)"
        case .client: return "(client)"
        case .server: return "(server)"
        case .internal: return ""
        }
    }

    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        // Hundredths of a millisecond, rounded to tenths.
        let tenths = (seconds * 100_000 + attoseconds / 10_000_000_000_000 + 5) / 10
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}
