//! `orderly import …` subcommands: each imports one file and prints its report to stderr.

use std::path::PathBuf;

use clap::Subcommand;

use super::{generic, superstore};
use crate::config::Config;
use crate::db::Db;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import the Tableau "Sample - Superstore" CSV (idempotent).
    ///
    /// Example: orderly import superstore datasets/superstore/superstore.csv
    Superstore {
        /// Path to superstore.csv.
        csv: PathBuf,
    },
    /// Import products: sku,name,description,category,price,currency,on_hand (idempotent).
    ///
    /// Exits with status 1 if any row was rejected; the good rows are imported anyway.
    /// Example: orderly import products products.csv
    Products {
        /// Path to the products CSV.
        csv: PathBuf,
    },
    /// Import customers: email,name,external_ref (idempotent). They cannot log in until an
    /// admin issues a password-reset token.
    ///
    /// Exits with status 1 if any row was rejected; the good rows are imported anyway.
    Customers {
        /// Path to the customers CSV.
        csv: PathBuf,
    },
    /// Set counted stock levels of existing products: sku,on_hand (idempotent: a level
    /// already at the count is left alone). Rows below what open orders hold are rejected.
    ///
    /// Exits with status 1 if any row was rejected; the good rows are imported anyway.
    /// Example: orderly import stock stocktake.csv
    Stock {
        /// Path to the stock CSV.
        csv: PathBuf,
    },
    /// Import historical orders, one row per line:
    /// order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity,discount
    /// (idempotent). Import their customers first.
    ///
    /// Exits with status 1 if any row was rejected; the good rows are imported anyway.
    Orders {
        /// Path to the orders CSV.
        csv: PathBuf,
    },
}

/// Runs `cmd` against the configured database (migrating it first). Errors if the file or
/// the database fails, or if a generic import rejected rows (after printing the report).
pub async fn run(cmd: ImportCommand, config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(config).await?;
    db.migrate().await?;
    let result = match cmd {
        ImportCommand::Superstore { csv } => superstore::import_file(&db, &csv).await.map(|r| eprintln!("{r}")),
        ImportCommand::Products { csv } => generic::import_file(&db, "products", &csv).await.and_then(finish),
        ImportCommand::Customers { csv } => generic::import_file(&db, "customers", &csv).await.and_then(finish),
        ImportCommand::Orders { csv } => generic::import_file(&db, "orders", &csv).await.and_then(finish),
        ImportCommand::Stock { csv } => generic::import_file(&db, "stock", &csv).await.and_then(finish),
    };
    db.close().await;
    result
}

fn finish(report: super::report::ImportReport) -> anyhow::Result<()> {
    eprintln!("{report}");
    match report.errors.len() {
        0 => Ok(()),
        1 => anyhow::bail!("1 row was rejected (see above); the other rows were imported"),
        n => anyhow::bail!("{n} rows were rejected (see above); the other rows were imported"),
    }
}
