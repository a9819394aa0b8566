//! Publish: the in-process sink. Collects each batch's assignments, labels, counters and
//! events for the run's outcome. Nothing leaves the process here: the caller saves the state
//! and, with Redis, `store::session::Session::finish` publishes the events once the save
//! has succeeded (so a consumer never hears of a story it cannot read).

use std::collections::HashMap;

mod config;
pub mod events;

pub use config::EventsConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(seq: usize, article: &str, story: &str, placement: Placement) -> Assignment {
        Assignment {
            seq,
            article_id: article.into(),
            story_id: story.into(),
            placement,
            duplicate_of: None,
        }
    }

    fn label(text: &str) -> StoryLabel {
        StoryLabel {
            label: text.into(),
            top_terms: Vec::new(),
            category: None,
            direction: None,
        }
    }

    #[test]
    fn counts_known_and_clustered_and_keeps_the_latest_label_in_first_touched_order() {
        let mut sink = PublishStage::new(None);
        sink.process(LabeledBatch {
            assignments: vec![
                assignment(0, "a", "s1", Placement::Opened),
                assignment(1, "b", "s0", Placement::Known),
            ],
            labels: vec![("s1".into(), label("first"))],
            events: Vec::new(),
        })
        .unwrap();
        sink.process(LabeledBatch {
            assignments: vec![
                assignment(2, "c", "s2", Placement::Opened),
                assignment(3, "d", "s1", Placement::Joined),
            ],
            labels: vec![("s2".into(), label("two")), ("s1".into(), label("again"))],
            events: Vec::new(),
        })
        .unwrap();
        let c = sink.into_collected();
        assert_eq!((c.processed, c.known), (3, 1));
        assert_eq!(c.touched, ["s1", "s2"]);
        assert_eq!(c.labels["s1"].label, "again");
        assert_eq!(c.assignments.len(), 4);
    }
}
