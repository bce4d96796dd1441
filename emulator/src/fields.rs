//! The top-level fields of a JSON client message. Most messages are flat objects of known keys
//! with plain values (strings without escapes, unsigned integers, booleans, `null`); [`scan`]
//! reads those in one pass without allocating. Anything else (escapes, nested values, unknown or
//! repeated keys, other number forms, malformed text) falls back to serde, which is the
//! reference: the scanner accepts only text serde accepts, with the same result.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Deepest nesting of arrays and objects in the `data` the emulator accepts and relays (from
/// clients and REST alike): the message carrying it, one level more, stays within the 127
/// levels serde_json accepts by default, which clients built on it (this project's among
/// them) apply.
pub const MAX_DATA_DEPTH: usize = 126;

/// Known fields; `null` is absent. `data` and `stream` are raw JSON text.
#[derive(Debug, Default, PartialEq)]
pub struct Fields<'a> {
    pub ty: Option<Cow<'a, str>>,
    pub group: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub ack_id: Option<u64>,
    pub no_echo: Option<bool>,
    pub data_type: Option<Cow<'a, str>>,
    pub data: Option<&'a str>,
    pub sequence_id: Option<u64>,
    pub invocation_id: Option<Cow<'a, str>>,
    pub stream: Option<&'a str>,
    pub stream_id: Option<Cow<'a, str>>,
    pub stream_sequence_id: Option<u64>,
    /// Raw JSON text (`streamEnd`'s user error).
    pub error: Option<&'a str>,
    /// Raw JSON text (`setGroupState`).
    pub state: Option<&'a str>,
}

/// The serde shape of every client message; unknown fields are ignored, repeated ones refused.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "noEcho")]
    no_echo: Option<bool>,
    #[serde(rename = "dataType", borrow)]
    data_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "sequenceId")]
    sequence_id: Option<u64>,
    #[serde(rename = "invocationId", borrow)]
    invocation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(rename = "streamId", borrow)]
    stream_id: Option<Cow<'a, str>>,
    #[serde(rename = "streamSequenceId")]
    stream_sequence_id: Option<u64>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    state: Option<&'a RawValue>,
}

/// The fields of a JSON object; `Err` is serde's message for text that is not one.
pub fn parse(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    match scan(text) {
        Some(f) => Ok(f),
        None => with_serde(text),
    }
}

fn raw_text(v: Option<&RawValue>) -> Option<&str> {
    v.map(RawValue::get).filter(|t| *t != "null")
}

pub(crate) fn with_serde(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    // `data` is kept as raw text, which serde skips without a depth limit; receivers' parsers
    // have one.
    if nesting_exceeds(text.as_bytes(), MAX_DATA_DEPTH + 1) {
        return Err(serde::de::Error::custom(format!(
            "data nested deeper than {MAX_DATA_DEPTH} levels"
        )));
    }
    let w: Wire<'_> = serde_json::from_str(text)?;
    Ok(Fields {
        ty: w.ty,
        group: w.group,
        event: w.event,
        ack_id: w.ack_id,
        no_echo: w.no_echo,
        data_type: w.data_type,
        data: raw_text(w.data),
        sequence_id: w.sequence_id,
        invocation_id: w.invocation_id,
        stream: raw_text(w.stream),
        stream_id: w.stream_id,
        stream_sequence_id: w.stream_sequence_id,
        error: raw_text(w.error),
        state: raw_text(w.state),
    })
}

/// Whether arrays and objects in `json` nest deeper than `max` (strings are skipped; the text
/// need not be valid JSON).
pub fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string literal without escapes at `i`: its content and the index after it.
fn string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    // Eight bytes at a time while none of them is a quote, a backslash or a control character.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(j..j + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let special = zero_in(v ^ (ONES * u64::from(b'"')))
            | zero_in(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if special != 0 {
            break;
        }
        j += 8;
    }
    loop {
        match *b.get(j)? {
            b'"' => return Some((&text[i + 1..j], j + 1)),
            b'\\' | 0..=0x1f => return None,
            _ => j += 1,
        }
    }
}

