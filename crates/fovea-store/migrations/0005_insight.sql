-- Insight: what reports, manual evaluations and drift alerts need from the log.

-- The open-set verdict served with a prediction (the unknown rate is a drift signal), and simple statistics of
-- each image (brightness, grey or colour), measured when its bytes are first decoded; NULL for images stored
-- before this migration until something measures them.
ALTER TABLE transactions ADD COLUMN unknown BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE images ADD COLUMN brightness DOUBLE PRECISION;
ALTER TABLE images ADD COLUMN grayscale BOOLEAN;
CREATE INDEX transactions_kind_created ON transactions (kind, created_at);
CREATE INDEX labels_created ON labels (created_at);

-- A manual evaluation round: a stratified sample of one model's recent predictions for reviewers to judge.
CREATE TABLE evaluation_rounds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version  TEXT NOT NULL,
    since          BIGINT NOT NULL,            -- predictions from this time on were the population
    population     BIGINT NOT NULL,
    strata         TEXT NOT NULL,              -- JSON [{key, population, sampled}]
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE evaluation_items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id        INTEGER NOT NULL REFERENCES evaluation_rounds (id) ON DELETE CASCADE,
    transaction_id  INTEGER NOT NULL REFERENCES transactions (id) ON DELETE CASCADE,
    stratum         TEXT NOT NULL,
    verdict         TEXT,                      -- right | wrong | skip; NULL until answered
    correct_class   TEXT,
    answered_by     TEXT,
    answered_at     BIGINT,
    UNIQUE (round_id, transaction_id)
);
CREATE INDEX evaluation_items_round ON evaluation_items (round_id, verdict, id);

-- Drift alerts: raised when a signal stays over its threshold, cleared when it falls back.
CREATE TABLE drift_alerts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    signal         TEXT NOT NULL,
    statistic      DOUBLE PRECISION NOT NULL,
    threshold      DOUBLE PRECISION NOT NULL,
    reference      DOUBLE PRECISION NOT NULL,
    current        DOUBLE PRECISION NOT NULL,
    detail         TEXT NOT NULL,
    since          BIGINT NOT NULL,
    examples       TEXT NOT NULL,              -- JSON [image id]
    model_version  TEXT NOT NULL,
    raised_at      BIGINT NOT NULL,
    cleared_at     BIGINT
);
CREATE INDEX drift_alerts_open ON drift_alerts (cleared_at, id);

-- A merge, kept so it can be undone: the class it removed and the label rows it rewrote.
CREATE TABLE class_merges (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    from_id          BIGINT NOT NULL,
    from_name        TEXT NOT NULL,
    from_created_at  BIGINT NOT NULL,
    into_id          BIGINT NOT NULL,
    moved            TEXT NOT NULL,            -- JSON [label id] whose class was `from`
    moved_previous   TEXT NOT NULL,            -- JSON [label id] whose previous class was `from`
    created_at       BIGINT NOT NULL,
    undone_at        BIGINT
);

-- Renames, kept so the History tab can offer to undo them (an undo is a rename back, recorded in turn).
CREATE TABLE class_renames (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    class_id    BIGINT NOT NULL,
    old_name    TEXT NOT NULL,
    new_name    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
