-- Per blob (one file content, by sha256): how far it has spread.
-- live_copies: occurrences not gone; hosts/owners: distinct hosts and (host, owner)
-- accounts holding a live copy (owners is the takedown cost; a repo without an
-- owner is its host id's account); jurisdictions: the distinct countries of the
-- hosts holding a live copy; first_published (the hosts' dates) and
-- first/last_seen (ours) over every occurrence, live or not.
-- The counts and dates are the rank counters (blob_counts, kept by
-- db/counters.py), so ORDER BY live_copies DESC LIMIT n reads an index; only
-- jurisdictions is computed for the rows asked for (from blob_hosts).
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
CREATE VIEW blob_copies AS
SELECT
    c.sha256 AS sha256,
    b.format AS format,
    b.size AS size,
    b.content_id AS content_id,
    b.weights_id AS weights_id,
    c.live_copies AS live_copies,
    c.total_copies AS total_copies,
    c.hosts AS hosts,
    c.owners AS owners,
    (SELECT COUNT(DISTINCT h.country)
     FROM blob_hosts AS bh JOIN hosts AS h ON h.name = bh.host
     WHERE bh.sha256 = c.sha256 AND bh.live_copies > 0) AS jurisdictions,
    c.first_published AS first_published,
    c.first_seen AS first_seen,
    c.last_seen AS last_seen
FROM blob_counts AS c
JOIN blobs AS b ON b.sha256 = c.sha256
