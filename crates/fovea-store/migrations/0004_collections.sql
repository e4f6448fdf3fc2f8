-- Collections: folders (or batches of uploads) bulk-identified by a model, with every image's result kept so a person
-- can sift them with filters; tags on images; and bulk actions recorded so each can be undone as a whole.

CREATE TABLE collections (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL,
    source         TEXT NOT NULL,            -- the folder walked, or 'upload'
    model          TEXT,                     -- the registry version asked for; NULL means the one served
    job_id         INTEGER,
    total          BIGINT,                   -- files found, known once the walk has ended
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- One row per file, written in walk order in batches: the number of rows is the resume cursor, and
-- UNIQUE (collection_id, path) keeps a file from being counted twice whatever happens.
CREATE TABLE collection_items (
    collection_id     INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
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
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
    action_id      INTEGER NOT NULL REFERENCES bulk_actions (id) ON DELETE CASCADE,
    image_id       TEXT NOT NULL,
    label_id       BIGINT,
    collection_id  INTEGER,
    seq            BIGINT
);
CREATE INDEX bulk_action_items_action ON bulk_action_items (action_id);
