-- Glow catalog, SQLite flavour. Times are milliseconds since the Unix epoch
-- (mtime in nanoseconds); ids are text and flags are 0/1 integers, the types
-- that AnyPool carries on both engines.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE app_passwords (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE folders (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,
    keep_copies BIGINT NOT NULL DEFAULT 1,
    media       BIGINT NOT NULL DEFAULT 0,
    sequence    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

-- One row per path ever seen in a folder; deletes are tombstones (deleted = TRUE)
-- so that sync can tell "deleted" from "never had it".
CREATE TABLE entries (
    folder_id      TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    mtime_ns       BIGINT NOT NULL,
    hash           TEXT,
    version_vector TEXT NOT NULL,
    sequence       BIGINT NOT NULL,
    deleted        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (folder_id, path)
);
CREATE INDEX entries_by_sequence ON entries (folder_id, sequence);
CREATE INDEX entries_by_hash ON entries (hash);

CREATE TABLE trash (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id  TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    deleted_at BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    front      TEXT NOT NULL
);

-- Earlier contents of files: each points at a blob in the content-addressed store.
CREATE TABLE versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id  TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    mtime_ns   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    front      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    trash_id   BIGINT REFERENCES trash(id) ON DELETE CASCADE
);
CREATE INDEX versions_by_path ON versions (folder_id, path);
CREATE INDEX versions_by_hash ON versions (hash);
CREATE INDEX versions_by_trash ON versions (trash_id);
