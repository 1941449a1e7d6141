//! The command line: `orderly serve | migrate | import | user | config`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::auth::{Email, Password, users};
use crate::config::Config;
use crate::db::Db;
use crate::imports;

/// orderly: a commerce backend (catalog, inventory, orders with a checkout saga).
///
/// With no configuration it keeps its data in ./data (SQLite) and listens on
/// 127.0.0.1:8080. Settings come from orderly.toml and ORDERLY_* environment variables;
/// see docs/OPERATIONS.md.
#[derive(Debug, Parser)]
#[command(name = "orderly", version, about, long_about)]
pub struct Cli {
    /// Configuration file (default: ./orderly.toml when it exists).
    #[arg(long, global = true, env = "ORDERLY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve the API until SIGINT/SIGTERM.
    ///
    /// Example: orderly serve --import-superstore datasets/superstore/superstore.csv
    Serve {
        /// Import this Superstore CSV first (idempotent: a second run changes nothing).
        #[arg(long, value_name = "CSV")]
        import_superstore: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Import data from CSV files (idempotent). See docs/IMPORTS.md for the formats.
    #[command(subcommand)]
    Import(imports::cli::ImportCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an admin (or promote an existing user and reset their password).
    ///
    /// The password is read from ORDERLY_ADMIN_PASSWORD, or from standard input with
    /// --password-stdin, never from the command line (it would show in `ps`).
    ///
    /// Example: echo 'a-long-passphrase' | orderly user create-admin --email admin@example.com --password-stdin
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it, secrets redacted. Exit status 2 if invalid.
    Check,
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, warnings) = match Config::load_reporting(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orderly: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orderly: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        // The OTLP exporter is built here and needs the runtime.
        let _in_runtime = runtime.enter();
        crate::telemetry::init(&config.log);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let result = runtime.block_on(run(cli.command, config));
    // Flush the last spans while the runtime still drives the exporter's connection.
    crate::telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderly: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { import_superstore } => {
            if let Some(csv) = import_superstore {
                let db = Db::connect(&config).await?;
                db.migrate().await?;
                let report = imports::superstore::import_file(&db, &csv).await?;
                eprintln!("{report}");
                db.close().await;
            }
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Import(cmd) => imports::cli::run(cmd, &config).await,
        Command::User(UserCommand::CreateAdmin { email, name, password_stdin }) => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading the password from stdin")?;
                s.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                std::env::var("ORDERLY_ADMIN_PASSWORD")
                    .context("set ORDERLY_ADMIN_PASSWORD or pass --password-stdin")?
            };
            let email = Email::parse(&email).map_err(|m| anyhow::anyhow!("--email {m}"))?;
            let password = Password::parse(&password).map_err(|m| anyhow::anyhow!("password {m}"))?;
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            let user = users::upsert_admin(&db, &email, &password, &name).await?;
            eprintln!("admin {} ({}) is ready", user.email, user.id);
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let shown = toml::to_string_pretty(&config).context("printing the configuration")?;
            // The one command whose output is data for stdout, not a log line.
            std::io::Write::write_all(&mut std::io::stdout(), shown.as_bytes()).context("writing to stdout")?;
            eprintln!("configuration is valid");
            Ok(())
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
