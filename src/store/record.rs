//! The binary codec of one active story's state record (a field of `perps:state:stories`).
//!
//! ```text
//! 0..4    magic "PNS" + codec version (1)
//! 4..12   xxh3-64 of everything after it, little-endian: the record's digest
//! 12..    sections, each a little-endian u32 count, then its items:
//!           the story's other fields as JSON (bytes)
//!           centroid_sum (f32), the representative's vector (f32),
//!           term_sum ids (u32) then their weights (f32, same count),
//!           url_keys (u64), times (i64), stored sketches (u32 words, see
//!           `syndication::stored_words`)
//! ```
//!
//! The numeric arrays are most of a story (vectors, sketches, keys): raw little-endian they
//! are a quarter smaller than base64 and decode by copying. The rest (titles, urls, tallies)
//! stays JSON, so a field added to `Story` needs no codec change. Round trips are exact to the
//! bit, so a story continued from Redis scores as it would have in one run.

use crate::story::Story;

/// Magic and codec version of a binary story record.
pub const MAGIC: [u8; 4] = *b"PNS\x01";

const HEAD: usize = 12;

/// Encodes `story` as a record; returns its digest (the xxh3 of the record's body, also in
/// the record) and the bytes. The story is left as it was.
///
/// # Errors
/// When the JSON part cannot be encoded (it always can for a valid story).
pub fn encode(story: &mut Story) -> Result<(u64, Vec<u8>), String> {
    // The arrays go out raw: take them out for the JSON part, then put them back.
    let centroid = std::mem::take(&mut story.centroid_sum);
    let rep = std::mem::take(&mut story.rep.vector);
    let terms = std::mem::take(&mut story.term_sum);
    let urls = std::mem::take(&mut story.url_keys);
    let times = std::mem::take(&mut story.times);
    let originals = std::mem::take(&mut story.originals);
    let json = serde_json::to_vec(&*story);
    story.centroid_sum = centroid;
    story.rep.vector = rep;
    story.term_sum = terms;
    story.url_keys = urls;
    story.times = times;
    story.originals = originals;
    let json = json.map_err(|e| e.to_string())?;
    let words = crate::syndication::stored_words(&story.originals);
    let size = HEAD
        + 4 * 7
        + json.len()
        + 4 * (story.centroid_sum.len() + story.rep.vector.len() + 2 * story.term_sum.len())
        + 8 * (story.url_keys.len() + story.times.len())
        + 4 * words.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]);
    let count = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    count(&mut out, json.len());
    out.extend_from_slice(&json);
    for v in [&story.centroid_sum, &story.rep.vector] {
        count(&mut out, v.len());
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    count(&mut out, story.term_sum.len());
    out.extend(story.term_sum.iter().flat_map(|(t, _)| t.to_le_bytes()));
    out.extend(story.term_sum.iter().flat_map(|(_, w)| w.to_le_bytes()));
    count(&mut out, story.url_keys.len());
    out.extend(story.url_keys.iter().flat_map(|x| x.to_le_bytes()));
    count(&mut out, story.times.len());
    out.extend(story.times.iter().flat_map(|x| x.to_le_bytes()));
    count(&mut out, words.len());
    out.extend(words.iter().flat_map(|x| x.to_le_bytes()));
    let digest = xxhash_rust::xxh3::xxh3_64(&out[HEAD..]);
    out[4..HEAD].copy_from_slice(&digest.to_le_bytes());
    Ok((digest, out))
}

/// Whether `value` is a record of this codec (by its magic; any version).
pub fn is_binary(value: &[u8]) -> bool {
    value.len() >= 3 && value[..3] == MAGIC[..3]
}

