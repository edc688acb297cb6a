//! The harness's errors. A workload that cannot be read or makes no sense is refused before
//! anything connects (`Workload`); the broker's and the network's failures come from the
//! client (`Client`); the rest are the machine's (files, child processes). Failures *during*
//! a measured run are not errors of this kind: they are counted in the results (see `stats`).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The workload file is unreadable, malformed, or asks for something impossible.
    #[error("{path}: {reason}")]
    Workload { path: String, reason: String },
    #[error(transparent)]
    Client(#[from] riptide_client::Error),
    #[error("{path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    /// A child process (riptide, fio, iperf3, the discard broker) failed to start or answer.
    #[error("{0}")]
    Process(String),
    /// A results file is not one of ours.
    #[error("{path}: not a riptide-bench result ({reason})")]
    Results { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::File { path: path.into(), source }
    }
}
