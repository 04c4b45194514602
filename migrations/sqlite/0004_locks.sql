-- Advisory write locks on paths of a user's namespace (WebDAV class 2),
-- kept here so that they survive a restart and are shared by every process.
CREATE TABLE locks (
    token      TEXT PRIMARY KEY,
    owner_user TEXT NOT NULL,
    scope      TEXT NOT NULL,
    href       TEXT NOT NULL,
    principal  TEXT,
    owner_xml  BLOB,
    expires_at BIGINT,
    timeout_ms BIGINT,
    shared     BIGINT NOT NULL,
    deep       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX locks_by_user ON locks (owner_user);
