//! Every metric name fovea exports, in one place.

pub const CLASSIFY_SECONDS: &str = "fovea_classify_seconds";
pub const LABELS: &str = "fovea_labels_total";
pub const ERRORS: &str = "fovea_errors_total";
pub const REQUESTS: &str = "fovea_requests_total";
