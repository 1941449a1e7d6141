-- Product images (src/files/images.rs, docs/FILES.md). The bytes live in file storage
-- (`storage_key`, built from ids only: `images/<product_id>/<id>`); this row is what the API
-- lists and serves. `content_type` is the sniffed type, never the client's claim; `sha256`
-- (lowercase hex) is the strong ETag; `file_name` is the sanitised name the client sent.
-- `position` orders a product's images (0 first). An image row goes with its product.
CREATE TABLE product_images (
    id            TEXT PRIMARY KEY,
    product_id    TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    storage_key   TEXT NOT NULL UNIQUE,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL CHECK (size_bytes >= 0),
    sha256        TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    position      BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT
);
CREATE INDEX product_images_product ON product_images (product_id, position);
