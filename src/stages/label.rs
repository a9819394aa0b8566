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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Labels each story with its titles joined, and records every call.
    struct Recorder {
        per_run: bool,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Labeler for Recorder {
        fn provider(&self) -> &'static str {
            "recorder"
        }
        fn label(&self, stories: &[StorySnapshot]) -> Result<Vec<StoryLabel>> {
            self.calls
                .lock()
                .unwrap()
                .push(stories.iter().map(|s| s.id.clone()).collect());
            Ok(stories
                .iter()
                .map(|s| StoryLabel {
                    label: s.titles.join(" | "),
                    top_terms: Vec::new(),
                    category: None,
                    direction: None,
                })
                .collect())
        }
        fn per_run(&self) -> bool {
            self.per_run
        }
    }

    fn batch(touched: &[(&str, &[&str])]) -> ClusteredBatch {
        ClusteredBatch {
            events: Vec::new(),
            assignments: Vec::new(),
            touched: touched
                .iter()
                .map(|(id, titles)| StorySnapshot {
                    id: (*id).into(),
                    rep_title: titles[0].into(),
                    terms: Vec::new(),
                    size: titles.len(),
                    titles: titles.iter().map(|t| (*t).to_string()).collect(),
                    symbols: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_per_batch_labeler_labels_every_batch() {
        let r = Recorder {
            per_run: false,
            calls: Mutex::new(Vec::new()),
        };
        let mut stage = LabelStage::new(&r);
        let out = stage.process(batch(&[("s1", &["a"])])).unwrap();
        assert_eq!(out.labels[0].1.label, "a");
        stage.process(batch(&[("s1", &["b"])])).unwrap();
        assert!(stage.finish().unwrap().is_none());
        assert_eq!(r.calls.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_per_run_labeler_is_called_once_with_every_batch_s_titles() {
        let r = Recorder {
            per_run: true,
            calls: Mutex::new(Vec::new()),
        };
        let mut stage = LabelStage::new(&r);
        let first = stage
            .process(batch(&[("s1", &["a"]), ("s2", &["x"])]))
            .unwrap();
        assert!(first.labels.is_empty());
        stage.process(batch(&[("s1", &["b", "a"])])).unwrap();
        let done = stage.finish().unwrap().unwrap();
        assert_eq!(r.calls.lock().unwrap().as_slice(), [vec!["s1", "s2"]]);
        let s1 = &done.labels.iter().find(|(id, _)| id == "s1").unwrap().1;
        assert_eq!(s1.label, "a | b");
    }
}
