//! Bulk imports: the Superstore dataset and a documented generic CSV format (see
//! docs/IMPORTS.md).
//!
//! Each source is parsed into the normalized [`records`] and written by the one common
//! [`load`]er, which is idempotent (natural keys, `ON CONFLICT … DO NOTHING`), batched and
//! transactional. What belongs here: file formats and their mapping. What does not: the
//! meaning of a product or an order (`catalog`, `orders`).

pub mod cli;
pub mod generic;
pub mod job;
pub mod load;
pub mod records;
pub mod report;
pub mod stream;
pub mod superstore;
pub mod upload;
