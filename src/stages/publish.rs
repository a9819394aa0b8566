//! Publish: the sink. Collects each batch's assignments and labels for the run's outputs;
//! the place where batches leave the engine (the Redis bus plugs in here).

use std::collections::HashMap;

use super::cluster::{Assignment, Placement};
use super::label::LabeledBatch;
use crate::error::Result;
use crate::label::StoryLabel;
use crate::pipeline::Stage;

/// What the run produced, gathered batch by batch.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every assignment, in processing order.
    pub assignments: Vec<Assignment>,
    /// The latest label of every touched story.
    pub labels: HashMap<String, StoryLabel>,
    /// Story ids in first-touched order.
    pub touched: Vec<String>,
    /// Articles clustered (opened or joined), i.e. not already known.
    pub processed: usize,
    /// Articles already in the state.
    pub known: usize,
    /// Story events, in order.
    pub events: Vec<super::cluster::StoryEvent>,
}

/// The publish stage.
#[derive(Debug, Default)]
pub struct PublishStage {
    collected: Collected,
    progress: Option<indicatif::ProgressBar>,
}

impl PublishStage {
    /// A sink reporting progress to `progress`, if any.
    pub fn new(progress: Option<indicatif::ProgressBar>) -> Self {
        PublishStage {
            collected: Collected::default(),
            progress,
        }
    }

    /// Everything collected.
    pub fn into_collected(self) -> Collected {
        self.collected
    }
}

impl Stage for PublishStage {
    type In = LabeledBatch;
    type Out = ();

    fn name(&self) -> &'static str {
        "publish"
    }

    fn process(&mut self, batch: LabeledBatch) -> Result<()> {
        let c = &mut self.collected;
        for a in &batch.assignments {
            match a.placement {
                Placement::Known => c.known += 1,
                Placement::Opened | Placement::Joined => c.processed += 1,
            }
        }
        for (id, label) in batch.labels {
            if c.labels.insert(id.clone(), label).is_none() {
                c.touched.push(id);
            }
        }
        if let Some(p) = &self.progress {
            p.inc(batch.assignments.len() as u64);
        }
        c.assignments.extend(batch.assignments);
        c.events.extend(batch.events);
        Ok(())
    }
}
