-- Folder sync. Each entry names the node that made its current content
-- (conflict copies are named after it); per folder and peer, how far this
-- node has read that peer's index: the peer's index id (its replica's
-- folder id, new when a replica is made again) and the last sequence
-- number applied.
ALTER TABLE entries ADD COLUMN modified_by TEXT NOT NULL DEFAULT '';
CREATE TABLE sync_cursors (
    folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    peer      TEXT NOT NULL,
    index_id  TEXT NOT NULL,
    sequence  BIGINT NOT NULL,
    PRIMARY KEY (folder_id, peer)
);
