-- The other nodes this node knows of: found on the LAN over mDNS (`nearby`
-- while they are still heard from) and, with membership, the members of
-- its glow. Ids are Ed25519 public keys (64 hex digits); `addrs` holds the
-- socket addresses last announced, comma-separated; times are ms.
CREATE TABLE nodes (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    addrs     TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    nearby    INTEGER NOT NULL DEFAULT 0
);