/// Decodes what [`encode`] wrote; returns the digest and the story.
///
/// # Errors
/// A short reason: another codec version, a checksum mismatch, a truncated section, or a
/// malformed field.
pub fn decode(value: &[u8]) -> Result<(u64, Story), String> {
    if value.len() < HEAD {
        return Err("truncated: no header".into());
    }
    if value[..4] != MAGIC {
        return Err(format!(
            "story record codec version {} (this build reads {})",
            value[3], MAGIC[3]
        ));
    }
    let mut want = [0; 8];
    want.copy_from_slice(&value[4..HEAD]);
    let want = u64::from_le_bytes(want);
    let body = &value[HEAD..];
    let got = xxhash_rust::xxh3::xxh3_64(body);
    if got != want {
        return Err(format!(
            "checksum mismatch ({got:016x}, stored {want:016x})"
        ));
    }
    let mut r = Reader { rest: body };
    let json = r.section(1)?;
    let mut story: Story = serde_json::from_slice(json).map_err(|e| format!("not a story: {e}"))?;
    story.centroid_sum = r.words()?.map(f32::from_le_bytes).collect();
    story.rep.vector = r.words()?.map(f32::from_le_bytes).collect();
    let n = r.count()?;
    let ids: Vec<u32> = r
        .take(n, 4)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let weights = r.take(n, 4)?.chunks_exact(4);
    story.term_sum = ids
        .into_iter()
        .zip(weights.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let sorted = story.term_sum.windows(2).all(|p| p[0].0 < p[1].0);
    if !sorted || story.term_sum.iter().any(|(_, w)| !w.is_finite()) {
        return Err("term_sum not sorted by id or not finite".into());
    }
    story.url_keys = r.words()?.map(u64::from_le_bytes).collect();
    story.times = r.words()?.map(i64::from_le_bytes).collect();
    let words: Vec<u32> = r.words()?.map(u32::from_le_bytes).collect();
    story.originals = crate::syndication::from_stored_words(&words).map_err(str::to_string)?;
    if !r.rest.is_empty() {
        return Err(format!("{} bytes after the last section", r.rest.len()));
    }
    Ok((want, story))
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, width: usize) -> Result<&'a [u8], String> {
        let len = n.checked_mul(width).ok_or("section too long")?;
        let (head, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| format!("truncated: a section of {len} bytes"))?;
        self.rest = rest;
        Ok(head)
    }

    fn count(&mut self) -> Result<usize, String> {
        let b = self.take(1, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn section(&mut self, width: usize) -> Result<&'a [u8], String> {
        let n = self.count()?;
        self.take(n, width)
    }

    /// A section of fixed-width items, as byte arrays.
    fn words<const W: usize>(&mut self) -> Result<impl Iterator<Item = [u8; W]> + 'a, String> {
        let bytes = self.section(W)?;
        Ok(bytes.chunks_exact(W).map(|c| {
            let mut a = [0; W];
            a.copy_from_slice(c);
            a
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story() -> Story {
        let mut s: Story = serde_json::from_value(serde_json::json!({
            "id": "s1", "seq": 3, "label": "Exchange hacked", "top_terms": ["hack"],
            "size": 2, "article_ids": ["a1", "a2"], "url_keys": [1, u64::MAX],
            "first_seen": 10, "last_seen": 20, "terms": [["hack", 1.5]],
            "centroid_sum": "", "rep": {"id": "a1", "title": "Exchange hacked", "vector": ""},
            "times": [10, 20], "sources": [["wire", 20]],
        }))
        .unwrap();
        s.centroid_sum = vec![0.25, -1.0, f32::MIN_POSITIVE, 3.0e-9];
        s.rep.vector = vec![0.5, 0.0, -0.0, 1.0];
        s.term_sum = vec![(2, 0.5), (9, 1.25), (40_000, 1.0e-7)];
        s.originals = crate::syndication::from_stored_words(&[0, 40, 3, 5, 9, 11]).unwrap();
        s
    }

    fn bits(s: &Story) -> String {
        // Every field, with floats by their bits.
        let mut v = serde_json::to_value(s).unwrap();
        v["centroid_sum"] = serde_json::json!(
            s.centroid_sum
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        );
        v.to_string()
    }

    #[test]
    fn round_trips_to_the_bit_and_leaves_the_story_as_it_was() {
        let mut s = story();
        let before = bits(&s);
        let (digest, bytes) = encode(&mut s).unwrap();
        assert_eq!(bits(&s), before, "encoding leaves the story as it was");
        assert!(is_binary(&bytes));
        let (d, back) = decode(&bytes).unwrap();
        assert_eq!(d, digest);
        assert_eq!(bits(&back), before);
        assert_eq!(
            back.rep
                .vector
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            s.rep.vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // The same story encodes to the same bytes.
        assert_eq!(encode(&mut back.clone()).unwrap().1, bytes);
    }

    #[test]
    fn a_damaged_record_says_what_is_wrong() {
        let (_, bytes) = encode(&mut story()).unwrap();
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped).unwrap_err().contains("checksum mismatch"));
        assert!(decode(&bytes[..8]).unwrap_err().contains("truncated"));
        let mut other = bytes.clone();
        other[3] = 9;
        assert!(decode(&other).unwrap_err().contains("codec version 9"));
        // A consistent checksum over a cut body: the sections do not add up.
        let mut cut = bytes[..bytes.len() - 4].to_vec();
        let d = xxhash_rust::xxh3::xxh3_64(&cut[HEAD..]);
        cut[4..HEAD].copy_from_slice(&d.to_le_bytes());
        assert!(
            decode(&cut).unwrap_err().contains("truncated"),
            "{:?}",
            decode(&cut).err()
        );
        assert!(!is_binary(b"0123456789abcdef{\"id\":1}"));
    }

    #[test]
    fn it_is_smaller_than_the_json_of_the_same_story() {
        let mut s = story();
        s.centroid_sum = (0..1024).map(|i| (i as f32).sin()).collect();
        s.rep.vector = s.centroid_sum.clone();
        s.term_sum = (0..2048).map(|i| (i * 3, 1.0 / (i + 1) as f32)).collect();
        let json = serde_json::to_vec(&s).unwrap().len();
        let binary = encode(&mut s).unwrap().1.len();
        assert!(binary * 5 < json * 4, "binary {binary} B, JSON {json} B");
    }
}
