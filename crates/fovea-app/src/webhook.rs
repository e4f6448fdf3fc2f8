//! Drift alerts POSTed as JSON to a configured URL (a chat hook, a pager, an automation).

use std::time::Duration;

use fovea_store::DriftAlertRecord;
use serde::Serialize;

#[derive(Serialize)]
struct Payload<'a> {
    event: &'static str,
    text: String,
    alert: &'a DriftAlertRecord,
}

/// Sends one alert; a failure is logged and counted, never retried in a loop that could pile up.
pub(crate) async fn post_alert(url: String, alert: DriftAlertRecord) {
    let body = Payload {
        event: "fovea.drift_alert",
        text: format!("fovea drift alert: {} — {}", alert.alert.signal, alert.alert.detail),
        alert: &alert,
    };
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "webhook client");
            return;
        }
    };
    match client.post(&url).json(&body).send().await {
        Ok(r) if r.status().is_success() => {
            tracing::info!(url, signal = %alert.alert.signal, "drift webhook delivered")
        }
        Ok(r) => {
            metrics::counter!(crate::DRIFT_WEBHOOK_FAILURES).increment(1);
            tracing::warn!(url, status = %r.status(), "drift webhook refused");
        }
        Err(e) => {
            metrics::counter!(crate::DRIFT_WEBHOOK_FAILURES).increment(1);
            tracing::warn!(url, error = %e, "drift webhook failed");
        }
    }
}
