//! `orderly import …` subcommands.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::db::Db;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import the Tableau "Sample - Superstore" CSV (idempotent).
    Superstore {
        /// Path to superstore.csv.
        csv: PathBuf,
    },
}

pub async fn run(cmd: ImportCommand, config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(config).await?;
    db.migrate().await?;
    match cmd {
        ImportCommand::Superstore { csv } => {
            let report = super::superstore::import_file(&db, &csv).await?;
            eprintln!("{report}");
        }
    }
    db.close().await;
    Ok(())
}
