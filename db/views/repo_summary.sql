-- Per repo: live files and distinct blobs, declared parents (lineage rows whose
-- source starts with "declared"), and children (lineage rows pointing at it).
CREATE VIEW repo_summary AS
SELECT
    r.id AS repo_id,
    r.host AS host,
    r.host_id AS host_id,
    r.owner AS owner,
    r.name AS name,
    r.status AS status,
    r.revision AS revision,
    r.downloads AS downloads,
    r.likes AS likes,
    (SELECT COUNT(*) FROM files AS f
      WHERE f.repo_id = r.id AND f.gone_at IS NULL) AS files,
    (SELECT COUNT(DISTINCT f.sha256) FROM files AS f
      WHERE f.repo_id = r.id AND f.gone_at IS NULL) AS blobs,
    (SELECT COUNT(*) FROM lineage AS l
      WHERE l.child_repo_id = r.id AND l.source LIKE 'declared%') AS declared_parents,
    (SELECT COUNT(DISTINCT l.child_repo_id) FROM lineage AS l
      WHERE l.parent_repo_id = r.id) AS children,
    r.first_seen AS first_seen,
    r.last_seen AS last_seen,
    r.gone_at AS gone_at
FROM repos AS r
