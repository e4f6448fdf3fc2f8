-- The fovea catalog. Kept to SQL that PostgreSQL also accepts (apart from the type names INTEGER
-- PRIMARY KEY AUTOINCREMENT and BLOB, which a PostgreSQL migration spells BIGSERIAL/BYTEA), so a second
-- backend is a translation of this file, not a redesign. Timestamps are integer milliseconds since epoch.
-- Reserved words (user, transaction) are avoided as table and column names for the same reason.

CREATE TABLE images (
    id          TEXT PRIMARY KEY,              -- lowercase hex SHA-256 of the bytes
    blob_key    TEXT NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    format      TEXT NOT NULL,
    source      TEXT NOT NULL,
    split       TEXT NOT NULL DEFAULT 'unassigned',
    created_at  BIGINT NOT NULL
);
CREATE INDEX images_created ON images (created_at, id);

CREATE TABLE classes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
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
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id           TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    class_id           INTEGER NOT NULL REFERENCES classes (id),
    previous_class_id  INTEGER REFERENCES classes (id),
    user_name          TEXT NOT NULL,
    origin             TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX labels_image ON labels (image_id, id);
CREATE INDEX labels_class ON labels (class_id);
CREATE INDEX labels_previous_class ON labels (previous_class_id);

CREATE TABLE transactions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
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
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL,                -- little-endian f32 x dim
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (image_id, backbone)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE head_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    label_seq   BIGINT NOT NULL,              -- the last label id folded into this head
    bytes       BLOB NOT NULL,
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
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',  -- JSON
    state        TEXT NOT NULL DEFAULT 'queued',
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0,
    message      TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, id);
