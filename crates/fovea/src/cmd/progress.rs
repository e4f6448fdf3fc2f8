//! Progress that also shows when stderr is not a terminal. indicatif draws nothing there, so CI logs and pipes
//! would see no sign of life for minutes; instead they get plain lines: one per training phase and epoch
//! ([`TrainLog`]), and for counted work ([`counted`]) the bar's text at most every few seconds plus the last.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fovea_app::TrainProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Whether progress goes to a person watching a terminal (draw bars) or to a log (write lines).
pub(crate) fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar over `len` items: drawn on a terminal, plain `pos/len msg` lines otherwise.
pub(crate) fn counted(len: u64, tty_template: &str) -> ProgressBar {
    if interactive() {
        let bar = ProgressBar::new(len);
        bar.set_style(ProgressStyle::with_template(tty_template).expect("valid template"));
        return bar;
    }
    let lines = PlainLines::new(Box::new(std::io::stderr()), Duration::from_secs(2));
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::term_like(Box::new(lines)));
    bar.set_style(ProgressStyle::with_template("{pos}/{len} {msg} [{elapsed}]").expect("valid template"));
    bar
}

/// A [`TermLike`] that turns indicatif's redraws into log lines, at most one per `every` (the first at once),
/// skipping repeats. Cursor moves and clears mean nothing in a log and are ignored.
pub(crate) struct PlainLines {
    out: Mutex<(Box<dyn Write + Send>, Option<Instant>, String)>,
    every: Duration,
}

impl PlainLines {
    pub(crate) fn new(out: Box<dyn Write + Send>, every: Duration) -> Self {
        PlainLines { out: Mutex::new((out, None, String::new())), every }
    }
}

impl std::fmt::Debug for PlainLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainLines").field("every", &self.every).finish()
    }
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        200
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let s = s.trim();
        let mut guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let (out, last, text) = &mut *guard;
        if s.is_empty() || s == text || last.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(());
        }
        *last = Some(Instant::now());
        s.clone_into(text);
        writeln!(out, "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).0.flush()
    }
}

/// Turns a training run's progress reports into log lines: one when a phase starts, one per finished epoch.
#[derive(Default)]
pub(crate) struct TrainLog {
    phase: String,
    epochs_logged: usize,
}

impl TrainLog {
    pub(crate) fn lines(&mut self, p: &TrainProgress) -> Vec<String> {
        let mut out = Vec::new();
        if p.phase != self.phase {
            out.push(format!("{}…", p.phase));
            p.phase.clone_into(&mut self.phase);
        }
        for (epoch, loss, acc) in p.history.iter().skip(self.epochs_logged) {
            let acc = acc.map(|a| format!(", validation accuracy {:.1}%", a * 100.0)).unwrap_or_default();
            out.push(format!("epoch {epoch}/{}: loss {loss:.3}{acc}", p.epochs));
        }
        self.epochs_logged = self.epochs_logged.max(p.history.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bar_off_a_terminal_writes_plain_lines() {
        let sink = Shared::default();
        let lines = PlainLines::new(Box::new(sink.clone()), Duration::ZERO);
        let bar = ProgressBar::with_draw_target(Some(3), ProgressDrawTarget::term_like(Box::new(lines)));
        bar.set_style(ProgressStyle::with_template("{pos}/{len} {msg}").unwrap());
        bar.set_message("images");
        for _ in 0..3 {
            bar.inc(1);
        }
        bar.finish_and_clear();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("1/3 images\n") && text.contains("3/3 images\n"), "{text:?}");
        assert!(!text.contains('\u{1b}'), "no terminal escapes in a log: {text:?}");
    }

    #[test]
    fn lines_are_rate_limited_but_the_first_is_immediate() {
        let sink = Shared::default();
        let lines = PlainLines::new(Box::new(sink.clone()), Duration::from_secs(3600));
        for s in ["1/9", "2/9", "3/9"] {
            lines.write_str(s).unwrap();
        }
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), "1/9\n");
    }

    #[test]
    fn training_logs_one_line_per_phase_and_epoch() {
        let mut log = TrainLog::default();
        let p = |phase: &str, history: Vec<(usize, f64, Option<f64>)>| TrainProgress {
            phase: phase.into(),
            fraction: 0.0,
            epoch: history.len(),
            epochs: 3,
            train_loss: None,
            validation_accuracy: None,
            history,
        };
        assert_eq!(log.lines(&p("caching", vec![])), vec!["caching…"]);
        assert!(log.lines(&p("caching", vec![])).is_empty(), "steps within a phase print nothing");
        assert_eq!(log.lines(&p("training", vec![])), vec!["training…"]);
        assert_eq!(
            log.lines(&p("training", vec![(1, 0.5, Some(0.75))])),
            vec!["epoch 1/3: loss 0.500, validation accuracy 75.0%"]
        );
        assert!(log.lines(&p("training", vec![(1, 0.5, Some(0.75))])).is_empty());
        assert_eq!(log.lines(&p("training", vec![(1, 0.5, None), (2, 0.25, None)])), vec!["epoch 2/3: loss 0.250"]);
    }
}
