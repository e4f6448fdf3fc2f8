//! The report's tables as CSV files, one per view, for spreadsheets and notebooks.

use std::fmt::Write;

use crate::report::Report;
use crate::stats::Proportion;

/// Quotes a field when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.6}"))
}

fn prop(p: &Proportion) -> String {
    format!("{},{},{},{},{}", p.n, p.hits, opt(p.value), opt(p.low), opt(p.high))
}

/// `(file name, contents)` for every table of the report.
pub fn tables(r: &Report) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut s = String::from("day,requests\n");
    for c in &r.usage.by_day {
        let _ = writeln!(s, "{},{}", c.key, c.count);
    }
    out.push(("usage_by_day.csv", s));
    let mut s = String::from("user,requests,corrections,labels\n");
    for u in &r.usage.by_user {
        let _ = writeln!(s, "{},{},{},{}", field(&u.user), u.requests, u.corrections, u.labels);
    }
    out.push(("usage_by_user.csv", s));
    for (name, rows) in [
        ("accuracy_by_model_version.csv", &r.accuracy.by_model_version),
        ("accuracy_by_day.csv", &r.accuracy.by_day),
        ("accuracy_by_week.csv", &r.accuracy.by_week),
    ] {
        let mut s = String::from("key,n,right,accuracy,low,high\n");
        for k in rows {
            let _ = writeln!(s, "{},{}", field(&k.key), prop(&k.accuracy));
        }
        out.push((name, s));
    }
    let mut s = String::from("lower,upper,mean_confidence,n,right,accuracy,low,high\n");
    for b in &r.accuracy.reliability {
        let _ = writeln!(s, "{:.2},{:.2},{},{}", b.lower, b.upper, opt(b.confidence), prop(&b.accuracy));
    }
    out.push(("reliability.csv", s));
    let mut s = String::from(
        "class,support,predicted,precision,precision_low,precision_high,recall,recall_low,recall_high,f1\n",
    );
    for c in &r.accuracy.by_class {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            field(&c.class),
            c.support,
            c.predicted,
            opt(c.precision.value),
            opt(c.precision.low),
            opt(c.precision.high),
            opt(c.recall.value),
            opt(c.recall.low),
            opt(c.recall.high),
            opt(c.f1)
        );
    }
    out.push(("accuracy_by_class.csv", s));
    let c = &r.accuracy.confusion;
    let mut s = format!("true\\served,{}\n", c.classes.iter().map(|x| field(x)).collect::<Vec<_>>().join(","));
    for (name, row) in c.classes.iter().zip(&c.counts) {
        let _ = writeln!(s, "{},{}", field(name), row.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
    }
    out.push(("confusion.csv", s));
    let mut s = String::from("round,model_version,population,sampled,answered,correct,accuracy,low,high,covered\n");
    for e in &r.evaluations {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{:.4}",
            e.round,
            field(&e.model_version),
            e.population,
            e.sampled,
            e.answered,
            e.correct,
            opt(e.accuracy),
            opt(e.low),
            opt(e.high),
            e.covered
        );
    }
    out.push(("evaluations.csv", s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_are_quoted_and_every_table_has_a_header() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let r = crate::report(&crate::Log::default(), None, vec![], 0);
        let t = tables(&r);
        assert_eq!(t.len(), 9);
        assert!(t.iter().all(|(_, body)| body.lines().count() >= 1));
        assert_eq!(t.iter().find(|(n, _)| *n == "reliability.csv").unwrap().1.lines().count(), 11);
    }
}
