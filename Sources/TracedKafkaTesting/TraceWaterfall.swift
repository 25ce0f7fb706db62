/// Renders a trace as an indented timeline, one span per line, children under their parents in start order, each
/// with its kind, its duration and a bar on a time axis shared by the whole trace — so the gap between one hop's
/// `send` ending and the next hop's `process` starting shows:
///
/// ```
/// checkout                   12.4 ms  |████████████████████|
/// └─ send orders  (producer)  3.1 ms  | █████              |
///    └─ process…  (consumer)  8.0 ms  |      █████████████ |
///                                     0               12.4 ms
/// ```
public enum TraceWaterfall {
    /// The waterfall of the spans given (typically one trace's). Spans whose parent is not among them are drawn as
    /// roots.
    /// - Parameters:
    ///   - spans: The spans to draw.
    ///   - barWidth: How many columns the time axis spans (0 draws no bars and no axis).
    /// - Returns: The lines, joined with newlines.
    public static func render(_ spans: [RecordedSpan], barWidth: Int = 40) -> String {
        let ids = Set(spans.map(\.spanID))
        let ordered = spans.sorted { $0.startNanoseconds < $1.startNanoseconds }
        let children = Dictionary(grouping: ordered.filter { $0.parentSpanID.map(ids.contains) ?? false }) { $0.parentSpanID! }
        var rows: [(label: String, kind: String, duration: String, span: RecordedSpan)] = []

        func visit(_ span: RecordedSpan, prefix: String, isLast: Bool, isRoot: Bool) {
            let branch = isRoot ? "" : (isLast ? "└─ " : "├─ ")
            rows.append((prefix + branch + span.operationName, kindLabel(span), milliseconds(span.duration), span))
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
        let start = spans.map(\.startNanoseconds).min() ?? 0
        let end = max(spans.map(\.endNanoseconds).max() ?? 0, start + 1)
        var lines = rows.map { row in
            let text = pad(row.label, labelWidth) + "  " + pad(row.kind, kindWidth) + "  "
                + String(repeating: " ", count: durationWidth - row.duration.count) + row.duration
            guard barWidth > 0 else { return text }
            return text + "  |" + bar(row.span, from: start, to: end, width: barWidth) + "|"
        }
        if barWidth > 0, !rows.isEmpty {
            // The axis under the bars: the trace's start and its length.
            let indent = labelWidth + 2 + kindWidth + 2 + durationWidth + 2
            let total = milliseconds(.nanoseconds(Int64(end - start)))
            let axis = "0" + String(repeating: " ", count: max(1, barWidth + 2 - 1 - total.count)) + total
            lines.append(String(repeating: " ", count: indent) + axis)
        }
        return lines.joined(separator: "\n")
    }

    /// A span's bar: the columns of the axis its time covers (at least one), the rest blank.
    private static func bar(_ span: RecordedSpan, from start: UInt64, to end: UInt64, width: Int) -> String {
        let length = Double(end - start)
        let first = min(width - 1, Int((Double(span.startNanoseconds - start) / length * Double(width)).rounded(.down)))
        let last = min(width, max(first + 1, Int((Double(span.endNanoseconds - start) / length * Double(width)).rounded(.up))))
        return String(repeating: " ", count: first) + String(repeating: "█", count: last - first)
            + String(repeating: " ", count: width - last)
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
