-- Named properties of entries (WebDAV dead properties): opaque values kept
-- by the catalog and moved or dropped with their entry.
CREATE TABLE properties (
    folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    prefix    TEXT,
    value     BYTEA,
    PRIMARY KEY (folder_id, path, namespace, name)
);
