//! Files: product images and the files jobs read and write (import uploads, error reports,
//! exports), kept in one [`Storage`]: a local directory under `data_dir` by default, or an
//! S3-compatible object store when `storage.url` (`ORDERLY_STORAGE_URL`) is set.

pub mod images;
pub mod names;
pub mod storage;
