//! The command line's side of proving who is typing: where a token comes from (the
//! `GANTRY_TOKEN` environment variable, `--token-file`, or a hidden prompt on a terminal),
//! handed to `Config::identify`, which decides.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::config::{Config, Identity};

/// How a user proves who they are on the command line.
#[derive(Args, Debug, Clone, Default)]
pub struct ProofArgs {
    /// A file holding your API token (else GANTRY_TOKEN, else a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// The token presented: `--token-file`, else `GANTRY_TOKEN`, else (when `ask` and a person
/// is at a terminal) typed at a hidden prompt.
pub fn presented_token(token_file: Option<&Path>, ask: bool) -> Result<Option<String>, CliError> {
    if let Some(file) = token_file {
        let text = std::fs::read_to_string(file).map_err(|source| CliError::File { action: "read the token file", path: file.to_path_buf(), source })?;
        return Ok(Some(text.trim().to_string()));
    }
    if let Some(token) = std::env::var("GANTRY_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token));
    }
    if ask && std::io::stdin().is_terminal() {
        let typed = rpassword::prompt_password("gantry: your token: ")
            .map_err(|source| CliError::File { action: "read the token from", path: "the terminal".into(), source })?;
        return Ok(Some(typed.trim().to_string()).filter(|t| !t.is_empty()));
    }
    Ok(None)
}

/// Who is typing, proved as the operator's config asks.
pub fn identify(config: &Config, claimed: Option<&str>, proof: &ProofArgs) -> Result<Identity, CliError> {
    let token = presented_token(proof.token_file.as_deref(), config.needs_proof())?;
    let login = crate::config::identity::os_login();
    config.identify(claimed, token.as_deref(), login.as_deref()).map_err(CliError::from)
}