/// An unsigned integer in plain JSON form (no sign, fraction or exponent) that fits a u64.
fn unsigned(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let mut j = i;
    let mut n: u64 = 0;
    while let Some(d @ b'0'..=b'9') = b.get(j) {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        j += 1;
    }
    let digits = j - i;
    if digits == 0 || (digits > 1 && b[i] == b'0') || matches!(b.get(j), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, j))
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

/// The one-pass reader for flat messages; `None` hands the text to serde.
pub fn scan(text: &str) -> Option<Fields<'_>> {
    let b = text.as_bytes();
    let mut f = Fields::default();
    let mut seen = 0u16;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, j) = string(text, i)?;
            i = skip_ws(b, j);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let bit = match key {
                "type" => 0,
                "group" => 1,
                "event" => 2,
                "ackId" => 3,
                "noEcho" => 4,
                "dataType" => 5,
                "data" => 6,
                "sequenceId" => 7,
                "invocationId" => 8,
                "stream" => 9,
                "streamId" => 10,
                "streamSequenceId" => 11,
                _ => return None,
            };
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            if let Some(j) = literal(b, i, b"null") {
                i = j;
            } else {
                i = match bit {
                    3 | 7 | 11 => {
                        let (n, j) = unsigned(b, i)?;
                        *(match bit {
                            3 => &mut f.ack_id,
                            7 => &mut f.sequence_id,
                            _ => &mut f.stream_sequence_id,
                        }) = Some(n);
                        j
                    }
                    4 => {
                        let (v, j) = match literal(b, i, b"true") {
                            Some(j) => (true, j),
                            None => (false, literal(b, i, b"false")?),
                        };
                        f.no_echo = Some(v);
                        j
                    }
                    6 | 9 => {
                        let (_, j) = string(text, i)?;
                        let raw = Some(&text[i..j]);
                        if bit == 6 {
                            f.data = raw;
                        } else {
                            f.stream = raw;
                        }
                        j
                    }
                    _ => {
                        let (s, j) = string(text, i)?;
                        let slot = match bit {
                            0 => &mut f.ty,
                            1 => &mut f.group,
                            2 => &mut f.event,
                            5 => &mut f.data_type,
                            8 => &mut f.invocation_id,
                            _ => &mut f.stream_id,
                        };
                        *slot = Some(Cow::Borrowed(s));
                        j
                    }
                };
            }
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(text: &str) -> bool {
        let fast = scan(text);
        if let Some(f) = &fast {
            assert_eq!(
                Some(f),
                with_serde(text).ok().as_ref(),
                "scan accepted {text:?}"
            );
        }
        fast.is_some()
    }

    #[test]
    fn common_messages_take_the_fast_path() {
        for text in [
            r#"{"type":"sendToGroup","group":"g","dataType":"text","data":"hello","ackId":12}"#,
            r#"{"type":"sendToGroup","group":"g","dataType":"json","data":"s","noEcho":true}"#,
            r#" { "type" : "joinGroup" , "group" : "g1" , "ackId" : 0 } "#,
            r#"{"type":"sequenceAck","sequenceId":18446744073709551615}"#,
            r#"{"type":"event","event":"e","dataType":"binary","data":"AQID","ackId":null}"#,
            r#"{"type":"invoke","invocationId":"1","event":"e","data":"x","stream":null}"#,
            r#"{"type":"ping"}"#,
            "{}",
            r#"{"type":"sendToGroup","group":"a long group name","data":"0123456789abcdefghijklmnopqrstuvwxyz~!@#$%^&*()é€"}"#,
            "{\"type\":\"ping\",\"noEcho\":false}\n",
            r#"{"type":"streamData","streamId":"s1","streamSequenceId":7,"dataType":"text","data":"x"}"#,
            r#"{"type":"streamData","streamId":"s1"}"#,
        ] {
            assert!(agrees(text), "{text}");
        }
    }

    #[test]
    fn anything_unusual_goes_to_serde() {
        for text in [
            r#"{"type":"sendToGroup","data":"a\"b"}"#,
            r#"{"type":"event","data":{"a":1}}"#,
            r#"{"type":"ping","extra":1}"#,
            r#"{"type":"ping","type":"ping"}"#,
            r#"{"type":null,"type":"ping"}"#,
            r#"{"ackId":01}"#,
            r#"{"ackId":-1}"#,
            r#"{"ackId":1.0}"#,
            r#"{"ackId":1e3}"#,
            r#"{"ackId":18446744073709551616}"#,
            r#"{"ackId":"1"}"#,
            r#"{"noEcho":1}"#,
            r#"{"noEcho":truex}"#,
            r#"{"type":"ping",}"#,
            r#"{"type":"ping"} x"#,
            r#"{"type":"ping""#,
            r#"{"type":"pi"#,
            "{\"type\":\"p\u{1}\"}",
            "{\"type\":\"abcdefghijklmnop\u{1f}qrstuvwxyz\"}",
            r#"{"type":"abcdefghijklmnopq\rstuvwxyz"}"#,
            r#"[1]"#,
            r#"{"type" "ping"}"#,
            r#"{"type":5}"#,
            r#"{,}"#,
        ] {
            assert!(!agrees(text), "{text}");
        }
    }

    #[test]
    fn data_nesting_is_limited_so_relayed_messages_parse() {
        let data = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let msg =
            |depth: usize| format!(r#"{{"type":"event","event":"e","data":{}}}"#, data(depth));
        assert!(parse(&msg(MAX_DATA_DEPTH)).is_ok());
        // A message relaying the deepest accepted data still parses with serde_json's limit.
        assert!(serde_json::from_str::<serde_json::Value>(&msg(MAX_DATA_DEPTH)).is_ok());
        for depth in [MAX_DATA_DEPTH + 1, 100_000] {
            let e = parse(&msg(depth)).unwrap_err().to_string();
            assert!(e.contains("nested deeper"), "{depth}: {e}");
        }
        // Brackets inside strings do not count.
        let text = format!(
            r#"{{"type":"event","data":"{}\"{}"}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn scan_never_disagrees_with_serde() {
        let keys = [
            "type",
            "group",
            "event",
            "ackId",
            "noEcho",
            "dataType",
            "data",
            "sequenceId",
            "invocationId",
            "stream",
            "other",
            "Type",
        ];
        let values = [
            "\"sendToGroup\"",
            "\"g\"",
            "\"a\\\"b\"",
            "\"\"",
            "0",
            "7",
            "01",
            "-1",
            "1.5",
            "2e3",
            "18446744073709551615",
            "18446744073709551616",
            "null",
            "true",
            "false",
            "{}",
            "{\"a\":[1]}",
            "[]",
            "\"\u{e9}\"",
            "\"0123456789abcdefghij\"",
            "\"0123456789abcdef\\\"gh\"",
            "\"0123456789abcdef\u{1}gh\"",
            "nul",
            "tru",
        ];
        let spaces = ["", " ", "\n", "\t "];
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for _ in 0..100_000 {
            let mut text = String::from(spaces[next(4)]);
            text.push('{');
            for k in 0..next(5) {
                if k > 0 {
                    text.push(',');
                }
                text.push_str(spaces[next(4)]);
                text.push_str(&format!("\"{}\"", keys[next(keys.len())]));
                text.push_str(spaces[next(4)]);
                text.push(':');
                text.push_str(spaces[next(4)]);
                text.push_str(values[next(values.len())]);
                text.push_str(spaces[next(4)]);
            }
            text.push('}');
            text.push_str(spaces[next(4)]);
            match next(8) {
                0 => {
                    let at = next(text.len());
                    if text.is_char_boundary(at) && text.is_char_boundary(at + 1) {
                        text.remove(at);
                    }
                }
                1 => {
                    let at = next(text.len());
                    if text.is_char_boundary(at) {
                        text.insert(at, [',', '"', '}', ':', '5', 'x'][next(6)]);
                    }
                }
                _ => {}
            }
            if agrees(&text) {
                accepted += 1;
            }
        }
        assert!(
            accepted > 1000,
            "only {accepted} generated messages were scanned"
        );
    }
}
