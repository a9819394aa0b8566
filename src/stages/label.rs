//! Label: names for the stories a batch opened or changed.

use super::cluster::{Assignment, ClusteredBatch};
use crate::error::Result;
use crate::label::{Labeler, StoryLabel};
use crate::pipeline::Stage;

/// A clustered batch with labels for its touched stories.
#[derive(Debug, Default)]
pub struct LabeledBatch {
    /// The batch's assignments.
    pub assignments: Vec<Assignment>,
    /// (story id, label) for each story the batch touched.
    pub labels: Vec<(String, StoryLabel)>,
    /// Stories opened or turned breaking.
    pub events: Vec<super::cluster::StoryEvent>,
}

/// The label stage.
pub struct LabelStage<'a> {
    labeler: &'a dyn Labeler,
}

impl<'a> LabelStage<'a> {
    /// A stage using `labeler`.
    pub fn new(labeler: &'a dyn Labeler) -> Self {
        LabelStage { labeler }
    }
}

impl Stage for LabelStage<'_> {
    type In = ClusteredBatch;
    type Out = LabeledBatch;

    fn name(&self) -> &'static str {
        "label"
    }

    fn process(&mut self, batch: ClusteredBatch) -> Result<LabeledBatch> {
        let labels = self.labeler.label(&batch.touched)?;
        let labels = batch
            .touched
            .into_iter()
            .map(|s| s.id)
            .zip(labels)
            .collect();
        Ok(LabeledBatch {
            assignments: batch.assignments,
            labels,
            events: batch.events,
        })
    }
}
