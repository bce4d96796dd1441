//! A one-pass reader for the flat downstream messages that make up almost all traffic (group
//! and server messages, acks): one object whose values are strings without escapes,
//! non-negative integers, booleans or `null`. Anything else (escapes, nested values, negative
//! or fractional numbers, duplicate fields, malformed input) returns `None`, and the caller
//! falls back to serde, which stays the reference for every message.

use std::borrow::Cow;

use super::Wire;

/// One scalar value, borrowed from the frame.
enum Value<'a> {
    /// A string's contents (no escapes) and its raw JSON text (with the quotes).
    Str(&'a str, &'a str),
    /// A non-negative integer and its raw JSON text.
    Num(u64, &'a str),
    /// `true` or `false` and its raw JSON text.
    Bool(bool, &'a str),
    Null,
}

impl<'a> Value<'a> {
    fn text(&self) -> Option<Option<&'a str>> {
        match self {
            Value::Str(s, _) => Some(Some(s)),
            Value::Null => Some(None),
            _ => None,
        }
    }

    fn number(&self) -> Option<Option<u64>> {
        match self {
            Value::Num(n, _) => Some(Some(*n)),
            Value::Null => Some(None),
            _ => None,
        }
    }

    fn raw(&self) -> Option<&'a str> {
        match self {
            Value::Str(_, raw) | Value::Num(_, raw) | Value::Bool(_, raw) => Some(raw),
            Value::Null => None,
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters; the cursor is on its opening quote.
    fn string(&mut self) -> Option<(&'a str, &'a str)> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        loop {
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        // Both ends are ASCII quotes, so the slices fall on character boundaries.
        Some((&self.text[start + 1..i], &self.text[start..=i]))
    }

    fn literal(&mut self, word: &str) -> Option<&'a str> {
        let start = self.pos;
        self.text[start..].starts_with(word).then(|| {
            self.pos += word.len();
            &self.text[start..self.pos]
        })
    }

    fn number(&mut self) -> Option<(u64, &'a str)> {
        let start = self.pos;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        let raw = &self.text[start..self.pos];
        // A fraction, an exponent or a leading zero is left to serde.
        let plain = !(raw.len() > 1 && raw.starts_with('0'));
        (plain && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some((n, raw))
    }

    fn value(&mut self) -> Option<Value<'a>> {
        self.skip_ws();
        Some(match self.peek()? {
            b'"' => {
                let (s, raw) = self.string()?;
                Value::Str(s, raw)
            }
            b't' => Value::Bool(true, self.literal("true")?),
            b'f' => Value::Bool(false, self.literal("false")?),
            b'n' => {
                self.literal("null")?;
                Value::Null
            }
            b'0'..=b'9' => {
                let (n, raw) = self.number()?;
                Value::Num(n, raw)
            }
            _ => return None,
        })
    }
}

/// Sets `slot` once; a second occurrence of the field is left to serde (which rejects it).
fn set<T>(slot: &mut Option<T>, seen: &mut bool, value: Option<T>) -> Option<()> {
    if std::mem::replace(seen, true) {
        return None;
    }
    *slot = value;
    Some(())
}

/// Reads `text` if it is a flat message; `None` means "ask serde".
pub(super) fn scan<'a>(text: &'a str) -> Option<Wire<'a>> {
    let mut r = Reader { text, pos: 0 };
    let mut w = Wire::default();
    let mut seen = [false; 19];
    r.eat(b'{')?;
    r.skip_ws();
    if r.peek()? == b'}' {
        r.pos += 1;
    } else {
        loop {
            r.skip_ws();
            if r.peek()? != b'"' {
                return None;
            }
            let (key, _) = r.string()?;
            r.eat(b':')?;
            let v = r.value()?;
            let owned = |v: &Value<'_>| v.text().map(|t| t.map(str::to_owned));
            let borrowed = |v: &Value<'a>| v.text().map(|t| t.map(Cow::Borrowed));
            match key {
                "type" => set(&mut w.kind, &mut seen[0], borrowed(&v)?)?,
                "ackId" => set(&mut w.ack_id, &mut seen[1], v.number()?)?,
                "success" => {
                    let b = match v {
                        Value::Bool(b, _) => Some(b),
                        Value::Null => None,
                        _ => return None,
                    };
                    set(&mut w.success, &mut seen[2], b)?
                }
                // An error object is nested: serde reads it.
                "error" => match v {
                    Value::Null => set(&mut w.error, &mut seen[3], None)?,
                    _ => return None,
                },
                "from" => set(&mut w.from, &mut seen[4], borrowed(&v)?)?,
                "group" => set(&mut w.group, &mut seen[5], owned(&v)?)?,
                "fromUserId" => set(&mut w.from_user_id, &mut seen[6], owned(&v)?)?,
                "dataType" => set(&mut w.data_type, &mut seen[7], borrowed(&v)?)?,
                "data" => set(&mut w.data, &mut seen[8], v.raw())?,
                "sequenceId" => set(&mut w.sequence_id, &mut seen[9], v.number()?)?,
                "event" => set(&mut w.event, &mut seen[10], borrowed(&v)?)?,
                "userId" => set(&mut w.user_id, &mut seen[11], owned(&v)?)?,
                "connectionId" => set(&mut w.connection_id, &mut seen[12], owned(&v)?)?,
                "reconnectionToken" => set(&mut w.reconnection_token, &mut seen[13], owned(&v)?)?,
                "message" => set(&mut w.message, &mut seen[14], owned(&v)?)?,
                "invocationId" => set(&mut w.invocation_id, &mut seen[15], owned(&v)?)?,
                "streamId" => set(&mut w.stream_id, &mut seen[16], owned(&v)?)?,
                "expectedSequenceId" => {
                    set(&mut w.expected_sequence_id, &mut seen[17], v.number()?)?
                }
                "name" => set(&mut w.name, &mut seen[18], owned(&v)?)?,
                // Nested objects and arrays are left to serde.
                "stream" | "items" => match v {
                    Value::Null => {}
                    _ => return None,
                },
                _ => {}
            }
            r.skip_ws();
            match r.peek()? {
                b',' => r.pos += 1,
                b'}' => {
                    r.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.skip_ws();
    (r.pos == text.len()).then_some(w)
}
