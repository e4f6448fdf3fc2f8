-- The fovea catalog on PostgreSQL: the SQLite migrations (../migrations) folded into one, translated type by type.
-- Every integer is BIGINT so both backends decode the same Rust types; JSON stays TEXT as there.

-- ==== from 0001_init.sql ====

CREATE TABLE images (
    id          TEXT PRIMARY KEY,              -- lowercase hex SHA-256 of the bytes
    blob_key    TEXT NOT NULL,
    width       BIGINT NOT NULL,
    height      BIGINT NOT NULL,
    format      TEXT NOT NULL,
    source      TEXT NOT NULL,
    split       TEXT NOT NULL DEFAULT 'unassigned',
    created_at  BIGINT NOT NULL
);
CREATE INDEX images_created ON images (created_at, id);

CREATE TABLE classes (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Trimmed, lowercased name computed by the application (SQLite's lower() is ASCII-only).
    name_key    TEXT NOT NULL UNIQUE,
    is_unknown  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
-- At most one Unknown class; the row below makes it exactly one.
CREATE UNIQUE INDEX classes_one_unknown ON classes (is_unknown) WHERE is_unknown;
INSERT INTO classes (name, name_key, is_unknown, created_at) VALUES ('Unknown', 'unknown', TRUE, 0);

-- Append-only label log: id is the event sequence, the newest label of an image is its current one.
CREATE TABLE labels (
    id                 BIGSERIAL PRIMARY KEY,
    image_id           TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    class_id           BIGINT NOT NULL REFERENCES classes (id),
    previous_class_id  BIGINT REFERENCES classes (id),
    user_name          TEXT NOT NULL,
    origin             TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX labels_image ON labels (image_id, id);
CREATE INDEX labels_class ON labels (class_id);
CREATE INDEX labels_previous_class ON labels (previous_class_id);

CREATE TABLE transactions (
    id                BIGSERIAL PRIMARY KEY,
    image_id          TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    model_version     TEXT NOT NULL,
    kind              TEXT NOT NULL,
    top_k             TEXT NOT NULL,          -- JSON [{class, probability}]
    -- The best entry of top_k, kept in columns so confidence filters need no JSON functions.
    top1_class        TEXT,
    top1_probability  DOUBLE PRECISION,
    chosen_class      TEXT,
    user_name         TEXT NOT NULL,
    latency_ms        DOUBLE PRECISION NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX transactions_image_kind ON transactions (image_id, kind, id);

CREATE TABLE embeddings (
    image_id    TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    backbone    TEXT NOT NULL,
    dim         BIGINT NOT NULL,
    vector      BYTEA NOT NULL,                -- little-endian f32 x dim
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (image_id, backbone)
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE head_snapshots (
    id          BIGSERIAL PRIMARY KEY,
    label_seq   BIGINT NOT NULL,              -- the last label id folded into this head
    bytes       BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE model_versions (
    id          TEXT PRIMARY KEY,
    parent      TEXT REFERENCES model_versions (id),
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'candidate',
    metrics     TEXT NOT NULL DEFAULT '{}',   -- JSON
    created_at  BIGINT NOT NULL
);
-- Exactly one promoted model is a database invariant, not just a convention of the code.
CREATE UNIQUE INDEX model_versions_one_promoted ON model_versions (status) WHERE status = 'promoted';

CREATE TABLE jobs (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',  -- JSON
    state        TEXT NOT NULL DEFAULT 'queued',
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0,
    message      TEXT,
    attempt      BIGINT NOT NULL DEFAULT 0,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, id);

-- ==== from 0002_snapshot_backbone.sql ====
-- A head snapshot is only valid for the backbone whose embeddings it learned from: after a promotion or a
-- rollback the served backbone changes, and the head must be restored from that backbone's snapshot.
ALTER TABLE head_snapshots ADD COLUMN backbone TEXT NOT NULL DEFAULT 'lite0';
CREATE INDEX head_snapshots_by_backbone ON head_snapshots (backbone, id);

-- ==== from 0003_label_log_epoch.sql ====
-- A rename or a merge rewrites what past labels mean (a class's name, which class a label points at), so a head
-- folded from the label log before one is void, for every backbone. This counter is bumped in the same transaction
-- as each rename or merge; every head snapshot records the epoch it was folded under, and only snapshots of the
-- current epoch are restored (an older one is replaced by a replay from the start of the log). So a crash between
-- a rename's commit and the rebuild of the head, or a promotion to a backbone whose snapshot predates the rename,
-- can never bring the old names back.
CREATE TABLE label_log_epoch (
    id     BIGINT PRIMARY KEY CHECK (id = 1),   -- exactly one row
    epoch  BIGINT NOT NULL
);
-- Starts at 1, so every snapshot saved before this migration (epoch 0 below) is replayed once: snapshots of a
-- backbone other than the served one were not rebuilt after a rename or merge, and may be stale.
INSERT INTO label_log_epoch (id, epoch) VALUES (1, 1);
ALTER TABLE head_snapshots ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- ==== from 0004_collections.sql ====
-- Collections: folders (or batches of uploads) bulk-identified by a model, with every image's result kept so a person
-- can sift them with filters; tags on images; and bulk actions recorded so each can be undone as a whole.

CREATE TABLE collections (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL,
    source         TEXT NOT NULL,            -- the folder walked, or 'upload'
    model          TEXT,                     -- the registry version asked for; NULL means the one served
    job_id         BIGINT,
    total          BIGINT,                   -- files found, known once the walk has ended
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- One row per file, written in walk order in batches: the number of rows is the resume cursor, and
-- UNIQUE (collection_id, path) keeps a file from being counted twice whatever happens.
CREATE TABLE collection_items (
    collection_id     BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    path              TEXT NOT NULL,
    image_id          TEXT REFERENCES images (id),
    error             TEXT,
    model_version     TEXT,
    backbone          TEXT,
    top_k             TEXT,                  -- JSON [{class, probability}], calibrated
    top1_class        TEXT,
    top1_probability  DOUBLE PRECISION,
    top2_class        TEXT,
    margin            DOUBLE PRECISION,      -- top-1 minus top-2 probability
    is_unknown        BOOLEAN NOT NULL DEFAULT FALSE,
    discarded         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (collection_id, seq),
    UNIQUE (collection_id, path)
);
CREATE INDEX collection_items_class ON collection_items (collection_id, top1_class);
CREATE INDEX collection_items_image ON collection_items (image_id);

CREATE TABLE image_tags (
    image_id    TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE INDEX image_tags_tag ON image_tags (tag, image_id);

CREATE TABLE bulk_actions (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',  -- JSON
    user_name    TEXT NOT NULL,
    changed      BIGINT NOT NULL,
    undone_at    BIGINT,
    created_at   BIGINT NOT NULL
);

-- What one bulk action changed for one image, enough to put it back: the label row it appended, whether the tag
-- was there before, or the collection item it discarded.
CREATE TABLE bulk_action_items (
    action_id      BIGINT NOT NULL REFERENCES bulk_actions (id) ON DELETE CASCADE,
    image_id       TEXT NOT NULL,
    label_id       BIGINT,
    collection_id  BIGINT,
    seq            BIGINT
);
CREATE INDEX bulk_action_items_action ON bulk_action_items (action_id);

-- ==== from 0005_insight.sql ====
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
    id             BIGSERIAL PRIMARY KEY,
    model_version  TEXT NOT NULL,
    since          BIGINT NOT NULL,            -- predictions from this time on were the population
    population     BIGINT NOT NULL,
    strata         TEXT NOT NULL,              -- JSON [{key, population, sampled}]
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE evaluation_items (
    id              BIGSERIAL PRIMARY KEY,
    round_id        BIGINT NOT NULL REFERENCES evaluation_rounds (id) ON DELETE CASCADE,
    transaction_id  BIGINT NOT NULL REFERENCES transactions (id) ON DELETE CASCADE,
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
    id             BIGSERIAL PRIMARY KEY,
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
    id               BIGSERIAL PRIMARY KEY,
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
    id          BIGSERIAL PRIMARY KEY,
    class_id    BIGINT NOT NULL,
    old_name    TEXT NOT NULL,
    new_name    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- ==== from 0006_hygiene.sql ====
-- Dataset hygiene: what a person decided about suspected label errors and duplicate groups, and the perceptual
-- hashes near duplicates are found with (computed once per image, from its decoded pixels).

-- A label the model disputed that a person looked at and kept. Keyed by the label row, so relabelling the image
-- later (a new row) makes it eligible for a second look again.
CREATE TABLE label_confirmations (
    label_id    BIGINT PRIMARY KEY REFERENCES labels (id) ON DELETE CASCADE,
    image_id    TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    user_name   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Per image: the difference hash of its pixels (a 64-bit pattern stored as a signed integer) and the SHA-256 of
-- its decoded RGB pixels, which is equal for re-encodings that change the bytes but not the picture.
CREATE TABLE image_hashes (
    image_id     TEXT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    dhash        BIGINT NOT NULL,
    pixel_sha256 TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX image_hashes_pixels ON image_hashes (pixel_sha256);

-- Duplicate groups a person chose to keep whole. `group_key` names the group as it was decided (its members' ids,
-- sorted and hashed), so a group that later gains a member is shown again.
CREATE TABLE duplicate_keeps (
    image_id    TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    group_key   TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (group_key, image_id)
);
