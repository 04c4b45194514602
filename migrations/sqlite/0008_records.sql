-- What the members of a glow share: users, folder definitions, share links
-- and the member list itself, as versioned records (one current value per
-- kind and key; `value` is JSON). `sequence` numbers every record this
-- node stored, its own or pulled, so a peer asks for "everything after N".
CREATE TABLE records (
    kind           TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    version_vector TEXT NOT NULL,
    origin         TEXT NOT NULL,
    changed_at     BIGINT NOT NULL,
    changed_by     TEXT NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    sequence       BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX records_by_sequence ON records (sequence);

-- Every value a record had before (replaced by a newer one, or the loser
-- of two concurrent changes): who changed what, where and when.
CREATE TABLE record_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    version_vector TEXT NOT NULL,
    origin         TEXT NOT NULL,
    changed_at     BIGINT NOT NULL,
    changed_by     TEXT NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    replaced_at    BIGINT NOT NULL,
    reason         TEXT NOT NULL
);
CREATE INDEX record_history_by_key ON record_history (kind, key);

-- The last of each peer's sequence numbers this node has applied.
CREATE TABLE peer_cursors (
    node     TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL
);

-- Invites this node wrote: only a digest of the secret is kept.
CREATE TABLE invites (
    digest     TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    used_by    TEXT,
    used_at    BIGINT
);

-- Where a member can be reached through a relay: the relay URLs it serves
-- (comma-separated) and the one it was last reachable through.
ALTER TABLE nodes ADD COLUMN relays TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN home_relay TEXT NOT NULL DEFAULT '';
