//! Layer groups of an EfficientNet-Lite network and what a fine-tune run does with each of them.
//!
//! The network is cut at stage granularity because that is where its resolution and width change: early stages
//! hold generic edge and texture detectors that a few hundred labelled images cannot improve, late stages and the
//! head conv hold the class-specific features worth adapting. Groups are ordered input to output; the first group
//! that is not frozen starts the *trainable tail*, everything before it is the frozen prefix whose activations can
//! be cached.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Number of stages in every EfficientNet-Lite variant.
pub const STAGES: usize = 7;

/// One group of layers, in network order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Group {
    /// The 3×3 stride-2 stem conv and its BatchNorm (`_conv_stem`, `_bn0`).
    Stem,
    /// All blocks of one stage, 0..=6 (`_blocks.N.*` with `BlockSpec::stage == s`).
    Stage(usize),
    /// The 1×1 conv to the 1280-d embedding and its BatchNorm (`_conv_head`, `_bn1`).
    HeadConv,
    /// The linear classifier on the pooled embedding (`_fc`).
    Classifier,
}

impl Group {
    /// Every group, input to output.
    pub fn all() -> impl Iterator<Item = Group> {
        std::iter::once(Group::Stem).chain((0..STAGES).map(Group::Stage)).chain([Group::HeadConv, Group::Classifier])
    }

    /// Position in network order (stem 0, stages 1..=7, head conv 8, classifier 9).
    pub fn index(self) -> usize {
        match self {
            Group::Stem => 0,
            Group::Stage(s) => 1 + s,
            Group::HeadConv => 1 + STAGES,
            Group::Classifier => 2 + STAGES,
        }
    }

    /// The group a PyTorch-named tensor belongs to; `block_stage` maps a block index to its stage.
    /// `None` for names outside the network (they are carried through untouched).
    pub fn of_tensor(name: &str, block_stage: impl Fn(usize) -> Option<usize>) -> Option<Group> {
        if name.starts_with("_conv_stem.") || name.starts_with("_bn0.") {
            Some(Group::Stem)
        } else if name.starts_with("_conv_head.") || name.starts_with("_bn1.") {
            Some(Group::HeadConv)
        } else if name.starts_with("_fc.") {
            Some(Group::Classifier)
        } else {
            let rest = name.strip_prefix("_blocks.")?;
            let index = rest.split('.').next()?.parse().ok()?;
            block_stage(index).map(Group::Stage)
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Stem => f.write_str("stem"),
            Group::Stage(s) => write!(f, "stage{s}"),
            Group::HeadConv => f.write_str("head"),
            Group::Classifier => f.write_str("classifier"),
        }
    }
}

/// What a fine-tune run does with one group.
///
/// The classifier is special: its shape follows the class list, so it is always rebuilt by
/// [`super::extended_classifier`] (rows of classes in the old classifier kept, the rest from class means) and
/// `FineTune` and `Reinit` both mean "rebuild, then train" — pass no old classifier to start every row from the
/// class means. `Freeze` on the classifier keeps the rebuilt rows untrained while backbone groups adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Weights and BatchNorm statistics stay bit-for-bit as they are; no gradient is computed for them.
    Freeze,
    /// Start from the current weights and train conv weights and BatchNorm γ/β (running statistics stay fixed).
    FineTune,
    /// Start from a fresh initialisation and train. For a backbone group that means random (seeded, fan-in
    /// scaled) conv weights and identity BatchNorm — only sensible for experiments.
    Reinit,
}

impl GroupPolicy {
    pub fn trains(self) -> bool {
        self != GroupPolicy::Freeze
    }
}

impl fmt::Display for GroupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupPolicy::Freeze => "freeze",
            GroupPolicy::FineTune => "finetune",
            GroupPolicy::Reinit => "reinit",
        })
    }
}

impl FromStr for GroupPolicy {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "freeze" | "frozen" => Ok(GroupPolicy::Freeze),
            "finetune" | "fine-tune" | "train" => Ok(GroupPolicy::FineTune),
            "reinit" | "re-init" | "reset" => Ok(GroupPolicy::Reinit),
            other => Err(TrainError::Config(format!("unknown layer policy {other:?}: use freeze, finetune or reinit"))),
        }
    }
}

