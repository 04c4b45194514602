-- Copies of current content (for versioning edits made on disk) follow a
-- per-folder policy and a budget: `copies` is 'off', 'small' (files up to
-- 64 MiB that are not media: the default) or 'all'; `copy_budget` caps a
-- folder's copies in bytes (NULL: only the node's budget).
ALTER TABLE folders ADD COLUMN copies TEXT NOT NULL DEFAULT 'small';
ALTER TABLE folders ADD COLUMN copy_budget BIGINT;
UPDATE folders SET copies = 'off' WHERE keep_copies = 0;
ALTER TABLE folders DROP COLUMN keep_copies;

-- Which blobs are copies of a folder's current content, since when (the
-- oldest are evicted first when a budget is full).
CREATE TABLE copies (
    folder_id  TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (folder_id, hash)
);
CREATE INDEX copies_by_hash ON copies (hash);
CREATE INDEX copies_by_age ON copies (created_at);
