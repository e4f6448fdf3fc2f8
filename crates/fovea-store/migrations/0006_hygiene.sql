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
