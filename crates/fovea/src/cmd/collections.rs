//! `fovea collections`: browse bulk-identification results with combinable filters and act on them in bulk.

use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use fovea_app::{BulkKind, BulkRequest, ItemSort, ResultFilter};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct CollectionsArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: CollectionsAction,
}

#[derive(Subcommand, Debug)]
pub enum CollectionsAction {
    /// Every collection with its progress
    List,
    /// A collection's results, filtered
    Show {
        id: i64,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// The class pairs the model most often hesitates between
    Pairs {
        id: i64,
        /// Largest top-1 minus top-2 probability that counts as hesitating
        #[arg(long, default_value_t = 0.2)]
        max_margin: f64,
    },
    /// Per class: labelled images against the cutoff, staged/synthetic share, candidates waiting
    Coverage {
        /// Only classes with at least this share (0..1) of their labels tagged staged or synthetic
        #[arg(long)]
        min_staged_share: Option<f64>,
    },
    /// Act on every result matching the filters, as one undoable action
    Bulk {
        id: i64,
        /// accept | relabel | unknown | tag | untag | discard
        #[arg(long, value_parser = parse_action)]
        action: BulkKind,
        /// The class `relabel` gives (`--class` filters on the predicted class)
        #[arg(long, value_name = "CLASS")]
        to: Option<String>,
        /// The tag `tag` adds or `untag` removes (`--tag` filters on a tag)
        #[arg(long, value_name = "TAG")]
        with_tag: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Undo a bulk action as a whole (its id is printed when it is applied)
    Undo { action_id: i64 },
}

/// The app's own action names, so the CLI and the API spell them the same.
fn parse_action(s: &str) -> Result<BulkKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?}: use accept, relabel, unknown, tag, untag or discard"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Sort {
    Walk,
    Lowest,
    Margin,
}

#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Predicted class
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long)]
    pub min_conf: Option<f64>,
    #[arg(long)]
    pub max_conf: Option<f64>,
    /// Only predictions of classes below the fine-tuning cutoff
    #[arg(long)]
    pub below_cutoff: bool,
    /// Look-alikes: top-1 and top-2 are these two classes (`--pair cat,dog`)
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub pair: Vec<String>,
    /// Largest top-1 minus top-2 probability
    #[arg(long)]
    pub max_margin: Option<f64>,
    /// Only results answered "unknown"
    #[arg(long)]
    pub unknown: bool,
    #[arg(long)]
    pub tag: Option<String>,
    /// Only images nobody has labelled
    #[arg(long)]
    pub unlabelled: bool,
    /// Only results of this registry version
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_enum, default_value = "walk")]
    pub sort: Sort,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

impl FilterArgs {
    fn to_filter(&self, collection: i64, cutoff: u64, paged: bool) -> ResultFilter {
        ResultFilter {
            collection: Some(collection),
            class: self.class.clone(),
            min_conf: self.min_conf,
            max_conf: self.max_conf,
            below_count: self.below_cutoff.then_some(cutoff),
            pair: (self.pair.len() == 2).then(|| (self.pair[0].clone(), self.pair[1].clone())),
            max_margin: self.max_margin,
            unknown: self.unknown.then_some(true),
            tag: self.tag.clone(),
            labelled: self.unlabelled.then_some(false),
            model: self.model.clone(),
            sort: match self.sort {
                Sort::Walk => ItemSort::Walk,
                Sort::Lowest => ItemSort::LowestConfidence,
                Sort::Margin => ItemSort::SmallestMargin,
            },
            limit: paged.then_some(self.limit),
            offset: if paged { self.offset } else { 0 },
            ..Default::default()
        }
    }
}

pub fn collections(home: &Path, variant: Variant, engine: Engine, args: &CollectionsArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        if let CollectionsAction::List = args.action {
            println!(
                "{:>4}  {:<24} {:>9} {:>8} {:>7} {:>9}  source",
                "id", "name", "processed", "unknown", "failed", "total"
            );
            for c in args.app.open_catalog().await?.list_collections().await? {
                let total = c.total.map_or("running?".to_owned(), |t| t.to_string());
                println!(
                    "{:>4}  {:<24} {:>9} {:>8} {:>7} {:>9}  {}",
                    c.id, c.name, c.processed, c.unknown, c.failed, total, c.source
                );
            }
            return Ok(0);
        }
        let app = open_app(home, variant, engine, &args.app).await?;
        let cutoff = app.config().cutoff;
        match &args.action {
            CollectionsAction::List => unreachable!("handled above"),
            CollectionsAction::Show { id, filter, json } => {
                app.collection(*id).await?;
                let (items, total) = app.collection_items(&filter.to_filter(*id, cutoff, true)).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"total": total, "items": items}))?);
                    return Ok(0);
                }
                println!("{total} results match; showing {}", items.len());
                for i in &items {
                    let best = i.top_k.first();
                    let second = i.top_k.get(1);
                    println!(
                        "{:>6}  {:<20} {:>5.1}%  {:<20} {}{}{}  {}",
                        i.seq,
                        best.map_or("", |s| s.class.as_str()),
                        best.map_or(0.0, |s| s.probability * 100.0),
                        second.map_or(String::new(), |s| format!("{} {:.0}%", s.class, s.probability * 100.0)),
                        if i.unknown { "[unknown] " } else { "" },
                        i.label.as_ref().map_or(String::new(), |l| format!("[label: {l}] ")),
                        if i.tags.is_empty() { String::new() } else { format!("[{}]", i.tags.join(",")) },
                        i.path
                    );
                }
            }
            CollectionsAction::Pairs { id, max_margin } => {
                for p in app.confused_pairs(Some(*id), *max_margin).await? {
                    println!("{:>6}  {} / {}", p.count, p.a, p.b);
                }
            }
            CollectionsAction::Coverage { min_staged_share } => {
                println!(
                    "{:<24} {:>8} {:>7} {:>7} {:>8} {:>10}",
                    "class", "labelled", "cutoff", "needed", "staged", "candidates"
                );
                for c in app.coverage(*min_staged_share).await? {
                    println!(
                        "{:<24} {:>8} {:>7} {:>7} {:>7.0}% {:>10}",
                        c.class,
                        c.labelled,
                        c.cutoff,
                        c.needed,
                        c.staged_share * 100.0,
                        c.candidates
                    );
                }
            }
            CollectionsAction::Bulk { id, action, to, with_tag, filter } => {
                app.collection(*id).await?;
                let req = BulkRequest {
                    action: *action,
                    class: to.clone(),
                    tag: with_tag.clone(),
                    items: Vec::new(),
                    filter: Some(filter.to_filter(*id, cutoff, false)),
                };
                let done = app.bulk(&req, "cli").await?;
                app.snapshot().await?;
                println!(
                    "bulk action {} changed {} images; undo with: fovea collections undo {}",
                    done.id, done.changed, done.id
                );
            }
            CollectionsAction::Undo { action_id } => {
                let undo = app.undo_bulk(*action_id).await?;
                println!(
                    "undid bulk action {}: {} images restored, {} kept a newer label",
                    undo.action.id, undo.restored, undo.kept_newer
                );
            }
        }
        Ok(0)
    })
}
