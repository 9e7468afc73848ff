-- Every hosted occurrence (live or gone) of a file, with its weights family:
-- blobs sharing a weights_id (the same tensor values in any container or naming)
-- are one family; a blob without one is its own family, named by its sha256.
-- owner is the account holding the copy (the repo's owner, else its host id).
-- published_at is the host's date for the file (else its repo's); country and
-- operator are the host's (hosts table, from modelscan/hostinfo.py).
-- Files on host 'local' are the user's own copies and are left out.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
CREATE VIEW spread_family_files AS
SELECT
    COALESCE(b.weights_id, b.sha256) AS family,
    b.sha256 AS sha256,
    f.id AS file_id,
    f.repo_id AS repo_id,
    r.host AS host,
    r.host_id AS host_id,
    COALESCE(r.owner, r.host_id) AS owner,
    r.downloads AS downloads,
    r.downloads_all_time AS downloads_all_time,
    h.country AS country,
    h.operator AS operator,
    f.path AS path,
    f.status AS status,
    f.first_seen AS first_seen,
    f.last_seen AS last_seen,
    f.gone_at AS gone_at,
    COALESCE(f.published_at, r.published_at) AS published_at
FROM files AS f
JOIN blobs AS b ON b.sha256 = f.sha256
JOIN repos AS r ON r.id = f.repo_id
JOIN hosts AS h ON h.name = r.host
WHERE r.host <> 'local'
