-- A rename or a merge rewrites what past labels mean (a class's name, which class a label points at), so a head
-- folded from the label log before one is void, for every backbone. This counter is bumped in the same transaction
-- as each rename or merge; every head snapshot records the epoch it was folded under, and only snapshots of the
-- current epoch are restored (an older one is replaced by a replay from the start of the log). So a crash between
-- a rename's commit and the rebuild of the head, or a promotion to a backbone whose snapshot predates the rename,
-- can never bring the old names back.
CREATE TABLE label_log_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),   -- exactly one row
    epoch  BIGINT NOT NULL
);
-- Starts at 1, so every snapshot saved before this migration (epoch 0 below) is replayed once: snapshots of a
-- backbone other than the served one were not rebuilt after a rename or merge, and may be stale.
INSERT INTO label_log_epoch (id, epoch) VALUES (1, 1);
ALTER TABLE head_snapshots ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
