//! A self-contained HTML report: inline CSS and SVG charts, no script and nothing fetched, so the file opens
//! offline and can be mailed. The web UI shows the same document.

use std::fmt::Write;

use crate::drift::Scores;
use crate::report::{Keyed, Report};
use crate::stats::Proportion;
use crate::time::{date_string, day_of};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(p: Option<f64>) -> String {
    p.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn interval(p: &Proportion) -> String {
    match (p.value, p.low, p.high) {
        (Some(v), Some(l), Some(h)) => {
            format!(
                "{:.1}% <span class=ci>[{:.1}–{:.1}%]</span> <span class=n>n={}</span>",
                v * 100.0,
                l * 100.0,
                h * 100.0,
                p.n
            )
        }
        _ => format!("– <span class=n>n={}</span>", p.n),
    }
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 36.0;

/// One bar: label, value (0..max), optional interval whisker (low, high), hover caption.
type Bar = (String, f64, Option<(f64, f64)>, String);

/// Vertical bars with optional interval whiskers.
fn bars(title: &str, items: &[Bar], max: f64, percent: bool) -> String {
    let mut s = format!("<figure><figcaption>{}</figcaption>", esc(title));
    if items.is_empty() {
        s.push_str("<p class=empty>No data yet.</p></figure>");
        return s;
    }
    let _ = write!(s, "<svg viewBox='0 0 {W} {H}' role=img>");
    axis(&mut s, max, percent);
    let slot = (W - PAD - 10.0) / items.len() as f64;
    let bw = (slot * 0.7).min(48.0);
    for (i, (label, v, ci, caption)) in items.iter().enumerate() {
        let x = PAD + slot * i as f64 + (slot - bw) / 2.0;
        let y = |v: f64| H - PAD - (v / max).clamp(0.0, 1.0) * (H - 2.0 * PAD);
        let _ = write!(
            s,
            "<rect class=bar x='{x:.1}' y='{:.1}' width='{bw:.1}' height='{:.1}'><title>{}: {}</title></rect>",
            y(*v),
            H - PAD - y(*v),
            esc(label),
            esc(caption)
        );
        if let Some((lo, hi)) = ci {
            let cx = x + bw / 2.0;
            let _ = write!(s, "<line class=ci x1='{cx:.1}' x2='{cx:.1}' y1='{:.1}' y2='{:.1}'/>", y(*lo), y(*hi));
        }
        if items.len() <= 24 || i % (items.len() / 12).max(1) == 0 {
            let _ = write!(
                s,
                "<text class=tick x='{:.1}' y='{:.1}' text-anchor=middle>{}</text>",
                x + bw / 2.0,
                H - PAD + 14.0,
                esc(&shorten(label, 12))
            );
        }
    }
    s.push_str("</svg></figure>");
    s
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn axis(s: &mut String, max: f64, percent: bool) {
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = H - PAD - (k as f64 / 4.0) * (H - 2.0 * PAD);
        let label = if percent { format!("{:.0}%", v * 100.0) } else { format!("{v:.0}") };
        let _ = write!(
            s,
            "<line class=grid x1='{PAD}' x2='{}' y1='{y:.1}' y2='{y:.1}'/><text class=tick x='{}' y='{:.1}' text-anchor=end>{label}</text>",
            W - 10.0,
            PAD - 4.0,
            y + 4.0
        );
    }
}

fn keyed_bars(title: &str, rows: &[Keyed]) -> String {
    let items: Vec<_> = rows
        .iter()
        .filter_map(|k| {
            let v = k.accuracy.value?;
            Some((
                k.key.clone(),
                v,
                k.accuracy.low.zip(k.accuracy.high),
                format!("{:.1}% of {}", v * 100.0, k.accuracy.n),
            ))
        })
        .collect();
    bars(title, &items, 1.0, true)
}

fn reliability(report: &Report) -> String {
    let a = &report.accuracy;
    let mut s = format!(
        "<figure><figcaption>Reliability: how often answers were right at each served confidence (ECE {})</figcaption>",
        a.ece.map_or("–".into(), |e| format!("{e:.3}"))
    );
    let side = 260.0;
    let p = 30.0;
    let _ = write!(s, "<svg viewBox='0 0 {} {}' class=square role=img>", side + 2.0 * p, side + 2.0 * p);
    let _ = write!(s, "<line class=diag x1='{p}' y1='{}' x2='{}' y2='{p}'/>", side + p, side + p);
    let nb = a.reliability.len().max(1) as f64;
    for b in &a.reliability {
        let Some(acc) = b.accuracy.value else { continue };
        let x = p + b.lower * side;
        let w = side / nb - 2.0;
        let h = acc * side;
        let _ = write!(
            s,
            "<rect class=bar x='{x:.1}' y='{:.1}' width='{w:.1}' height='{h:.1}'><title>{:.0}–{:.0}%: right {:.1}% of {}</title></rect>",
            p + side - h,
            b.lower * 100.0,
            b.upper * 100.0,
            acc * 100.0,
            b.accuracy.n
        );
        if let (Some(lo), Some(hi)) = (b.accuracy.low, b.accuracy.high) {
            let cx = x + w / 2.0;
            let _ = write!(
                s,
                "<line class=ci x1='{cx:.1}' x2='{cx:.1}' y1='{:.1}' y2='{:.1}'/>",
                p + side - lo * side,
                p + side - hi * side
            );
        }
    }
    let _ = write!(
        s,
        "<text class=tick x='{:.1}' y='{:.1}' text-anchor=middle>served confidence →</text><text class=tick x='12' y='{:.1}' transform='rotate(-90 12 {:.1})' text-anchor=middle>share right →</text></svg></figure>",
        p + side / 2.0,
        side + 2.0 * p - 6.0,
        p + side / 2.0,
        p + side / 2.0
    );
    s
}

fn confusion(report: &Report) -> String {
    let c = &report.accuracy.confusion;
    let mut s =
        String::from("<figure><figcaption>Confusion: true class (rows) against served class (columns)</figcaption>");
    if c.classes.is_empty() {
        s.push_str("<p class=empty>No judged predictions yet.</p></figure>");
        return s;
    }
    s.push_str("<table class=heat><tr><th></th>");
    for name in &c.classes {
        let _ = write!(s, "<th class=col><span>{}</span></th>", esc(&shorten(name, 14)));
    }
    s.push_str("</tr>");
    for (i, row) in c.counts.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let _ = write!(s, "<tr><th>{}</th>", esc(&shorten(&c.classes[i], 18)));
        for (j, &n) in row.iter().enumerate() {
            let share = n as f64 / total;
            let hue = if i == j { 140 } else { 8 };
            let _ = write!(
                s,
                "<td style='background:hsla({hue},70%,45%,{share:.2})' title='{} as {}: {n}'>{}</td>",
                esc(&c.classes[i]),
                esc(&c.classes[j]),
                if n > 0 { n.to_string() } else { String::new() }
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></figure>");
    s
}

fn drift_section(scores: Option<&Scores>) -> String {
    let mut s = String::from("<section><h2>Drift</h2>");
    match scores {
        None => s.push_str("<p class=empty>Not enough requests or reference images to judge drift yet.</p>"),
        Some(sc) => {
            let _ = write!(
                s,
                "<p>Last {} requests against a reference of {} images.</p><table><tr><th>signal</th><th>statistic</th><th>threshold</th><th>what moved</th></tr>",
                sc.window, sc.reference_size
            );
            for sig in &sc.signals {
                let _ = write!(
                    s,
                    "<tr class='{}'><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                    if sig.exceeded { "alert" } else { "" },
                    sig.signal.as_str(),
                    sig.statistic,
                    sig.threshold,
                    esc(&sig.detail)
                );
            }
            s.push_str("</table>");
        }
    }
    s.push_str("</section>");
    s
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#f4f6fa;border-radius:8px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.ci,.n{color:#667;font-size:12px}figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;max-width:680px;height:auto}svg.square{max-width:340px}.bar{fill:#4f7cff}line.ci{stroke:#1d2330;stroke-width:1.5}
.grid{stroke:#e3e7ee}.tick{font-size:10px;fill:#556}.diag{stroke:#aab;stroke-dasharray:4 3}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e3e7ee;padding:3px 8px;text-align:right}th{background:#f4f6fa}
td:first-child,th:first-child{text-align:left}.heat td{min-width:28px;text-align:center}.heat th.col span{writing-mode:vertical-rl}
tr.alert td{background:#ffe3e0}.empty{color:#778}.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}";

/// The report as one HTML document.
pub fn render(report: &Report, drift: Option<&Scores>) -> String {
    let u = &report.usage;
    let a = &report.accuracy;
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'><title>fovea report</title><style>{STYLE}</style></head><body><h1>fovea report</h1><p class=n>Generated {} (UTC){}. Accuracy counts predictions of images that were unlabelled when predicted and that a person labelled afterwards; intervals are 95 % Wilson intervals.</p>",
        date_string(day_of(report.generated_at)),
        report.since.as_ref().map(|d| format!(", covering {} onward", esc(d))).unwrap_or_default()
    );
    let _ = write!(
        s,
        "<div class=cards><div class=card>requests<b>{}</b></div><div class=card>corrections<b>{}</b>{} of requests</div><div class=card>human labels<b>{}</b></div><div class=card>accuracy<b>{}</b>{}</div><div class=card>calibration error<b>{}</b>ECE over {} judged</div></div>",
        u.requests,
        u.corrections,
        pct(u.correction_rate.value),
        u.labels,
        pct(a.overall.value),
        interval(&a.overall),
        a.ece.map_or("–".into(), |e| format!("{e:.3}")),
        a.overall.n
    );

    s.push_str("<h2>Usage</h2><div class=grid2>");
    let per_day: Vec<_> =
        u.by_day.iter().map(|c| (c.key.clone(), c.count as f64, None, format!("{} requests", c.count))).collect();
    let max = per_day.iter().map(|x| x.1).fold(1.0, f64::max);
    s.push_str(&bars("Requests per day", &per_day, nice_max(max), false));
    let per_version: Vec<_> = u
        .by_model_version
        .iter()
        .map(|c| (c.key.clone(), c.count as f64, None, format!("{} requests", c.count)))
        .collect();
    let max = per_version.iter().map(|x| x.1).fold(1.0, f64::max);
    s.push_str(&bars("Requests by model version", &per_version, nice_max(max), false));
    s.push_str("</div><table><tr><th>user</th><th>requests</th><th>corrections</th><th>labels</th></tr>");
    for r in &u.by_user {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.user),
            r.requests,
            r.corrections,
            r.labels
        );
    }
    s.push_str("</table>");

    s.push_str("<h2>Accuracy</h2><div class=grid2>");
    s.push_str(&keyed_bars("Accuracy per day", &a.by_day));
    s.push_str(&keyed_bars("Accuracy by model version", &a.by_model_version));
    s.push_str(&reliability(report));
    let f1: Vec<_> = a
        .by_class
        .iter()
        .filter_map(|c| Some((c.class.clone(), c.f1?, None, format!("F1 {:.2}, support {}", c.f1?, c.support))))
        .collect();
    s.push_str(&bars("F1 by class", &f1, 1.0, true));
    s.push_str("</div><table><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>");
    for c in &a.by_class {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.class),
            c.support,
            interval(&c.precision),
            interval(&c.recall),
            c.f1.map_or("–".into(), |f| format!("{f:.3}"))
        );
    }
    s.push_str("</table>");
    s.push_str(&confusion(report));

    s.push_str("<h2>Manual evaluations</h2>");
    if report.evaluations.is_empty() {
        s.push_str("<p class=empty>No evaluation rounds yet.</p>");
    } else {
        s.push_str("<table><tr><th>round</th><th>model</th><th>answered</th><th>estimated accuracy</th><th>population covered</th></tr>");
        for e in &report.evaluations {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}{}</td><td>{:.0}% of {}</td></tr>",
                e.round,
                esc(&e.model_version),
                e.answered,
                e.sampled,
                pct(e.accuracy),
                match (e.low, e.high) {
                    (Some(l), Some(h)) => format!(" <span class=ci>[{:.1}–{:.1}%]</span>", l * 100.0, h * 100.0),
                    _ => String::new(),
                },
                e.covered * 100.0,
                e.population
            );
        }
        s.push_str("</table>");
    }
    s.push_str(&drift_section(drift));
    s.push_str("</body></html>");
    s
}

/// A round axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{report, CorrectionRow, Log, PredictionRow};

    #[test]
    fn the_report_is_one_offline_document_with_every_chart() {
        let rows = (0..20)
            .map(|i| PredictionRow {
                id: i,
                image_id: format!("i{i}"),
                at: 1_700_000_000_000 + i * 86_400_000 / 4,
                user: "ann".into(),
                model_version: "v<1>".into(),
                class: Some(if i % 3 == 0 { "cat" } else { "dog" }.into()),
                confidence: Some(0.5 + (i as f64) / 50.0),
                unknown: false,
                truth: Some("dog".into()),
            })
            .collect();
        let log =
            Log { predictions: rows, corrections: vec![CorrectionRow { at: 0, user: "ann".into() }], labels: vec![] };
        let html = render(&report(&log, None, vec![], 1_700_000_000_000), None);
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
        assert!(html.contains("v&lt;1&gt;"), "labels are escaped");
        assert!(html.matches("<svg").count() >= 5);
        assert!(html.contains("Confusion"));
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
    }
}
