//! File storage (`storage.*`): where files live and what product-image uploads may be.
//! Keys and defaults are listed in docs/OPERATIONS.md ("File storage"); the rules behind
//! them in docs/FILES.md.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, string_or_list};

/// The image types orderly can recognise from their first bytes (`infer`), and so the only
/// values `storage.allowed_types` may hold. SVG is not among them on purpose: it is XML
/// that can carry scripts, and cannot be sniffed reliably (docs/FILES.md).
pub const SNIFFABLE_IMAGE_TYPES: &[&str] =
    &["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff", "image/avif"];

/// `storage.*`: the backend (`ORDERLY_STORAGE_URL`; empty: a local directory under
/// `data_dir`), the upload size limit, and the allowed image types.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket[/prefix]?endpoint=…&region=…` for an S3-compatible store; empty: the
    /// directory `<data_dir>/files`. A secret: it may hold access keys.
    pub url: Secret,
    /// Largest product image accepted, in bytes (default 10 MiB). Enforced while the body
    /// streams: the upload stops with 413 at the first byte past it.
    pub max_upload_bytes: u64,
    /// Media types accepted for product images, as sniffed from the content (default png,
    /// jpeg, webp, gif); each must be one of [`SNIFFABLE_IMAGE_TYPES`]. Env: comma-separated.
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_types: Vec<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_upload_bytes: 10 * 1024 * 1024,
            allowed_types: ["image/png", "image/jpeg", "image/webp", "image/gif"].map(String::from).to_vec(),
        }
    }
}

impl StorageConfig {
    /// Errors name the key: a zero `max_upload_bytes`, an empty `allowed_types`, or a type
    /// that cannot be sniffed (`image/svg+xml`, `text/html`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_upload_bytes == 0 {
            return Err(ConfigError("`storage.max_upload_bytes` must be positive".into()));
        }
        if self.allowed_types.is_empty() {
            return Err(ConfigError("`storage.allowed_types` must list at least one type".into()));
        }
        if let Some(t) = self.allowed_types.iter().find(|t| !SNIFFABLE_IMAGE_TYPES.contains(&t.as_str())) {
            return Err(ConfigError(format!(
                "`storage.allowed_types` contains {t:?}; allowed are {}",
                SNIFFABLE_IMAGE_TYPES.join(", ")
            )));
        }
        let url = self.url.expose();
        if !(url.is_empty() || url.starts_with("s3://")) {
            return Err(ConfigError("`storage.url` must be empty or s3://bucket[/prefix][?options]".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert!(StorageConfig::default().validate().is_ok());
    }

    #[test]
    fn svg_cannot_be_allowed() {
        let c = StorageConfig { allowed_types: vec!["image/svg+xml".into()], ..Default::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("storage.allowed_types"), "{e}");
    }

    #[test]
    fn a_zero_limit_and_an_empty_list_are_refused() {
        assert!(StorageConfig { max_upload_bytes: 0, ..Default::default() }.validate().is_err());
        assert!(StorageConfig { allowed_types: vec![], ..Default::default() }.validate().is_err());
    }
}
