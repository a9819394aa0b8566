//! Label: names for the stories a batch opened or changed.

use std::collections::HashMap;

use super::cluster::{Assignment, ClusteredBatch};
use crate::error::Result;
use crate::label::{Labeler, StoryLabel};
use crate::label::{SNAPSHOT_TITLES, StorySnapshot};
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
    /// For per-run labelers: the latest snapshot of every touched story, first-touched
    /// order, with the titles of all its batches.
    pending: Vec<StorySnapshot>,
    slot: HashMap<String, usize>,
}

impl<'a> LabelStage<'a> {
    /// A stage using `labeler`.
    pub fn new(labeler: &'a dyn Labeler) -> Self {
        LabelStage {
            labeler,
            pending: Vec::new(),
            slot: HashMap::new(),
        }
    }

    fn gather(&mut self, touched: Vec<StorySnapshot>) {
        for s in touched {
            match self.slot.get(&s.id) {
                Some(&i) => {
                    let mut titles = std::mem::take(&mut self.pending[i].titles);
                    for t in &s.titles {
                        if titles.len() < SNAPSHOT_TITLES && !titles.contains(t) {
                            titles.push(t.clone());
                        }
                    }
                    self.pending[i] = StorySnapshot { titles, ..s };
                }
                None => {
                    self.slot.insert(s.id.clone(), self.pending.len());
                    self.pending.push(s);
                }
            }
        }
    }
}

impl Stage for LabelStage<'_> {
    type In = ClusteredBatch;
    type Out = LabeledBatch;

    fn name(&self) -> &'static str {
        "label"
    }

    fn process(&mut self, batch: ClusteredBatch) -> Result<LabeledBatch> {
        if self.labeler.per_run() {
            self.gather(batch.touched);
            return Ok(LabeledBatch {
                assignments: batch.assignments,
                labels: Vec::new(),
                events: batch.events,
            });
        }
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

    fn finish(&mut self) -> Result<Option<LabeledBatch>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let stories = std::mem::take(&mut self.pending);
        let labels = self.labeler.label(&stories)?;
        Ok(Some(LabeledBatch {
            assignments: Vec::new(),
            labels: stories.into_iter().map(|s| s.id).zip(labels).collect(),
            events: Vec::new(),
        }))
    }
}
