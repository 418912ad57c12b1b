//! Runs the SIP corpus (`tests/data/sip`) through four Rust SIP parsers and prints a
//! Markdown table for `docs/sip-parser-comparison.md`.
//!
//! Each parser gets the same two levels, so "rejected" means the same thing everywhere:
//! 1. *parse*: the library's whole-message parser (Content-Length framing included when
//!    the library does it);
//! 2. *typed*: the library's typed views of Via (all), From, To, Call-ID, CSeq and
//!    Contact — the checks a UAS needs before answering (`validate()` in sipmsg).
//!
//! A valid file is *accepted* when both levels succeed; an invalid file is *rejected*
//! when either fails. *Round-trip*: print the parsed message, parse the print, and
//! compare the two prints (printing must be a fixed point). Every call runs under
//! `catch_unwind`; panics are counted. Usage:
//! `cargo run --release -- ../../tests/data/sip` (from this directory).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    ParseErr(String),
    TypedErr(String),
}

trait Parser {
    fn name(&self) -> &'static str;
    /// Both levels; `Ok` only when everything parsed.
    fn check(&self, bytes: &[u8]) -> Outcome;
    /// Print of a parsed message, if the library can print whole messages.
    fn print(&self, bytes: &[u8]) -> Option<Result<Vec<u8>, String>>;
    /// Only level 1, for the throughput measurement.
    fn parse_only(&self, bytes: &[u8]) -> bool;
}

// ------------------------------------------------------------------ switchboard-sipmsg
struct Sipmsg;
impl Parser for Sipmsg {
    fn name(&self) -> &'static str {
        "switchboard-sipmsg 0.1.0"
    }
    fn check(&self, bytes: &[u8]) -> Outcome {
        match switchboard_sipmsg::Message::parse(bytes) {
            Err(e) => Outcome::ParseErr(e.kind().to_owned()),
            Ok(m) => match m.validate() {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::TypedErr(e.kind().to_owned()),
            },
        }
    }
    fn print(&self, bytes: &[u8]) -> Option<Result<Vec<u8>, String>> {
        Some(
            switchboard_sipmsg::Message::parse(bytes)
                .map(|m| m.to_bytes())
                .map_err(|e| e.to_string()),
        )
    }
    fn parse_only(&self, bytes: &[u8]) -> bool {
        switchboard_sipmsg::Message::parse(bytes).is_ok()
    }
}

// ------------------------------------------------------------------ rsip-style crates
/// rsip 0.4 and rsipstack's `sip` module share one API (the latter is a fork).
macro_rules! rsip_like {
    ($ty:ident, $label:expr, $krate:path, $normalise:expr) => {
        struct $ty;
        impl $ty {
            fn input(&self, bytes: &[u8]) -> Vec<u8> {
                if $normalise {
                    normalise(bytes)
                } else {
                    bytes.to_vec()
                }
            }
        }
        impl Parser for $ty {
            fn name(&self) -> &'static str {
                $label
            }
            fn check(&self, bytes: &[u8]) -> Outcome {
                use k::prelude::*;
                use $krate as k;
                let input = self.input(bytes);
                let msg = match k::SipMessage::try_from(input.as_slice()) {
                    Ok(m) => m,
                    Err(e) => return Outcome::ParseErr(short(&e.to_string())),
                };
                let typed = || -> Result<(), String> {
                    let e = |e: k::Error| short(&e.to_string());
                    let via = msg.via_header().map_err(e)?;
                    via.typed().map_err(e)?;
                    msg.from_header().map_err(e)?.typed().map_err(e)?;
                    msg.to_header().map_err(e)?.typed().map_err(e)?;
                    msg.call_id_header().map_err(e)?;
                    msg.cseq_header().map_err(e)?.typed().map_err(e)?;
                    if let Ok(c) = msg.contact_header() {
                        c.typed().map_err(e)?;
                    }
                    Ok(())
                };
                match typed() {
                    Ok(()) => Outcome::Ok,
                    Err(e) => Outcome::TypedErr(e),
                }
            }
            fn print(&self, bytes: &[u8]) -> Option<Result<Vec<u8>, String>> {
                use $krate as k;
                let input = self.input(bytes);
                Some(
                    k::SipMessage::try_from(input.as_slice())
                        .map(|m| m.to_string().into_bytes())
                        .map_err(|e| short(&e.to_string())),
                )
            }
            fn parse_only(&self, bytes: &[u8]) -> bool {
                use $krate as k;
                k::SipMessage::try_from(bytes).is_ok()
            }
        }
    };
}

rsip_like!(Rsip, "rsip 0.4.0 (+ normaliser)", rsip, true);
rsip_like!(RsipRaw, "rsip 0.4.0 (raw)", rsip, false);
rsip_like!(Rsipstack, "rsipstack 0.7.14 `sip`", rsipstack::sip, false);

