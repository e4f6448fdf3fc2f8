use crate::calibrate::Calibration;
use crate::classes::{ClassId, ClassTable};
use crate::error::{Error, Result};
use crate::head::{Head, HeadKind, RawScores};
use crate::ncm::{Metric, NcmHead};
use crate::slda::SldaHead;
use crate::snapshot::HeadSnapshot;

/// Any head, chosen at run time (e.g. from a `--head slda|ncm|ncm-cosine` flag).
#[derive(Debug, Clone)]
pub enum AnyHead {
    Slda(SldaHead),
    Ncm(NcmHead),
}

impl AnyHead {
    /// A head of `kind` with default configuration.
    pub fn new(kind: HeadKind, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Config("dimension must be > 0".into()));
        }
        Ok(match kind {
            HeadKind::Slda => AnyHead::Slda(SldaHead::new(dim)),
            HeadKind::Ncm => AnyHead::Ncm(NcmHead::new(dim, Metric::Euclidean)),
            HeadKind::NcmCosine => AnyHead::Ncm(NcmHead::new(dim, Metric::Cosine)),
        })
    }

    /// Parse `slda | ncm | ncm-cosine` and build.
    pub fn from_name(kind: &str, dim: usize) -> Result<Self> {
        Self::new(kind.parse()?, dim)
    }

    fn inner(&self) -> &dyn Head {
        match self {
            AnyHead::Slda(h) => h,
            AnyHead::Ncm(h) => h,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Head {
        match self {
            AnyHead::Slda(h) => h,
            AnyHead::Ncm(h) => h,
        }
    }
}

impl From<SldaHead> for AnyHead {
    fn from(h: SldaHead) -> Self {
        AnyHead::Slda(h)
    }
}

impl From<NcmHead> for AnyHead {
    fn from(h: NcmHead) -> Self {
        AnyHead::Ncm(h)
    }
}

impl Head for AnyHead {
    fn kind(&self) -> HeadKind {
        self.inner().kind()
    }
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn classes(&self) -> &ClassTable {
        self.inner().classes()
    }
    fn count(&self, class: ClassId) -> u64 {
        self.inner().count(class)
    }
    fn add_class(&mut self, name: &str) -> ClassId {
        self.inner_mut().add_class(name)
    }
    fn learn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        self.inner_mut().learn(x, class)
    }
    fn unlearn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        self.inner_mut().unlearn(x, class)
    }
    fn raw_scores(&self, x: &[f32]) -> Result<RawScores> {
        self.inner().raw_scores(x)
    }
    fn calibration(&self) -> &Calibration {
        self.inner().calibration()
    }
    fn set_calibration(&mut self, calibration: Calibration) {
        self.inner_mut().set_calibration(calibration)
    }
    fn merge(&mut self, other: &Self) -> Result<()> {
        match (self, other) {
            (AnyHead::Slda(a), AnyHead::Slda(b)) => a.merge(b),
            (AnyHead::Ncm(a), AnyHead::Ncm(b)) => a.merge(b),
            (a, b) => Err(Error::Incompatible(format!("cannot merge {} into {}", b.kind(), a.kind()))),
        }
    }
    fn snapshot(&self) -> HeadSnapshot {
        self.inner().snapshot()
    }
    fn restore(snapshot: HeadSnapshot) -> Result<Self> {
        Ok(match snapshot {
            s @ HeadSnapshot::Slda(_) => AnyHead::Slda(SldaHead::restore(s)?),
            s @ HeadSnapshot::Ncm(_) => AnyHead::Ncm(NcmHead::restore(s)?),
        })
    }
}
