//! Compact, exact encoding of vectors for state files: little-endian `f32` bytes in base64.
//! Exact round trips matter: a story continued from a saved state must score articles
//! bit-for-bit as it would have in one run.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `v` as base64 of its little-endian bytes.
pub fn encode_f32s(v: &[f32]) -> String {
    encode(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

/// Encodes `v` as base64 of its little-endian bytes.
pub fn encode_u32s(v: &[u32]) -> String {
    encode(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

/// Decodes what [`encode_f32s`] wrote.
///
/// # Errors
/// A short reason when the text is not base64 of a whole number of `f32`s.
pub fn decode_f32s(text: &str) -> Result<Vec<f32>, &'static str> {
    Ok(decode_words(text)?
        .into_iter()
        .map(f32::from_le_bytes)
        .collect())
}

/// Decodes what [`encode_u32s`] wrote.
///
/// # Errors
/// A short reason when the text is not base64 of a whole number of `u32`s.
pub fn decode_u32s(text: &str) -> Result<Vec<u32>, &'static str> {
    Ok(decode_words(text)?
        .into_iter()
        .map(u32::from_le_bytes)
        .collect())
}

/// Encodes `(a, b)` pairs as [`encode_u32s`] of `a, b, a, b, …`.
pub fn encode_u32_pairs(pairs: impl IntoIterator<Item = (u32, u32)>) -> String {
    let flat: Vec<u32> = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
    encode_u32s(&flat)
}

/// Decodes what [`encode_u32_pairs`] wrote.
///
/// # Errors
/// A short reason when the text is not base64 of a whole number of `u32` pairs.
pub fn decode_u32_pairs(text: &str) -> Result<Vec<(u32, u32)>, &'static str> {
    let flat = decode_u32s(text)?;
    if flat.len() % 2 != 0 {
        return Err("odd number of words for pairs");
    }
    Ok(flat.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

fn decode_words(text: &str) -> Result<Vec<[u8; 4]>, &'static str> {
    let bytes = decode(text)?;
    if bytes.len() % 4 != 0 {
        return Err("vector bytes not a multiple of 4");
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

/// Standard base64 with padding.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    let t = text.trim_end_matches('=').as_bytes();
    let mut bytes = Vec::with_capacity(t.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in t {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err("invalid base64"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        for n in 0..9 {
            let v: Vec<f32> = (0..n)
                .map(|i| (i as f32).sin() / 3.0 - f32::MIN_POSITIVE)
                .collect();
            let back = decode_f32s(&encode_f32s(&v)).unwrap();
            assert_eq!(
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
        let u = vec![0, 1, u32::MAX, 7];
        assert_eq!(decode_u32s(&encode_u32s(&u)).unwrap(), u);
        assert!(decode_f32s("!!!!").is_err());
        assert!(decode_f32s("AAA=").is_err());
    }
}
