//! A tiny test-only JSON parser, so request bodies can be checked structurally without serde.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn at(&self, i: usize) -> Option<&Value> {
        match self {
            Value::Arr(a) => a.get(i),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Arr(_))
    }
}

pub fn parse(s: &str) -> Result<Value, String> {
    let b = s.as_bytes();
    let mut p = 0usize;
    let v = value(b, &mut p)?;
    ws(b, &mut p);
    if p != b.len() {
        return Err(format!("trailing data at {p}"));
    }
    Ok(v)
}

fn ws(b: &[u8], p: &mut usize) {
    while *p < b.len() && matches!(b[*p], b' ' | b'\n' | b'\r' | b'\t') {
        *p += 1;
    }
}

fn value(b: &[u8], p: &mut usize) -> Result<Value, String> {
    ws(b, p);
    match b.get(*p) {
        Some(b'{') => {
            *p += 1;
            let mut m = Vec::new();
            ws(b, p);
            if b.get(*p) == Some(&b'}') {
                *p += 1;
                return Ok(Value::Obj(m));
            }
            loop {
                ws(b, p);
                let Value::Str(k) = string(b, p)? else {
                    unreachable!()
                };
                ws(b, p);
                if b.get(*p) != Some(&b':') {
                    return Err(format!("expected ':' at {p}"));
                }
                *p += 1;
                let v = value(b, p)?;
                m.push((k, v));
                ws(b, p);
                match b.get(*p) {
                    Some(b',') => *p += 1,
                    Some(b'}') => {
                        *p += 1;
                        return Ok(Value::Obj(m));
                    }
                    _ => return Err(format!("expected ',' or '}}' at {p}")),
                }
            }
        }
        Some(b'[') => {
            *p += 1;
            let mut a = Vec::new();
            ws(b, p);
            if b.get(*p) == Some(&b']') {
                *p += 1;
                return Ok(Value::Arr(a));
            }
            loop {
                a.push(value(b, p)?);
                ws(b, p);
                match b.get(*p) {
                    Some(b',') => *p += 1,
                    Some(b']') => {
                        *p += 1;
                        return Ok(Value::Arr(a));
                    }
                    _ => return Err(format!("expected ',' or ']' at {p}")),
                }
            }
        }
        Some(b'"') => string(b, p),
        Some(b't') if b[*p..].starts_with(b"true") => {
            *p += 4;
            Ok(Value::Bool(true))
        }
        Some(b'f') if b[*p..].starts_with(b"false") => {
            *p += 5;
            Ok(Value::Bool(false))
        }
        Some(b'n') if b[*p..].starts_with(b"null") => {
            *p += 4;
            Ok(Value::Null)
        }
        Some(c) if *c == b'-' || c.is_ascii_digit() => {
            let start = *p;
            *p += 1;
            while *p < b.len() && matches!(b[*p], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                *p += 1;
            }
            let t = std::str::from_utf8(&b[start..*p]).map_err(|e| e.to_string())?;
            t.parse()
                .map(Value::Num)
                .map_err(|_| format!("bad number {t}"))
        }
        _ => Err(format!("unexpected input at {p}")),
    }
}

fn string(b: &[u8], p: &mut usize) -> Result<Value, String> {
    if b.get(*p) != Some(&b'"') {
        return Err(format!("expected string at {p}"));
    }
    *p += 1;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let Some(&c) = b.get(*p) else {
            return Err("unterminated string".into());
        };
        *p += 1;
        match c {
            b'"' => {
                return String::from_utf8(out)
                    .map(Value::Str)
                    .map_err(|e| e.to_string())
            }
            b'\\' => {
                let Some(&e) = b.get(*p) else {
                    return Err("bad escape".into());
                };
                *p += 1;
                match e {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let h = std::str::from_utf8(b.get(*p..*p + 4).ok_or("short \\u")?)
                            .map_err(|e| e.to_string())?;
                        let n = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                        *p += 4;
                        let ch = char::from_u32(n).ok_or("surrogate")?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err("bad escape".into()),
                }
            }
            c if c < 0x20 => return Err("raw control character in string".into()),
            c => out.push(c),
        }
    }
}
