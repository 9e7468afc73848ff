-- Per blob (one file content, by sha256): how far it has spread.
-- live_copies: occurrences not gone; hosts/owners: distinct hosts and (host, owner)
-- accounts holding a live copy (owners is the takedown cost); jurisdictions: the
-- distinct countries of the hosts holding a live copy; first_published (the hosts'
-- dates) and first/last_seen (ours) over every occurrence, live or not.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
CREATE VIEW blob_copies AS
SELECT
    b.sha256 AS sha256,
    b.format AS format,
    b.size AS size,
    b.content_id AS content_id,
    b.weights_id AS weights_id,
    COUNT(CASE WHEN f.gone_at IS NULL THEN f.id END) AS live_copies,
    COUNT(f.id) AS total_copies,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL THEN r.host END) AS hosts,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL
                        THEN r.host || ':' || COALESCE(r.owner, '') END) AS owners,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL THEN h.country END) AS jurisdictions,
    MIN(COALESCE(f.published_at, r.published_at)) AS first_published,
    MIN(f.first_seen) AS first_seen,
    MAX(f.last_seen) AS last_seen
FROM blobs AS b
LEFT JOIN files AS f ON f.sha256 = b.sha256
LEFT JOIN repos AS r ON r.id = f.repo_id
LEFT JOIN hosts AS h ON h.name = r.host
GROUP BY b.sha256, b.format, b.size, b.content_id, b.weights_id
