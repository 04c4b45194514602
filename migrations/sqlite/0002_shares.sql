-- Share links: capabilities for a file or folder, opened without an account.
CREATE TABLE shares (
    id            TEXT PRIMARY KEY,
    token         TEXT NOT NULL UNIQUE,
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    folder_id     TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    permission    TEXT NOT NULL,
    expires_at    BIGINT,
    password_hash TEXT,
    max_downloads BIGINT,
    downloads     BIGINT NOT NULL DEFAULT 0,
    uses          BIGINT NOT NULL DEFAULT 0,
    revoked       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);
CREATE INDEX shares_by_owner ON shares (owner_id);
