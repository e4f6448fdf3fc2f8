-- A head snapshot is only valid for the backbone whose embeddings it learned from: after a promotion or a
-- rollback the served backbone changes, and the head must be restored from that backbone's snapshot.
ALTER TABLE head_snapshots ADD COLUMN backbone TEXT NOT NULL DEFAULT 'lite0';
CREATE INDEX head_snapshots_by_backbone ON head_snapshots (backbone, id);