/// A policy for every group. The default adapts the last two stages and the head conv and rebuilds the
/// classifier: on a few hundred images that is what moves accuracy without overfitting the generic early
/// features, and it keeps the frozen prefix long enough for the activation cache to make epochs cheap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    pub stem: GroupPolicy,
    pub stages: [GroupPolicy; STAGES],
    pub head: GroupPolicy,
    pub classifier: GroupPolicy,
}

impl Default for Policies {
    fn default() -> Self {
        use GroupPolicy::*;
        Policies {
            stem: Freeze,
            stages: [Freeze, Freeze, Freeze, Freeze, Freeze, FineTune, FineTune],
            head: FineTune,
            classifier: Reinit,
        }
    }
}

impl Policies {
    /// Every group frozen except a rebuilt classifier: a linear probe on the frozen embedding.
    pub fn linear_probe() -> Self {
        Policies {
            stem: GroupPolicy::Freeze,
            stages: [GroupPolicy::Freeze; STAGES],
            head: GroupPolicy::Freeze,
            classifier: GroupPolicy::Reinit,
        }
    }

    /// Every backbone group fine-tuned, the classifier rebuilt: the whole network trains.
    pub fn full() -> Self {
        Policies {
            stem: GroupPolicy::FineTune,
            stages: [GroupPolicy::FineTune; STAGES],
            head: GroupPolicy::FineTune,
            classifier: GroupPolicy::Reinit,
        }
    }

    pub fn get(&self, group: Group) -> GroupPolicy {
        match group {
            Group::Stem => self.stem,
            // Stages past the seventh do not exist; they are frozen by definition (they hold no layers).
            Group::Stage(s) => self.stages.get(s).copied().unwrap_or(GroupPolicy::Freeze),
            Group::HeadConv => self.head,
            Group::Classifier => self.classifier,
        }
    }

    pub fn set(&mut self, group: Group, policy: GroupPolicy) {
        match group {
            Group::Stem => self.stem = policy,
            Group::Stage(s) => {
                if let Some(slot) = self.stages.get_mut(s) {
                    *slot = policy;
                }
            }
            Group::HeadConv => self.head = policy,
            Group::Classifier => self.classifier = policy,
        }
    }

    /// The first group that trains: it and everything after it form the trainable tail. Groups after it may
    /// still be frozen (they are kept in the tail with gradients disabled, so the gradient flows through them
    /// to the trainable groups before them). Errors when nothing trains at all.
    pub fn first_trainable(&self) -> Result<Group> {
        Group::all()
            .find(|g| self.get(*g).trains())
            .ok_or_else(|| TrainError::Config("every layer group is frozen, so there is nothing to train".into()))
    }
}

/// The canonical string form, `stem=freeze,stage0=freeze,…,classifier=reinit`, which [`FromStr`] reads back.
impl fmt::Display for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Group::all().map(|g| format!("{g}={}", self.get(g))).collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses a CLI policy string such as `stem=freeze,stage0-4=freeze,stage5-6=finetune,head=finetune,
/// classifier=reinit`. Entries apply left to right on top of [`Policies::default`], so `stage4=finetune` alone
/// unfreezes one more stage. Groups: `stem`, `stageN`, `stageA-B` (inclusive), `stages` (all seven), `head`,
/// `classifier` (alias `fc`), `all`; policies: `freeze`, `finetune`, `reinit`. The empty string means the default.
impl FromStr for Policies {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        let mut policies = Policies::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (lhs, rhs) = entry.split_once('=').ok_or_else(|| {
                TrainError::Config(format!("layer policy entry {entry:?} is not of the form group=policy"))
            })?;
            let policy: GroupPolicy = rhs.parse()?;
            for group in parse_groups(lhs.trim())? {
                policies.set(group, policy);
            }
        }
        Ok(policies)
    }
}

