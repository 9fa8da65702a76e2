//! The runtime and the `tracing` set-up the server-shaped benches share: two workers (as a
//! small server), and JSON events through `tracing-appender`'s non-blocking writer into
//! nothing (what the peer stack logs, at its cost, without I/O).

#![allow(dead_code)]

/// A two-worker tokio runtime with all drivers.
pub(crate) fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Installs a JSON `tracing` subscriber (INFO) writing through a non-blocking writer to
/// `io::sink`; keep the guard alive for as long as events are logged.
pub(crate) fn json_events_to_nothing() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(tracing::Level::INFO)
        .init();
    guard
}
