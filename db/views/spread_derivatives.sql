-- Per parent repo and relation: distinct child repos (copies left out: they are in
-- spread_copies), how many of them are still live, and how many edges were declared
-- by a host or file rather than inferred.
CREATE VIEW spread_derivatives AS
SELECT
    p.id AS repo_id,
    p.host AS host,
    p.host_id AS host_id,
    l.relation AS relation,
    COUNT(DISTINCT l.child_repo_id) AS children,
    COUNT(DISTINCT CASE WHEN c.gone_at IS NULL THEN l.child_repo_id END) AS live_children,
    COUNT(DISTINCT CASE WHEN l.source LIKE 'declared%' THEN l.child_repo_id END)
        AS declared_children
FROM lineage AS l
JOIN repos AS p ON p.id = l.parent_repo_id
JOIN repos AS c ON c.id = l.child_repo_id
WHERE l.relation <> 'copy'
GROUP BY p.id, p.host, p.host_id, l.relation