/// The normalising front end for rsip: unfold continuation lines, expand compact header
/// names, strip whitespace before ':' in header names. Body untouched.
fn normalise(bytes: &[u8]) -> Vec<u8> {
    let Some(split) = find(bytes, b"\r\n\r\n") else {
        return bytes.to_vec();
    };
    let (head, body) = bytes.split_at(split + 4);
    let head = String::from_utf8_lossy(&head[..split]);
    let mut lines: Vec<String> = Vec::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0
            && (line.starts_with(' ') || line.starts_with('\t'))
            && let Some(last) = lines.last_mut()
        {
            let t = last.trim_end().to_owned();
            *last = format!("{t} {}", line.trim());
            continue;
        }
        if i > 0
            && let Some((name, value)) = line.split_once(':')
        {
            let name = name.trim_end();
            let full = match name.to_ascii_lowercase().as_str() {
                "v" => "Via",
                "f" => "From",
                "t" => "To",
                "i" => "Call-ID",
                "m" => "Contact",
                "l" => "Content-Length",
                "c" => "Content-Type",
                "k" => "Supported",
                "s" => "Subject",
                "e" => "Content-Encoding",
                "o" => "Event",
                "u" => "Allow-Events",
                "r" => "Refer-To",
                "b" => "Referred-By",
                "x" => "Session-Expires",
                _ => name,
            };
            lines.push(format!("{full}: {}", value.trim_start()));
        } else {
            lines.push(line.to_owned());
        }
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn short(s: &str) -> String {
    s.chars()
        .take(60)
        .collect::<String>()
        .replace(['\n', '|'], " ")
}

// ------------------------------------------------------------------ ezk-sip-types
/// ezk-sip-types has line and header parsers but no whole-message type: ezk-sip-core's
/// transport assembles messages. This does the same: PullParser for lines,
/// MessageLine for the start line, Line for each header, Content-Length for the body.
struct Ezk;
impl Ezk {
    fn parse_head(
        &self,
        bytes: &[u8],
    ) -> Result<(ezk_sip_types::msg::MessageLine, ezk_sip_types::Headers), String> {
        use ezk_sip_types::Headers;
        use ezk_sip_types::header::typed::ContentLength;
        use ezk_sip_types::msg::{Line, MessageLine, PullParser};
        use ezk_sip_types::parse::Parse;
        let src = bytes::Bytes::copy_from_slice(bytes);
        let mut parser = PullParser::new(&src, 0);
        let first = parser
            .next()
            .ok_or("empty")?
            .map_err(|_| "incomplete".to_owned())?;
        let first = std::str::from_utf8(first).map_err(|e| e.to_string())?;
        let (_, line) = MessageLine::parse(&src)(first).map_err(|e| short(&format!("{e:?}")))?;
        let mut headers = Headers::new();
        for l in parser.by_ref() {
            let l = l.map_err(|_| "incomplete".to_owned())?;
            let l = std::str::from_utf8(l).map_err(|e| e.to_string())?;
            let (_, h) = Line::parse(&src, l).map_err(|e| short(&format!("{e:?}")))?;
            headers.insert(h.name, h.value);
        }
        let head_end = parser.head_end();
        let cl = match headers.try_get_named::<ContentLength>() {
            Some(r) => r.map_err(|e| short(&e.to_string()))?.0,
            None => bytes.len() - head_end,
        };
        if bytes.len() - head_end < cl {
            return Err("content-length exceeds body".into());
        }
        Ok((line, headers))
    }
}
impl Parser for Ezk {
    fn name(&self) -> &'static str {
        "ezk-sip-types 0.6.5"
    }
    fn check(&self, bytes: &[u8]) -> Outcome {
        use ezk_sip_types::Name;
        use ezk_sip_types::header::typed::{CSeq, CallID, Contact, FromTo, Via};
        let (_, headers) = match self.parse_head(bytes) {
            Ok(x) => x,
            Err(e) => return Outcome::ParseErr(e),
        };
        let typed = || -> Result<(), String> {
            let e = |e: ezk_sip_types::header::HeaderError| short(&e.to_string());
            headers.get_named::<Vec<Via>>().map_err(e)?;
            headers.get::<FromTo>(Name::FROM).map_err(e)?;
            headers.get::<FromTo>(Name::TO).map_err(e)?;
            headers.get_named::<CallID>().map_err(e)?;
            headers.get_named::<CSeq>().map_err(e)?;
            if headers.contains(&Name::CONTACT) {
                headers.get_named::<Vec<Contact>>().map_err(e)?;
            }
            Ok(())
        };
        match typed() {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::TypedErr(e),
        }
    }
    fn print(&self, _bytes: &[u8]) -> Option<Result<Vec<u8>, String>> {
        None
    }
    fn parse_only(&self, bytes: &[u8]) -> bool {
        self.parse_head(bytes).is_ok()
    }
}

