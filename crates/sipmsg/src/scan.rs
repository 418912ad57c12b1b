//! Small lexical helpers shared by the parsers (RFC 3261 §25.1 character classes).
//!
//! All helpers work on `&str`/`&[u8]` remainders and never index or do arithmetic that
//! could panic: positions come from `position`/`find` and slices from `split_at_checked`.

use crate::ParseError;
use crate::uri::Param;

/// RFC 3261 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// A non-empty RFC 3261 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space after unfolding: SP or HTAB.
pub(crate) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Trims SP/HTAB on both ends.
pub(crate) fn trim_wsp(s: &str) -> &str {
    s.trim_matches(is_wsp)
}

/// Trims SP/HTAB on both ends of a byte slice.
pub(crate) fn trim_wsp_bytes(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits at the first byte that fails `keep`: `(matched, rest)`.
///
/// `keep` must reject every non-ASCII byte or accept all of them, so the split lands
/// on a character boundary; if it does not, the whole input is returned as `rest`.
pub(crate) fn take_while(s: &str, keep: impl Fn(u8) -> bool) -> (&str, &str) {
    let n = s.bytes().position(|b| !keep(b)).unwrap_or(s.len());
    s.split_at_checked(n).unwrap_or(("", s))
}

/// Splits `s` at every `sep` that is outside a quoted string and outside `<...>`.
pub(crate) fn split_outside(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_quote = false;
    let mut escaped = false;
    let mut depth: u32 = 0;
    s.split(move |c: char| {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            return false;
        }
        match c {
            '"' => {
                in_quote = true;
                false
            }
            '<' => {
                depth = depth.saturating_add(1);
                false
            }
            '>' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => c == sep && depth == 0,
        }
    })
}

/// Checks that a header value holds no control character except HTAB, or one escaped
/// by a quoted-pair inside a quoted string (RFC 3261 §25.1 allows `\` + %x00-09 there).
pub(crate) fn check_controls(value: &[u8]) -> Result<(), ParseError> {
    if !value.iter().any(|b| is_ctl(*b)) {
        return Ok(());
    }
    let mut in_quote = false;
    let mut escaped = false;
    for &b in value {
        if escaped {
            escaped = false;
            if b != b'\r' && b != b'\n' {
                continue;
            }
        }
        if is_ctl(b) {
            return Err(ParseError::ControlCharacter);
        }
        if in_quote && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quote = !in_quote;
        }
    }
    Ok(())
}

/// Control characters other than HTAB.
pub(crate) fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Parses a quoted string at the start of `s` (which must begin with `"`), returning the
/// unescaped content and the remainder after the closing quote.
pub(crate) fn take_quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => {
                let rest = body.get(i.checked_add(1)?..)?;
                return Some((out, rest));
            }
            _ => out.push(c),
        }
    }
    None
}

/// Parses `*( SEMI generic-param )` with optional LWS around `;` and `=`.
///
/// `s` must be empty (after trimming) or begin with `;`. Names must be tokens; values are
/// kept verbatim (quoted strings keep their quotes) and may not contain whitespace
/// outside quotes.
pub(crate) fn parse_params(s: &str) -> Option<Vec<Param>> {
    let s = trim_wsp(s);
    if s.is_empty() {
        return Some(Vec::new());
    }
    let mut parts = split_outside(s.strip_prefix(';')?, ';');
    let mut params = Vec::new();
    for part in parts.by_ref() {
        params.push(parse_param(part)?);
    }
    Some(params)
}

fn parse_param(part: &str) -> Option<Param> {
    let (name, value) = match part.split_once('=') {
        Some((n, v)) => (trim_wsp(n), Some(trim_wsp(v))),
        None => (trim_wsp(part), None),
    };
    if !is_token(name) {
        return None;
    }
    if let Some(v) = value {
        if v.starts_with('"') {
            let (_, rest) = take_quoted(v)?;
            if !rest.is_empty() {
                return None;
            }
        } else if v
            .bytes()
            .any(|b| b == b' ' || b == b'\t' || b == b'"' || is_ctl(b))
        {
            return None;
        }
    }
    Some(Param {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    })
}

/// Finds a parameter by case-insensitive name.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// Sets (replaces or appends) a parameter, matched by case-insensitive name.
pub(crate) fn set_param(params: &mut Vec<Param>, name: &str, value: Option<&str>) {
    match params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) => p.value = value.map(str::to_owned),
        None => params.push(Param::new(name, value)),
    }
}

/// Writes `;name[=value]` for each parameter.
pub(crate) fn fmt_params(f: &mut std::fmt::Formatter<'_>, params: &[Param]) -> std::fmt::Result {
    for p in params {
        match &p.value {
            Some(v) => write!(f, ";{}={}", p.name, v)?,
            None => write!(f, ";{}", p.name)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_brackets() {
        let v = r#""a, \"b" <sip:x@y;a=1,2>;q=1, <sip:z@w>"#;
        let parts: Vec<_> = split_outside(v, ',').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], " <sip:z@w>");
    }

    #[test]
    fn controls_allowed_only_as_quoted_pair() {
        assert!(check_controls(b"\"a\\\x07b\"").is_ok());
        assert!(check_controls(b"a\x07b").is_err());
        assert!(check_controls(b"\"a\x07b\"").is_err());
        assert!(check_controls(b"a\tb").is_ok());
    }

    #[test]
    fn params_with_lws() {
        let p = parse_params(" ; tag = 98asjd8 ;lr; x=\"a b\"").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].value.as_deref(), Some("98asjd8"));
        assert_eq!(p[1].value, None);
        assert_eq!(p[2].value.as_deref(), Some("\"a b\""));
        assert!(parse_params(";;").is_none());
        assert!(parse_params("x").is_none());
    }

    #[test]
    fn quoted_unescapes() {
        let (s, rest) = take_quoted(r#""J \"R\"" <x>"#).unwrap();
        assert_eq!(s, "J \"R\"");
        assert_eq!(rest, " <x>");
        assert!(take_quoted("\"open").is_none());
    }
}
