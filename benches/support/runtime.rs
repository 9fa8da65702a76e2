//! The runtimes and the `tracing` set-up the server-shaped benches share: one worker (what
//! the comparisons run on, so no work hides on another core) or two (as a small server), and
//! JSON events through `tracing-appender`'s non-blocking writer into
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

/// A current-thread runtime with all drivers: every request's work, the audit queue's
/// included, is done on the measured thread.
pub(crate) fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
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
