//! The default labeler: the title of the story's most central article (kept up to date by the
//! cluster stage) and its most frequent title words. No model, no network.

use super::{Labeler, StoryLabel};
use crate::error::Result;
use crate::label::StorySnapshot;

/// Labels longer than this are cut at a word boundary.
const MAX_LABEL_CHARS: usize = 140;

/// Extractive labeler.
#[derive(Debug, Clone)]
pub struct Extractive {
    top_terms: usize,
}

/// Registry constructor.
///
/// # Errors
/// Never fails; the signature matches [`super::Provider::build`].
pub fn build(
    cfg: &super::LabelConfig,
    _: &crate::api::ApiConfig,
    _: &crate::api::Context,
) -> Result<Box<dyn Labeler>> {
    Ok(Box::new(Extractive::new(cfg.top_terms)))
}

impl Extractive {
    /// A labeler keeping `top_terms` terms per story.
    pub fn new(top_terms: usize) -> Self {
        Extractive { top_terms }
    }

    /// The label of one story.
    pub fn one(&self, s: &StorySnapshot) -> StoryLabel {
        let mut terms: Vec<&(String, f32)> = s.terms.iter().collect();
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        StoryLabel {
            label: shorten(s.rep_title.trim(), MAX_LABEL_CHARS),
            top_terms: terms
                .iter()
                .take(self.top_terms)
                .map(|(t, _)| t.clone())
                .collect(),
            category: None,
            direction: None,
        }
    }
}

impl Labeler for Extractive {
    fn provider(&self) -> &'static str {
        "extractive"
    }

    fn label(&self, stories: &[StorySnapshot]) -> Result<Vec<StoryLabel>> {
        Ok(stories.iter().map(|s| self.one(s)).collect())
    }
}

/// `text` cut to at most `max` characters at a word boundary, with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_rep_title_and_heaviest_terms() {
        let l = Extractive { top_terms: 2 };
        let snap = StorySnapshot {
            id: "s1".into(),
            rep_title: "  Bybit hacked  ".into(),
            terms: vec![
                ("hack".into(), 2.0),
                ("bybit".into(), 3.0),
                ("eth".into(), 2.0),
            ],
            size: 3,
            titles: vec![],
            symbols: vec![],
        };
        let got = l.label(&[snap]).unwrap();
        assert_eq!(got[0].label, "Bybit hacked");
        assert_eq!(got[0].top_terms, ["bybit", "eth"]);
        assert_eq!(shorten("aaa bbb ccc", 9), "aaa bbb…");
    }
}
