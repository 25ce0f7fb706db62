import Foundation
import Logging
import OTel
import ServiceLifecycle

/// Sets up tracing, logging and (when exporting) metrics for one example service with swift-otel.
///
/// After ``bootstrap(serviceName:environment:)``:
/// - `InstrumentationSystem.tracer` is swift-otel's tracer, so `withSpan` and TracedKafka's `send`/`process` spans
///   are real OpenTelemetry spans whose resource carries `service.name`;
/// - every `Logger` writes to standard error with the current span's `trace_id` and `span_id` in its metadata
///   (swift-otel's logging metadata provider), so a log line leads to its trace;
/// - when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g. `http://localhost:4318`), spans and log records are also
///   exported there over OTLP/HTTP (protobuf), and `MetricsSystem` is swift-otel's metrics factory, whose metrics go
///   there too (every ``metricsExportInterval``). TracedKafka's clients record their messaging metrics
///   (`messaging.client.operation.duration`, `messaging.client.sent.messages`, …) to `MetricsSystem.factory` as
///   they are created, with their units (`s`, `{message}`) in the `unit` dimension that swift-otel makes the
///   instrument's unit; so bootstrap before creating any client. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
///   `…_LOGS_ENDPOINT` and `…_METRICS_ENDPOINT` export one signal each.
/// - without an endpoint nothing is exported and nothing tries to connect; swift-metrics is left unbootstrapped
///   (its no-op factory), so TracedKafka records no metrics at all.
///
/// swift-otel reads the standard `OTEL_*` variables on top of this (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
/// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRICS_EXPORTER`, `OTEL_EXPORTER_OTLP_HEADERS`,
/// …).
public enum Observability {
    /// How often finished spans and log records are sent to the collector. Short, so a demo's spans show up in the
    /// backend while you watch; swift-otel's default is 5 s for spans and 1 s for logs.
    public static let exportDelay: Duration = .milliseconds(250)

    /// The most spans exported per tick (swift-otel's default is 512); the queue holds four batches.
    public static let spanBatchSize = 2_048

    /// How often the metrics are sent to the collector when exporting (swift-otel's default is 60 s). Each export
    /// carries every series' running totals (cumulative temporality), so a short interval only adds requests.
    public static let metricsExportInterval: Duration = .seconds(1)

    /// Bootstraps swift-otel's tracer, the logging system and, when exporting, swift-otel's metrics factory, once per
    /// process, before any `Logger` or Kafka client is made.
    ///
    /// Run the returned service first in your `ServiceGroup`: a group shuts its services down in reverse order, so
    /// it then stops last and exports the spans your other services end (and the metrics they record) while they shut
    /// down.
    ///
    /// - Parameters:
    ///   - serviceName: The `service.name` resource attribute: how the backend names this service.
    ///   - environment: Where `OTEL_*` variables are read from.
    /// - Returns: The service that exports in the background and flushes at graceful shutdown.
    /// - Throws: swift-otel's configuration errors (for example an invalid `OTEL_*` value).
    public static func bootstrap(
        serviceName: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> any Service {
        func isSet(_ name: String) -> Bool { !(environment[name] ?? "").isEmpty }
        let exportsTraces = isSet("OTEL_EXPORTER_OTLP_ENDPOINT") || isSet("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        let exportsLogs = isSet("OTEL_EXPORTER_OTLP_ENDPOINT") || isSet("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        let exportsMetrics = isSet("OTEL_EXPORTER_OTLP_ENDPOINT") || isSet("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")

        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.diagnosticLogLevel = .warning
        // Metrics only when they have somewhere to go: otherwise swift-metrics keeps its no-op factory.
        configuration.metrics.enabled = exportsMetrics
        configuration.metrics.exporter = .otlp
        configuration.metrics.otlpExporter.protocol = .httpProtobuf
        configuration.metrics.exportInterval = metricsExportInterval
        configuration.traces.exporter = exportsTraces ? .otlp : .none
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.traces.batchSpanProcessor.scheduleDelay = exportDelay
        // swift-otel exports one batch per tick and drops spans that find its queue full: a batch of 2,048 every
        // 250 ms carries ~8,000 spans/s, and a queue of four batches absorbs a burst (README, "Tracing at volume").
        configuration.traces.batchSpanProcessor.maxExportBatchSize = spanBatchSize
        configuration.traces.batchSpanProcessor.maxQueueSize = 4 * spanBatchSize
        configuration.logs.otlpExporter.protocol = .httpProtobuf
        configuration.logs.batchLogRecordProcessor.scheduleDelay = exportDelay

        // The OTLP log backend is made before the tracer is bootstrapped, on purpose: its HTTP client picks up the
        // global tracer when it is created, and would otherwise trace its own exports (one stray `POST` span each).
        let logs = exportsLogs ? try OTel.makeLoggingBackend(configuration: configuration) : nil

        // Tracing and metrics: swift-otel bootstraps InstrumentationSystem and, when metrics are on, MetricsSystem.
        // It makes the metrics backend (and its HTTP client) before it bootstraps the tracer, so metrics exports are
        // not traced either. Logs are left out of this bootstrap, so they can go to the console as well as (when
        // exporting) to the collector.
        var withoutLogs = configuration
        withoutLogs.logs.enabled = false
        let otel = try OTel.bootstrap(configuration: withoutLogs)

        let metadataProvider = OTel.makeLoggingMetadataProvider()
        guard let logs else {
            LoggingSystem.bootstrap(
                StreamLogHandler.standardError(label:metadataProvider:),
                metadataProvider: metadataProvider
            )
            return otel
        }
        // The OTLP log handler takes trace_id/span_id from the current span itself; the console handler gets them
        // from the metadata provider.
        LoggingSystem.bootstrap(
            { label, provider in
                MultiplexLogHandler([
                    StreamLogHandler.standardError(label: label, metadataProvider: provider),
                    logs.factory(label),
                ])
            },
            metadataProvider: metadataProvider
        )
        // The log exporter stops after the tracer and the metrics exporter, so log lines written while they flush still
        // go out.
        return ServiceGroup(
            configuration: .init(
                services: [.init(service: logs.service), .init(service: otel)],
                logger: Logger(label: "observability")
            )
        )
    }
}
