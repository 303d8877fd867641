//! Just enough JSON: strict parsing of the cart request body
//! `{"product_id": <uint>, "quantity": <uint>}` and string escaping for output.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddItem {
    pub product_id: u64,
    pub quantity: u64,
}

/// Parses `{"product_id":1,"quantity":2}`: an object with exactly these two keys
/// (any order, JSON whitespace allowed), each a non-negative integer that fits in
/// u64. Unknown or duplicate keys, other value types, fractions, exponents, leading
/// zeros, trailing data and invalid UTF-8 are errors.
pub fn parse_add_item(body: &[u8]) -> Result<AddItem, String> {
    if std::str::from_utf8(body).is_err() {
        return Err("request body is not valid UTF-8".into());
    }
    let mut p = Parser { s: body, i: 0 };
    p.ws();
    if p.s.is_empty() {
        return Err("request body is empty; expected a JSON object".into());
    }
    p.expect(b'{', "expected a JSON object")?;
    let (mut product_id, mut quantity) = (None, None);
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':', "expected ':' after object key")?;
            p.ws();
            let slot = match key.as_str() {
                "product_id" => &mut product_id,
                "quantity" => &mut quantity,
                other => return Err(format!("unknown field {:?}", other)),
            };
            if slot.is_some() {
                return Err(format!("duplicate field {:?}", key));
            }
            *slot = Some(p.uint(&key)?);
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err("expected ',' or '}' in object".into()),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("unexpected data after the JSON object".into());
    }
    match (product_id, quantity) {
        (Some(product_id), Some(quantity)) => Ok(AddItem {
            product_id,
            quantity,
        }),
        (None, _) => Err("missing field \"product_id\"".into()),
        (_, None) => Err("missing field \"quantity\"".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        if c.is_some() {
            self.i += 1;
        }
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, msg: &str) -> Result<(), String> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(msg.to_string())
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .next()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or("invalid \\u escape in string")?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"', "expected a string (object key)")?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err("unpaired surrogate in string".into());
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err("unpaired surrogate in string".into());
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or("unpaired surrogate in string")?
                        }
                        _ => return Err("invalid escape in string".into()),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) if c < 0x20 => return Err("control character in string".into()),
                Some(c) => out.push(c),
            }
        }
        // The input was checked to be UTF-8 and escapes produce whole characters.
        String::from_utf8(out).map_err(|_| "invalid UTF-8 in string".to_string())
    }

    /// A JSON number that must be a non-negative integer.
    fn uint(&mut self, key: &str) -> Result<u64, String> {
        let not_uint = || format!("field {:?} must be a non-negative integer", key);
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let digits_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(not_uint()), // string, null, true, object, ...
        }
        let digits_end = self.i;
        let mut fractional = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err("invalid number".into());
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            fractional = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err("invalid number".into());
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            fractional = true;
        }
        if matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err("invalid number (leading zero)".into());
        }
        if negative || fractional {
            return Err(not_uint());
        }
        let mut v: u64 = 0;
        for &d in &self.s[digits_start..digits_end] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or_else(|| format!("field {:?} is out of range", key))?;
        }
        Ok(v)
    }
}

/// Escapes `s` for use inside a JSON string literal (without the quotes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `{"error":"..."}`
pub fn error_body(msg: &str) -> Vec<u8> {
    format!("{{\"error\":\"{}\"}}", escape(msg)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> AddItem {
        parse_add_item(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match parse_add_item(s.as_bytes()) {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_valid_bodies() {
        assert_eq!(
            ok(r#"{"product_id":1,"quantity":2}"#),
            AddItem {
                product_id: 1,
                quantity: 2
            }
        );
        assert_eq!(
            ok(" \n{ \"quantity\" : 0 ,\t\"product_id\":6 }\r\n"),
            AddItem {
                product_id: 6,
                quantity: 0
            }
        );
        assert_eq!(
            ok(r#"{"product\u005fid":3,"quantity":18446744073709551615}"#).quantity,
            u64::MAX
        );
    }

    #[test]
    fn rejects_bad_bodies() {
        for bad in [
            "",
            "   ",
            "[]",
            "{}",
            "null",
            r#"{"product_id":1}"#,
            r#"{"quantity":1}"#,
            r#"{"product_id":1,"quantity":2,}"#,
            r#"{"product_id":1,"quantity":2} x"#,
            r#"{"product_id":1,"quantity":2}{}"#,
            r#"{"product_id":1,"product_id":1,"quantity":2}"#,
            r#"{"product_id":1,"quantity":2,"coupon":7}"#,
            r#"{"product_id":"1","quantity":2}"#,
            r#"{"product_id":1.0,"quantity":2}"#,
            r#"{"product_id":1e2,"quantity":2}"#,
            r#"{"product_id":-1,"quantity":2}"#,
            r#"{"product_id":01,"quantity":2}"#,
            r#"{"product_id":1,"quantity":18446744073709551616}"#,
            r#"{"product_id":true,"quantity":2}"#,
            r#"{"product_id":1 "quantity":2}"#,
            r#"{product_id:1,quantity:2}"#,
            r#"{'product_id':1,'quantity':2}"#,
            r#"{"product_id":1,"quantity":2"#,
            r#"{"product_id":1,"quantity":"#,
            r#"{"prod"#,
            r#"{"a\qb":1}"#,
            r#"{"\ud800":1}"#,
            "{\"product_id\":1,\"quan\ttity\":2}",
            "{\"product_id\":1,\"quantity\":2,\"\u{e9}\":1}",
        ] {
            err(bad);
        }
        assert!(parse_add_item(b"{\"product_id\":1,\"quantity\":\xff}").is_err());
    }

    #[test]
    fn error_messages_are_specific() {
        assert!(err(r#"{"product_id":1}"#).contains("quantity"));
        assert!(err(r#"{"product_id":1.5,"quantity":1}"#).contains("non-negative integer"));
        assert!(err(r#"{"x":1}"#).contains("unknown field"));
        assert!(err(r#"{"quantity":1,"quantity":1}"#).contains("duplicate"));
    }

    #[test]
    fn escapes_strings() {
        assert_eq!(escape("a\"b\\c\nd\u{1}é"), "a\\\"b\\\\c\\nd\\u0001é");
        assert_eq!(
            error_body("no \"such\" thing"),
            br#"{"error":"no \"such\" thing"}"#.to_vec()
        );
    }
}
