-- Share links are kept as digests of their tokens: the catalog alone no
-- longer opens any link. A sealed copy (key in the data dir) lets the owner
-- see the URL again. Downloads are counted in thousandths of a file served,
-- so that ranges add up to whole downloads.
ALTER TABLE shares RENAME COLUMN token TO token_digest;
ALTER TABLE shares ADD COLUMN token_sealed TEXT;
ALTER TABLE shares ADD COLUMN served_millis BIGINT NOT NULL DEFAULT 0;
UPDATE shares SET served_millis = downloads * 1000;
ALTER TABLE shares DROP COLUMN downloads;
