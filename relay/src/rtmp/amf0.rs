//! AMF0 values (the encoding of RTMP commands and metadata): every type a publisher may send,
//! decoded without trusting any length, nesting bounded, and encoded back byte for byte.
//! An AMF3 value (after the `avmplus` switch marker) is kept as its raw bytes: this relay only
//! needs to know where it ends when it is the last value of a message.

use bytes::{BufMut, Bytes};

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Index of an earlier complex value in the same message.
    Reference(u16),
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the epoch and the (unused, by spec zero) time zone.
    Date {
        ms: f64,
        tz: i16,
    },
    LongString(String),
    XmlDocument(String),
    TypedObject {
        class: String,
        properties: Vec<(String, Value)>,
    },
    /// An AMF3 value (marker 0x11): the rest of the input, undecoded.
    Amf3(Bytes),
}

/// Why an AMF0 value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    #[error("AMF0 value truncated")]
    Truncated,
    #[error("unknown AMF0 marker 0x{0:02x}")]
    Marker(u8),
    #[error("AMF0 values nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Deepest nesting of objects and arrays accepted (a real command nests one or two).
pub const MAX_DEPTH: usize = 32;

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) | Value::TypedObject { properties: p, .. } => {
                p.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, n: usize) -> Result<String, Amf0Error> {
        // A name with one bad byte should not cost the client its connection: replace it,
        // as other servers do.
        let b = self.take(n)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let n = self.u16()? as usize;
        self.utf8(n)
    }

    /// `(key, value)*` up to the empty key and the object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.data.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(props);
            }
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        Ok(match self.u8()? {
            0x00 => Value::Number(self.f64()?),
            0x01 => Value::Boolean(self.u8()? != 0),
            0x02 => Value::String(self.short_string()?),
            0x03 => Value::Object(self.properties(depth)?),
            // MovieClip: reserved, never sent; treated as unknown.
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x07 => Value::Reference(self.u16()?),
            0x08 => {
                // The count is a hint (often wrong in the wild): read up to the end marker.
                self.u32()?;
                Value::EcmaArray(self.properties(depth)?)
            }
            // A stray object-end marker where a value should be: the end of a broken object.
            0x09 => Value::Undefined,
            0x0a => {
                let n = self.u32()? as usize;
                // Every element takes at least one byte: a count beyond the input is a lie.
                if n > self.data.len() - self.pos {
                    return Err(Amf0Error::Truncated);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            0x0b => {
                let ms = self.f64()?;
                let tz = self.u16()? as i16;
                Value::Date { ms, tz }
            }
            0x0c => {
                let n = self.u32()? as usize;
                Value::LongString(self.utf8(n)?)
            }
            0x0d => Value::Undefined,
            0x0f => {
                let n = self.u32()? as usize;
                Value::XmlDocument(self.utf8(n)?)
            }
            0x10 => {
                let class = self.short_string()?;
                Value::TypedObject {
                    class,
                    properties: self.properties(depth)?,
                }
            }
            0x11 => {
                let rest = &self.data[self.pos..];
                self.pos = self.data.len();
                Value::Amf3(Bytes::copy_from_slice(rest))
            }
            m => return Err(Amf0Error::Marker(m)),
        })
    }
}

/// Decodes every value in `data` (a command or data message body).
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

/// Decodes one value; returns it and the bytes it took.
pub fn decode(data: &[u8]) -> Result<(Value, usize), Amf0Error> {
    let mut r = Reader { data, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

fn put_short_string(out: &mut Vec<u8>, s: &str) {
    // Longer keys cannot be short strings; truncating keeps the encoding valid.
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (k, v) in props {
        put_short_string(out, k);
        encode(out, v);
    }
    out.put_slice(&[0, 0, 0x09]);
}

/// Appends the encoding of `v` to `out`.
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => {
            out.put_u8(0x00);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(0x01);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) if s.len() <= u16::MAX as usize => {
            out.put_u8(0x02);
            put_short_string(out, s);
        }
        Value::String(s) | Value::LongString(s) => {
            out.put_u8(0x0c);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Value::Object(p) => {
            out.put_u8(0x03);
            put_properties(out, p);
        }
        Value::Null => out.put_u8(0x05),
        Value::Undefined => out.put_u8(0x06),
        Value::Reference(r) => {
            out.put_u8(0x07);
            out.put_u16(*r);
        }
        Value::EcmaArray(p) => {
            out.put_u8(0x08);
            out.put_u32(p.len() as u32);
            put_properties(out, p);
        }
        Value::StrictArray(items) => {
            out.put_u8(0x0a);
            out.put_u32(items.len() as u32);
            for i in items {
                encode(out, i);
            }
        }
        Value::Date { ms, tz } => {
            out.put_u8(0x0b);
            out.put_f64(*ms);
            out.put_i16(*tz);
        }
        Value::XmlDocument(s) => {
            out.put_u8(0x0f);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Value::TypedObject { class, properties } => {
            out.put_u8(0x10);
            put_short_string(out, class);
            put_properties(out, properties);
        }
        Value::Amf3(raw) => {
            out.put_u8(0x11);
            out.put_slice(raw);
        }
    }
}

/// Encodes a list of values (a command).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            "[a-zA-Z0-9@. ]{0,20}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            any::<u16>().prop_map(Value::Reference),
            (any::<i32>(), any::<i16>()).prop_map(|(ms, tz)| Value::Date {
                ms: f64::from(ms),
                tz
            }),
            "[a-z]{0,10}".prop_map(Value::XmlDocument),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let props = proptest::collection::vec(("[a-zA-Z]{1,8}", inner.clone()), 0..5);
            prop_oneof![
                props.clone().prop_map(Value::Object),
                props.clone().prop_map(Value::EcmaArray),
                proptest::collection::vec(inner, 0..5).prop_map(Value::StrictArray),
                ("[A-Z][a-z]{0,8}", props)
                    .prop_map(|(class, properties)| Value::TypedObject { class, properties }),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_round_trips(values in proptest::collection::vec(value(), 0..6)) {
            let bytes = encode_all(&values);
            prop_assert_eq!(decode_all(&bytes).unwrap(), values);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&data);
        }
    }

    #[test]
    fn long_strings_dates_and_amf3() {
        let long = "x".repeat(70_000);
        let v = vec![
            Value::LongString(long.clone()),
            Value::Date { ms: 1.7e12, tz: 0 },
        ];
        let bytes = encode_all(&v);
        assert_eq!(decode_all(&bytes).unwrap(), v);
        // A String too long for a short string goes out as a long one.
        let bytes = encode_all(&[Value::String(long.clone())]);
        assert_eq!(bytes[0], 0x0c);
        // An AMF3 switch takes the rest.
        let mut b = encode_all(&[Value::String("@setDataFrame".into())]);
        b.extend_from_slice(&[0x11, 0x0a, 0x0b, 0x01]);
        let got = decode_all(&b).unwrap();
        assert_eq!(got[1], Value::Amf3(Bytes::from_static(&[0x0a, 0x0b, 0x01])));
    }

    #[test]
    fn hostile_inputs_fail_cleanly() {
        // A strict array claiming 4 billion elements.
        assert_eq!(
            decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]),
            Err(Amf0Error::Truncated)
        );
        // Nesting past the bound.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        deep.push(0x05);
        assert_eq!(decode_all(&deep), Err(Amf0Error::TooDeep));
        assert_eq!(decode_all(&[0x42]), Err(Amf0Error::Marker(0x42)));
    }
}
