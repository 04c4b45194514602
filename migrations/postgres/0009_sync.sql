-- Folder sync. Each entry names the node that made its current content
-- (conflict copies are named after it); per folder and peer, how far this
-- node has read that peer's index: the peer's index id (its replica's
-- folder id, new when a replica is made again) and the last sequence
-- number applied; and how the last pull went (when, what was left to
-- take, why it failed, how many bytes came from it in all), for `glow
-- folder status`.
ALTER TABLE entries ADD COLUMN modified_by TEXT NOT NULL DEFAULT '';
CREATE TABLE sync_cursors (
    folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    peer      TEXT NOT NULL,
    index_id  TEXT NOT NULL,
    sequence  BIGINT NOT NULL,
    checked_at BIGINT NOT NULL DEFAULT 0,
    left_files BIGINT NOT NULL DEFAULT 0,
    left_bytes BIGINT NOT NULL DEFAULT 0,
    received_bytes BIGINT NOT NULL DEFAULT 0,
    error     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (folder_id, peer)
);
