-- Pairs of blobs that are the same thing, with the strongest kind of match:
--   sha256      the same bytes (every blob is paired with itself),
--   content_id  the same named tensors in another container or with other metadata,
--   weights_id  the same tensor values under other names (and another content_id).
-- Join other_sha256 to files to list every occurrence of the same weights.
CREATE VIEW blob_identity AS
SELECT b.sha256 AS sha256, b.sha256 AS other_sha256, 'sha256' AS kind
FROM blobs AS b
UNION ALL
SELECT a.sha256, o.sha256, 'content_id'
FROM blobs AS a
JOIN blobs AS o ON o.content_id = a.content_id AND o.sha256 <> a.sha256
UNION ALL
SELECT a.sha256, o.sha256, 'weights_id'
FROM blobs AS a
JOIN blobs AS o ON o.weights_id = a.weights_id AND o.sha256 <> a.sha256
WHERE a.content_id IS NULL OR o.content_id IS NULL OR o.content_id <> a.content_id
