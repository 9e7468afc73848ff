-- One row per copy that went gone: survived = 1 when another repo held a live copy
-- of the same weights family at the moment it went (first seen by then, and not
-- gone before then), else 0.
CREATE VIEW spread_survival AS
SELECT
    g.family AS family,
    g.sha256 AS sha256,
    g.file_id AS file_id,
    g.host AS host,
    g.host_id AS host_id,
    g.owner AS owner,
    g.status AS status,
    g.gone_at AS gone_at,
    CASE WHEN EXISTS (
        SELECT 1 FROM spread_family_files AS o
        WHERE o.family = g.family
          AND o.repo_id <> g.repo_id
          AND o.first_seen <= g.gone_at
          AND (o.gone_at IS NULL OR o.gone_at > g.gone_at)
    ) THEN 1 ELSE 0 END AS survived
FROM spread_family_files AS g
WHERE g.gone_at IS NOT NULL
