//! Record types of the catalog. They are plain data with serde, so the web layer can return them as
//! JSON directly; nothing here knows about SQL. Timestamps are integer milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Milliseconds since the Unix epoch; every `created_at` in the store uses this unit.
pub type Millis = i64;

/// The current wall-clock time in milliseconds.
pub fn now_millis() -> Millis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Lowercase hex SHA-256 of `bytes`: an image's id, and how API tokens are stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Declares a closed set of values stored as text, with the exact spelling used in the database and in JSON.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Which part of the data an image serves; benchmark images are never trained on.
    Split { Unassigned => "unassigned", Train => "train", Val => "val", Test => "test", Benchmark => "benchmark" }
);
text_enum!(
    /// Where a label came from.
    LabelOrigin { Human => "human", Accepted => "accepted", Import => "import" }
);
text_enum!(
    /// Whether a logged transaction was a prediction shown to a user or a user's correction.
    TransactionKind { Predict => "predict", Correct => "correct" }
);
text_enum!(
    /// What a user may do; ordered so `role >= Role::Annotator` reads naturally.
    Role { Viewer => "viewer", Annotator => "annotator", Admin => "admin" }
);
text_enum!(
    /// How a model version was produced.
    ModelKind { Online => "online", FineTune => "fine-tune", ThrowAway => "throw-away" }
);
text_enum!(
    /// Lifecycle of a model version; exactly one is `Promoted` at a time. `Training` is an id reserved for a run
    /// whose weights are not registered yet: never promoted.
    ModelStatus { Training => "training", Candidate => "candidate", Promoted => "promoted", Retired => "retired" }
);
text_enum!(
    /// Lifecycle of a persisted job.
    JobState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

impl JobState {
    /// A finished job never changes state again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// An image to register; `id` must be the lowercase hex SHA-256 of its bytes (see [`sha256_hex`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewImage {
    pub id: String,
    pub blob_key: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    /// Provenance, e.g. `"upload"` or `"import:/path/to/dir"`.
    pub source: String,
    /// Mean luma 0..1 and whether the picture is grey, measured when decoded (`None` when not measured).
    #[serde(default)]
    pub brightness: Option<f64>,
    #[serde(default)]
    pub grayscale: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub blob_key: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub source: String,
    pub split: Split,
    pub created_at: Millis,
}

/// Which images to list. Every `None` means "don't filter on this".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageFilter {
    /// Only images whose current label is this class (matched case-insensitively).
    pub class: Option<String>,
    /// Only images that have (true) or lack (false) any label.
    pub labelled: Option<bool>,
    /// Bounds (inclusive) on the top-1 probability of the image's latest prediction; images never
    /// predicted are excluded when either bound is set.
    pub min_conf: Option<f64>,
    pub max_conf: Option<f64>,
    pub split: Option<Split>,
    /// Finds images by id prefix, or by a part of a file name (an import's or a collection's path) or of the
    /// current class's name, case-insensitively.
    #[serde(default)]
    pub search: Option<String>,
    /// Order of the listing (newest first by default).
    #[serde(default)]
    pub sort: ImageSort,
    /// Page size; `None` means no limit.
    pub limit: Option<u32>,
    pub offset: u32,
}

/// How an image listing is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageSort {
    /// Newest first.
    #[default]
    Newest,
    /// Lowest top-1 probability of the latest prediction first (images never predicted last): the answers a
    /// person should check first.
    LowestConfidence,
    /// Oldest first.
    Oldest,
    /// By current class name, unlabelled last.
    Class,
}

/// One row of an image listing: the image with its current label and latest top-1 prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    pub image: ImageRecord,
    pub current_class: Option<String>,
    pub last_top1: Option<(String, f64)>,
}

pub type ClassId = i64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassRecord {
    pub id: ClassId,
    pub name: String,
    /// The one special "Unknown" class: a valid answer, never trained on.
    pub is_unknown: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStats {
    pub class: ClassRecord,
    /// Images whose current label is this class.
    pub image_count: u64,
}

/// A recorded rename; undoing it is renaming the class back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenameRecord {
    pub id: i64,
    pub class_id: ClassId,
    pub old_name: String,
    pub new_name: String,
    pub created_at: Millis,
}

/// A recorded merge, for listing and undoing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeRecord {
    pub id: i64,
    pub from_name: String,
    /// The class it went into (its name now).
    pub into_name: Option<String>,
    pub labels_moved: u64,
    pub created_at: Millis,
    pub undone_at: Option<Millis>,
}

/// What a merge did, so the caller can fold the change into the online head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOutcome {
    pub from: ClassRecord,
    pub into: ClassRecord,
    /// Label rows rewritten from `from` to `into`.
    pub labels_moved: u64,
    /// Names the merge for [`crate::Catalog::undo_merge`].
    pub merge_id: i64,
}

/// The longest class name accepted, in characters.
pub const MAX_CLASS_NAME_CHARS: usize = 64;

