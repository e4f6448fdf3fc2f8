//! `/openapi.json`, generated from the handlers' `#[utoipa::path]` attributes and the API types.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "fovea", description = "Human-in-the-loop image classification: classify, correct, learn at once."),
    paths(
        routes::healthz, routes::me, routes::classify, routes::label, routes::images, routes::blob,
        routes::transactions, routes::classes, routes::create_class, routes::rename_class, routes::merge_class, routes::undo_merge, routes::delete_class, routes::merges, routes::renames,
        routes::models, routes::model, routes::promote_model, routes::rollback_model, routes::train, routes::jobs,
        routes::job, routes::cancel_job, routes::calibration, routes::recalibrate, routes::review,
        routes::list_collections, routes::create_collection, routes::queue_import, routes::get_collection, routes::upload_to_collection,
        routes::results, routes::pairs, routes::coverage, routes::tags, routes::bulk, routes::bulk_actions,
        routes::undo_bulk, routes::thumb, routes::image_detail, routes::report, routes::report_html, routes::drift,
        routes::rebuild_drift, routes::drift_alerts, routes::start_evaluation, routes::evaluations,
        routes::evaluation, routes::answer_evaluation, routes::label_errors, routes::confirm_label,
        routes::duplicates, routes::resolve_duplicates, routes::leakage, routes::unknown_review,
    ),
    modifiers(&BearerToken),
    tags((name = "images"), (name = "classes"), (name = "history"), (name = "models"), (name = "collections"), (name = "reports"), (name = "hygiene"), (name = "service"))
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("fovea token").build(),
            ),
        );
    }
}

/// The document, rendered once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}
