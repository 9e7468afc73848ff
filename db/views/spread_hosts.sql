-- Per weights family and host: copies, live copies, accounts, takedown cost on that
-- host, the host's country and operator, when the family was first published
-- there (the host's dates) and first and last seen there (ours).
CREATE VIEW spread_hosts AS
SELECT
    x.family AS family,
    x.host AS host,
    MAX(x.country) AS country,
    MAX(x.operator) AS operator,
    COUNT(*) AS copies,
    COUNT(CASE WHEN x.gone_at IS NULL THEN x.file_id END) AS live_copies,
    COUNT(DISTINCT x.owner) AS owners,
    COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.owner END) AS takedown_cost,
    MIN(x.published_at) AS first_published,
    MIN(x.first_seen) AS first_seen,
    MAX(x.last_seen) AS last_seen
FROM spread_family_files AS x
GROUP BY x.family, x.host
