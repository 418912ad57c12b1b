//! SIP message parse and print throughput (`cargo bench --bench sip_parse`).
//!
//! Messages: the real baresip INVITE (with SDP) and linphone REGISTER from
//! `tests/data/sip/valid`. Baseline, measured in the same run: splitting the same bytes
//! into lines and finding each header's colon — the least any parser must do — so the
//! ratio shows what full parsing (typed start line, URI, header names, unfolding,
//! Content-Length framing, owned values) costs on top.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use switchboard_sipmsg::Message;

const INVITE: &[u8] = include_bytes!("../tests/data/sip/valid/real-baresip-invite.sip");
const REGISTER: &[u8] = include_bytes!("../tests/data/sip/valid/real-linphone-register.sip");

/// The baseline: count header lines and their colons without building anything.
fn scan_lines(bytes: &[u8]) -> usize {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    bytes[..head_end]
        .split(|b| *b == b'\n')
        .filter(|line| line.contains(&b':'))
        .count()
}

fn parse(bytes: &[u8]) -> Message {
    Message::parse(bytes).unwrap()
}

/// Messages per second of `f` over a fixed number of iterations.
#[allow(clippy::disallowed_methods)] // a benchmark reads the clock by definition
fn rate(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        f();
    }
    f64::from(iterations) / start.elapsed().as_secs_f64()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, bytes) in [("invite", INVITE), ("register", REGISTER)] {
        let mut g = c.benchmark_group(format!("sip_parse/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("baseline_scan_lines", |b| {
            b.iter(|| scan_lines(black_box(bytes)))
        });
        g.bench_function("parse", |b| b.iter(|| parse(black_box(bytes))));
        let parsed = parse(bytes);
        g.bench_function("print", |b| b.iter(|| black_box(&parsed).to_bytes()));
        g.bench_function("parse_print", |b| {
            b.iter(|| parse(black_box(bytes)).to_bytes())
        });
        g.finish();
    }
    c.final_summary();

    println!(
        "\nsip_parse summary (messages/s, 200k iterations each; ratio = baseline time / parse time)"
    );
    for (name, bytes) in [("INVITE", INVITE), ("REGISTER", REGISTER)] {
        let n = 200_000;
        let base = rate(n, || {
            black_box(scan_lines(black_box(bytes)));
        });
        let p = rate(n, || {
            black_box(parse(black_box(bytes)));
        });
        let pp = rate(n, || {
            black_box(parse(black_box(bytes)).to_bytes());
        });
        println!(
            "  {name:<8} {} bytes: baseline {base:>12.0}/s  parse {p:>10.0}/s  parse+print {pp:>10.0}/s  parse/baseline speed ratio {:.3}",
            bytes.len(),
            p / base
        );
    }
}
