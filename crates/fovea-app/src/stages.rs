//! Where one classify's time went, stage by stage, for the `Server-Timing` header that the HTTP layer sends with
//! every answer (browsers' developer tools draw it beside the request) and that `fovea bench http` summarises.

use std::time::Duration;

/// Milliseconds each stage of one classify took. `decode`, `network`, `wait`, `predict` and `commit` follow one
/// another on the request's path; `store` runs beside `decode` and `network` from the start, and the request waits
/// for it only when it ends after them (that wait then counts in `wait`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Hashing, decoding and preprocessing the upload (after any wait for a decode slot), until its input was
    /// handed to the network.
    pub decode_ms: f64,
    /// From then until the compute thread had the embedding: its queue and the network's pass (0 for a cache hit).
    pub network_ms: f64,
    /// From then until the request went on: the hand-back between threads, and the store when it ends later.
    pub wait_ms: f64,
    /// Writing the uploaded bytes durably.
    pub store_ms: f64,
    /// The online head's prediction.
    pub predict_ms: f64,
    /// Logging the prediction with its image and embedding in one durable commit.
    pub commit_ms: f64,
}

impl StageTimes {
    /// The W3C Server Timing header value, ending with `total_ms`, the whole request as the server timed it.
    pub fn server_timing(&self, total_ms: f64) -> String {
        format!(
            "decode;dur={:.3}, network;dur={:.3}, wait;dur={:.3}, store;dur={:.3};desc=\"beside decode and network\", \
             predict;dur={:.3}, commit;dur={:.3}, total;dur={total_ms:.3}",
            self.decode_ms, self.network_ms, self.wait_ms, self.store_ms, self.predict_ms, self.commit_ms
        )
    }
}

/// The `name;dur=ms` metrics of a Server-Timing header value, in order; a metric without a duration is left out.
/// What `fovea bench http` and the API's tests read the header with.
pub fn read_server_timing(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .filter_map(|metric| {
            let mut parts = metric.trim().split(';');
            let name = parts.next()?.to_owned();
            let dur = parts.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
            Some((name, dur))
        })
        .collect()
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_every_stage_with_its_duration() {
        let t = StageTimes {
            decode_ms: 1.25,
            network_ms: 4.0,
            wait_ms: 0.125,
            store_ms: 0.5,
            predict_ms: 0.03,
            commit_ms: 0.9,
        };
        assert_eq!(
            t.server_timing(6.5),
            "decode;dur=1.250, network;dur=4.000, wait;dur=0.125, store;dur=0.500;desc=\"beside decode and network\", \
             predict;dur=0.030, commit;dur=0.900, total;dur=6.500"
        );
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }

    #[test]
    fn server_timing_metrics_are_read_by_name_and_duration() {
        let read = read_server_timing("decode;dur=1.250, store;dur=0.5;desc=\"beside, it\", total;dur=7");
        assert_eq!(read, vec![("decode".into(), 1.25), ("store".into(), 0.5), ("total".into(), 7.0)]);
        assert!(read_server_timing("cache;desc=hit").is_empty(), "a metric without a duration is left out");
        let t = StageTimes { decode_ms: 1.5, commit_ms: 0.25, ..StageTimes::default() };
        let names: Vec<(String, f64)> = read_server_timing(&t.server_timing(2.0));
        assert_eq!(names.len(), 7, "{names:?}");
        assert_eq!((names[0].clone(), names[6].clone()), (("decode".into(), 1.5), ("total".into(), 2.0)));
    }
}