// ------------------------------------------------------------------ harness
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| ())
}

fn sip_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "sip"));
    v.sort();
    v
}

#[derive(Default)]
struct Score {
    accepted: usize,
    round_trip: usize,
    rejected: usize,
    rejected_syntax: usize,
    panics: usize,
    failed_valid: Vec<String>,
    accepted_invalid: Vec<String>,
}

#[allow(clippy::disallowed_methods)] // a benchmark reads the clock by definition
fn rate(p: &dyn Parser, bytes: &[u8]) -> Option<f64> {
    if !matches!(guarded(|| p.parse_only(bytes)), Ok(true)) {
        return None;
    }
    let n = 100_000u32;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(p.parse_only(std::hint::black_box(bytes)));
    }
    Some(f64::from(n) / start.elapsed().as_secs_f64())
}

/// Invalid cases that test a validation rule layered on any parser (CSeq/method
/// agreement, repeated single-valued headers, Max-Forwards range, Call-ID shape, required
/// headers) rather than the parser's own syntax handling.
fn is_rule_case(stem: &str) -> bool {
    [
        "CSeqMethodMismatch",
        "DuplicateHeader",
        "BadMaxForwards",
        "BadCallId",
        "MissingHeader",
    ]
    .iter()
    .any(|k| stem.ends_with(k))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../../tests/data/sip".into()),
    );
    let valid = sip_files(&root.join("valid"));
    let invalid = sip_files(&root.join("invalid"));
    let invite = std::fs::read(root.join("valid/real-baresip-invite.sip")).unwrap_or_default();
    let register = std::fs::read(root.join("valid/real-sipp-register.sip")).unwrap_or_default();
    let parsers: Vec<Box<dyn Parser>> = vec![
        Box::new(Sipmsg),
        Box::new(Rsip),
        Box::new(RsipRaw),
        Box::new(Ezk),
        Box::new(Rsipstack),
    ];
    println!(
        "corpus: {} valid, {} invalid files from {}\n",
        valid.len(),
        invalid.len(),
        root.display()
    );
    println!(
        "| parser | valid accepted | round-trip (of accepted) | invalid rejected | of which syntax cases | panics | INVITE parses/s | REGISTER parses/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut details = String::new();
    for p in &parsers {
        let mut s = Score::default();
        for f in &valid {
            let bytes = std::fs::read(f).unwrap_or_default();
            match guarded(|| p.check(&bytes)) {
                Err(()) => {
                    s.panics += 1;
                    s.failed_valid.push(format!("{} (panic)", stem(f)));
                }
                Ok(Outcome::Ok) => {
                    s.accepted += 1;
                    let rt = guarded(|| {
                        let first = p.print(&bytes)?.ok()?;
                        let second = p.print(&first)?.ok()?;
                        Some(first == second)
                    });
                    match rt {
                        Ok(Some(true)) => s.round_trip += 1,
                        Err(()) => s.panics += 1,
                        _ => {}
                    }
                }
                Ok(Outcome::ParseErr(e) | Outcome::TypedErr(e)) => {
                    s.failed_valid.push(format!("{} ({e})", stem(f)));
                }
            }
        }
        let mut syntax_cases = 0;
        for f in &invalid {
            let bytes = std::fs::read(f).unwrap_or_default();
            let syntax = !is_rule_case(&stem(f));
            syntax_cases += usize::from(syntax);
            let rejected = match guarded(|| p.check(&bytes)) {
                Err(()) => {
                    s.panics += 1;
                    true
                }
                Ok(Outcome::Ok) => {
                    s.accepted_invalid.push(stem(f));
                    false
                }
                Ok(_) => true,
            };
            s.rejected += usize::from(rejected);
            s.rejected_syntax += usize::from(rejected && syntax);
        }
        let can_print = guarded(|| p.print(&invite)).ok().flatten().is_some();
        let fmt_rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.0}"));
        println!(
            "| {} | {}/{} | {} | {}/{} | {}/{} | {} | {} | {} |",
            p.name(),
            s.accepted,
            valid.len(),
            if can_print {
                format!("{}/{}", s.round_trip, s.accepted)
            } else {
                "no message printer".to_owned()
            },
            s.rejected,
            invalid.len(),
            s.rejected_syntax,
            syntax_cases,
            s.panics,
            fmt_rate(rate(p.as_ref(), &invite)),
            fmt_rate(rate(p.as_ref(), &register)),
        );
        details.push_str(&format!(
            "\n### {}\nvalid files refused ({}): {}\n\ninvalid files accepted ({}): {}\n",
            p.name(),
            s.failed_valid.len(),
            s.failed_valid.join(", "),
            s.accepted_invalid.len(),
            s.accepted_invalid.join(", ")
        ));
    }
    println!("{details}");
}
