-- Per weights family: copies (occurrences ever seen), live copies, distinct hosts and
-- (host, owner) accounts that ever held one, takedown_cost (accounts holding a live
-- copy) beside the jurisdictions (host countries) and operators holding a live
-- copy, downloads summed over the distinct repos holding one (as each host counts
-- them, and all-time where the host says), first published (the hosts' own dates),
-- first and last seen (ours), and survival (gone copies, and how many had a live
-- copy in another repo then).
-- sha256 is one member of the family (the smallest hash), for lookups.
CREATE VIEW spread_copies AS
SELECT
    c.family AS family,
    c.sha256 AS sha256,
    c.blobs AS blobs,
    c.copies AS copies,
    c.live_copies AS live_copies,
    c.hosts AS hosts,
    c.owners AS owners,
    c.takedown_cost AS takedown_cost,
    c.jurisdictions AS jurisdictions,
    c.operators AS operators,
    COALESCE(d.downloads, 0) AS downloads,
    COALESCE(d.downloads_all_time, 0) AS downloads_all_time,
    c.first_published AS first_published,
    c.first_seen AS first_seen,
    c.last_seen AS last_seen,
    COALESCE(s.gone, 0) AS gone_copies,
    COALESCE(s.survived, 0) AS survived
FROM (
    SELECT
        x.family AS family,
        MIN(x.sha256) AS sha256,
        COUNT(DISTINCT x.sha256) AS blobs,
        COUNT(*) AS copies,
        COUNT(CASE WHEN x.gone_at IS NULL THEN x.file_id END) AS live_copies,
        COUNT(DISTINCT x.host) AS hosts,
        COUNT(DISTINCT x.host || ':' || x.owner) AS owners,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL
                            THEN x.host || ':' || x.owner END) AS takedown_cost,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.country END)
            AS jurisdictions,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.operator END) AS operators,
        MIN(x.published_at) AS first_published,
        MIN(x.first_seen) AS first_seen,
        MAX(x.last_seen) AS last_seen
    FROM spread_family_files AS x
    GROUP BY x.family
) AS c
LEFT JOIN (
    SELECT
        fr.family AS family,
        SUM(fr.downloads) AS downloads,
        SUM(fr.downloads_all_time) AS downloads_all_time
    FROM (
        SELECT DISTINCT family, repo_id, downloads, downloads_all_time
        FROM spread_family_files
    ) AS fr
    GROUP BY fr.family
) AS d ON d.family = c.family
LEFT JOIN (
    SELECT family, COUNT(*) AS gone, SUM(survived) AS survived
    FROM spread_survival
    GROUP BY family
) AS s ON s.family = c.family
