//! Bulk imports: the Superstore dataset and a documented generic CSV format.

pub mod cli;
pub mod superstore;
