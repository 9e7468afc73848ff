-- Every lineage edge, readable: child and parent as host and host id (the parent
-- as declared when it is not crawled yet), the files involved, relation, source
-- (declared-card, declared-tag, declared-file, identical-hash, same-content,
-- same-weights, weight-similarity) and confidence.
CREATE VIEW lineage_edges AS
SELECT
    l.id AS id,
    c.host AS child_host,
    c.host_id AS child,
    l.child_sha256 AS child_sha256,
    l.relation AS relation,
    l.source AS source,
    l.confidence AS confidence,
    p.host AS parent_host,
    COALESCE(p.host_id, l.parent_ref) AS parent,
    l.parent_sha256 AS parent_sha256,
    l.parent_ref AS parent_ref,
    CASE WHEN l.parent_repo_id IS NULL THEN 0 ELSE 1 END AS resolved,
    l.first_seen AS first_seen,
    l.last_seen AS last_seen
FROM lineage AS l
LEFT JOIN repos AS c ON c.id = l.child_repo_id
LEFT JOIN repos AS p ON p.id = l.parent_repo_id
