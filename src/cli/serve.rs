//! `keiko-dns serve`: runs the server (see [`crate::control::serve`]) and
//! reports why it could not.

use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(path: &Path) -> ExitCode {
    match crate::control::serve::serve(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("keiko-dns: {e:#}");
            ExitCode::from(1)
        }
    }
}