/// Trims a class name and checks it: 1..=64 characters, no control characters.
pub fn validate_class_name(name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_CLASS_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "class name must be 1..={MAX_CLASS_NAME_CHARS} characters, got {chars}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid("class name contains control characters".into()));
    }
    Ok(name.to_owned())
}

/// The key that makes class names unique: trimmed and lowercased (Unicode-aware, unlike SQL `lower()`
/// in SQLite), computed here so every database backend agrees.
pub fn class_name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLabel {
    pub image_id: String,
    pub class_id: ClassId,
    pub user: String,
    pub origin: LabelOrigin,
}

/// One label event. `id` is the event sequence: replaying labels in id order, each as
/// (unlearn `previous_class_id`, learn `class_id`), reproduces the current labelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelRecord {
    pub id: i64,
    pub image_id: String,
    pub class_id: ClassId,
    pub class_name: String,
    pub previous_class_id: Option<ClassId>,
    pub previous_class_name: Option<String>,
    pub user: String,
    pub origin: LabelOrigin,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoredClass {
    pub class: String,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTransaction {
    pub image_id: String,
    pub model_version: String,
    pub kind: TransactionKind,
    pub top_k: Vec<ScoredClass>,
    pub chosen_class: Option<String>,
    pub user: String,
    pub latency_ms: f64,
    /// The open-set verdict served with the answer.
    #[serde(default)]
    pub unknown: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransactionRecord {
    pub id: i64,
    pub image_id: String,
    pub model_version: String,
    pub kind: TransactionKind,
    pub top_k: Vec<ScoredClass>,
    pub chosen_class: Option<String>,
    pub user: String,
    pub latency_ms: f64,
    #[serde(default)]
    pub unknown: bool,
    pub created_at: Millis,
}

/// Which transactions to list; every field narrows (all `None` lists everything), newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransactionFilter {
    pub user: Option<String>,
    /// The class a correction chose, or a prediction's top-1 (case-insensitive).
    pub class: Option<String>,
    pub kind: Option<TransactionKind>,
    /// Milliseconds; `since` inclusive, `until` exclusive.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: u32,
    pub offset: u32,
}

/// A user to create. The store only ever sees the SHA-256 of a token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub token_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Kept out of JSON: even a hash of a token is nothing to show in an API answer.
    #[serde(skip_serializing, default)]
    pub token_sha256: String,
    pub created_at: Millis,
}

/// A serialized online head, valid for all labels with id <= `label_seq` as long as the label log's epoch is still
/// `epoch` (see [`crate::Catalog::label_log_epoch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSnapshot {
    pub id: i64,
    /// The label log's epoch the head was folded under.
    pub epoch: i64,
    pub label_seq: i64,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewModelVersion {
    pub id: String,
    pub parent: Option<String>,
    pub kind: ModelKind,
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelVersionRecord {
    pub id: String,
    pub parent: Option<String>,
    pub kind: ModelKind,
    pub status: ModelStatus,
    pub metrics: serde_json::Value,
    pub created_at: Millis,
}

/// A job as stored. `attempt` counts claims: a worker passes the attempt it claimed to `heartbeat`
/// and `finish`, so a worker whose lease expired (and whose job was re-claimed) cannot clobber the new run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub params: serde_json::Value,
    pub state: JobState,
    pub progress: f64,
    pub message: Option<String>,
    pub attempt: i64,
    pub lease_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// How a claimed job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    Succeeded,
    Failed,
}

impl From<JobOutcome> for JobState {
    fn from(outcome: JobOutcome) -> Self {
        match outcome {
            JobOutcome::Succeeded => JobState::Succeeded,
            JobOutcome::Failed => JobState::Failed,
        }
    }
}

/// Checks an image id is a lowercase hex SHA-256, so ids from different code paths always compare equal.
pub fn validate_image_id(id: &str) -> Result<()> {
    let ok = id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("image id must be 64 lowercase hex characters, got {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_trimmed_and_bounded() {
        assert_eq!(validate_class_name("  Cat ").unwrap(), "Cat");
        assert!(validate_class_name("   ").is_err());
        assert!(validate_class_name(&"x".repeat(65)).is_err());
        assert!(validate_class_name(&"é".repeat(64)).is_ok());
        assert!(validate_class_name("a\tb").is_err());
        assert_eq!(class_name_key(" ÉCLAIR "), "éclair");
    }

    #[test]
    fn text_enums_round_trip() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.as_str().parse::<ModelKind>().unwrap(), *kind);
        }
        assert_eq!(serde_json::to_string(&ModelKind::FineTune).unwrap(), "\"fine-tune\"");
        assert!("bogus".parse::<JobState>().is_err());
        assert!(Role::Admin > Role::Annotator && Role::Annotator > Role::Viewer);
    }

    #[test]
    fn image_ids_are_lowercase_sha256() {
        let id = sha256_hex(b"hello");
        assert!(validate_image_id(&id).is_ok());
        assert!(validate_image_id(&id.to_uppercase()).is_err());
        assert!(validate_image_id("abc").is_err());
    }
}