fn parse_groups(lhs: &str) -> Result<Vec<Group>> {
    let name = lhs.to_ascii_lowercase();
    let stage_range = |a: usize, b: usize| (a..=b).map(Group::Stage).collect::<Vec<_>>();
    match name.as_str() {
        "stem" => return Ok(vec![Group::Stem]),
        "head" | "headconv" | "head_conv" => return Ok(vec![Group::HeadConv]),
        "classifier" | "fc" => return Ok(vec![Group::Classifier]),
        "stages" => return Ok(stage_range(0, STAGES - 1)),
        "all" => return Ok(Group::all().collect()),
        _ => {}
    }
    let unknown = || {
        TrainError::Config(format!(
            "unknown layer group {lhs:?}: use stem, stage0..stage6, stageA-B, stages, head, classifier or all"
        ))
    };
    let range = name.strip_prefix("stage").ok_or_else(unknown)?;
    let stage = |t: &str| -> Result<usize> {
        let s: usize = t.trim().parse().map_err(|_| unknown())?;
        if s >= STAGES {
            return Err(TrainError::Config(format!(
                "layer group {lhs:?}: stage {s} does not exist (stages are 0 to {})",
                STAGES - 1
            )));
        }
        Ok(s)
    };
    match range.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (stage(a)?, stage(b)?);
            if a > b {
                return Err(TrainError::Config(format!("layer group {lhs:?}: range runs backwards")));
            }
            Ok(stage_range(a, b))
        }
        None => Ok(vec![Group::Stage(stage(range)?)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_string_is_the_default_and_round_trips() {
        let p: Policies =
            "stem=freeze,stage0-4=freeze,stage5-6=finetune,head=finetune,classifier=reinit".parse().unwrap();
        assert_eq!(p, Policies::default());
        assert_eq!(p.to_string().parse::<Policies>().unwrap(), p);
        assert_eq!("".parse::<Policies>().unwrap(), p);
        assert_eq!(p.first_trainable().unwrap(), Group::Stage(5));
    }

    #[test]
    fn entries_apply_left_to_right() {
        let p: Policies = "all=freeze, stage3 = FineTune ,fc=reinit".parse().unwrap();
        assert_eq!(p.get(Group::Stage(3)), GroupPolicy::FineTune);
        assert_eq!(p.get(Group::Stage(4)), GroupPolicy::Freeze);
        assert_eq!(p.get(Group::HeadConv), GroupPolicy::Freeze);
        assert_eq!(p.first_trainable().unwrap(), Group::Stage(3));
    }

    #[test]
    fn parser_errors_name_the_problem() {
        let err = |s: &str| s.parse::<Policies>().unwrap_err().to_string();
        assert!(err("stem").contains("group=policy"), "{}", err("stem"));
        assert!(err("stem=melt").contains("unknown layer policy \"melt\""));
        assert!(err("neck=freeze").contains("unknown layer group \"neck\""));
        assert!(err("stage7=freeze").contains("stage 7 does not exist"));
        assert!(err("stage5-2=freeze").contains("backwards"));
        assert!(err("stagex=freeze").contains("unknown layer group"));
        let all_frozen: Policies = "all=freeze".parse().unwrap();
        assert!(all_frozen.first_trainable().unwrap_err().to_string().contains("nothing to train"));
    }

    #[test]
    fn tensor_names_map_to_groups() {
        let stage = |b: usize| [Some(0), Some(1), Some(1)].get(b).copied().flatten();
        assert_eq!(Group::of_tensor("_conv_stem.weight", stage), Some(Group::Stem));
        assert_eq!(Group::of_tensor("_bn0.running_var", stage), Some(Group::Stem));
        assert_eq!(Group::of_tensor("_blocks.2._bn0.weight", stage), Some(Group::Stage(1)));
        assert_eq!(Group::of_tensor("_blocks.9._bn0.weight", stage), None);
        assert_eq!(Group::of_tensor("_bn1.bias", stage), Some(Group::HeadConv));
        assert_eq!(Group::of_tensor("_fc.weight", stage), Some(Group::Classifier));
        assert!(Group::all().map(Group::index).eq(0..10));
    }
}
