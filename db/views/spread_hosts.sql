-- Per weights family and host: copies, live copies, accounts, takedown cost on that
-- host, and when the family was first and last seen there.
CREATE VIEW spread_hosts AS
SELECT
    x.family AS family,
    x.host AS host,
    COUNT(*) AS copies,
    COUNT(CASE WHEN x.gone_at IS NULL THEN x.file_id END) AS live_copies,
    COUNT(DISTINCT x.owner) AS owners,
    COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.owner END) AS takedown_cost,
    MIN(x.first_seen) AS first_seen,
    MAX(x.last_seen) AS last_seen
FROM spread_family_files AS x
GROUP BY x.family, x.host
