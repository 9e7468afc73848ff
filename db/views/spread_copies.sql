-- Per weights family: copies (occurrences ever seen), live copies, distinct hosts and
-- (host, owner) accounts that ever held one, takedown_cost (accounts holding a live
-- copy) beside the jurisdictions (host countries) and operators holding a live
-- copy, downloads summed over the distinct repos holding one (as each host counts
-- them, and all-time where the host says), first published (the hosts' own dates),
-- first and last seen (ours), and survival (gone copies, and how many had a live
-- copy in another repo then).
-- sha256 is one member of the family (the smallest hash), for lookups.
-- The counts, downloads and dates are the rank counters (family_counts,
-- family_blobs, family_hosts, family_repos, kept by db/counters.py), so ORDER BY
-- live_copies or takedown_cost DESC LIMIT n reads an index; jurisdictions,
-- operators and survival are computed for the rows asked for, from that
-- family's hosts and hosted occurrences (host 'local' left out).
CREATE VIEW spread_copies AS
SELECT
    c.family AS family,
    (SELECT MIN(m.sha256) FROM family_blobs AS m WHERE m.family = c.family)
        AS sha256,
    c.blobs AS blobs,
    c.copies AS copies,
    c.live_copies AS live_copies,
    c.hosts AS hosts,
    c.owners AS owners,
    c.takedown_cost AS takedown_cost,
    (SELECT COUNT(DISTINCT h.country)
     FROM family_hosts AS fh JOIN hosts AS h ON h.name = fh.host
     WHERE fh.family = c.family AND fh.live_copies > 0) AS jurisdictions,
    (SELECT COUNT(DISTINCT h.operator)
     FROM family_hosts AS fh JOIN hosts AS h ON h.name = fh.host
     WHERE fh.family = c.family AND fh.live_copies > 0) AS operators,
    c.downloads AS downloads,
    c.downloads_all_time AS downloads_all_time,
    c.first_published AS first_published,
    c.first_seen AS first_seen,
    c.last_seen AS last_seen,
    c.copies - c.live_copies AS gone_copies,
    (SELECT COUNT(*)
     FROM family_blobs AS m
     JOIN files AS g ON g.sha256 = m.sha256
     JOIN repos AS gr ON gr.id = g.repo_id
     WHERE m.family = c.family AND gr.host <> 'local' AND g.gone_at IS NOT NULL
       AND EXISTS (
           SELECT 1 FROM family_blobs AS m2
           JOIN files AS o ON o.sha256 = m2.sha256
           JOIN repos AS orr ON orr.id = o.repo_id
           WHERE m2.family = c.family AND orr.host <> 'local'
             AND o.repo_id <> g.repo_id
             AND o.first_seen <= g.gone_at
             AND (o.gone_at IS NULL OR o.gone_at > g.gone_at))) AS survived
FROM family_counts AS c
WHERE c.copies > 0
