//! G.711 µ-law (PCMU) and A-law (PCMA): encode, decode and direct transcoding.
//!
//! Written by hand after the ITU-T G.711 reference algorithm (as in Sun's public-domain
//! `g711.c`): the whole codec is three 256-entry tables computed at compile time, and the
//! crates that offer it either pull in a DSP framework or allocate per call. No I/O here.

/// The two G.711 companding laws, with their static RTP payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, RTP payload type 0.
    Pcmu,
    /// A-law, RTP payload type 8.
    Pcma,
}

impl Codec {
    /// Static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec whose rtpmap encoding name is `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// Encodes linear samples, appending one byte per sample to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len());
        match self {
            Codec::Pcmu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Codec::Pcma => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
    }

    /// Decodes companded bytes, appending one sample per byte to `out`.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.reserve(bytes.len());
        let table = match self {
            Codec::Pcmu => &ULAW_TO_LINEAR,
            Codec::Pcma => &ALAW_TO_LINEAR,
        };
        out.extend(bytes.iter().map(|&b| table[usize::from(b)]));
    }

    /// Re-codes a payload of this law into `to`, byte for byte.
    pub fn transcode(self, to: Codec, bytes: &[u8], out: &mut Vec<u8>) {
        out.reserve(bytes.len());
        match (self, to) {
            (Codec::Pcmu, Codec::Pcma) => {
                out.extend(bytes.iter().map(|&b| ULAW_TO_ALAW[usize::from(b)]))
            }
            (Codec::Pcma, Codec::Pcmu) => {
                out.extend(bytes.iter().map(|&b| ALAW_TO_ULAW[usize::from(b)]))
            }
            _ => out.extend_from_slice(bytes),
        }
    }

    /// The byte that encodes silence in this law.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// µ-law encode of one sample.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS;
    // pcm is in 0x84..=0x7FFF, so its top set bit is 7..=14.
    let exponent = (31 - (pcm as u32).leading_zeros()) as i32 - 7;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// µ-law decode of one byte.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law encode of one sample.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment end points of the 13-bit magnitude.
    let mut seg = 0;
    let mut end = 0x1F;
    while seg < 8 && pcm > end {
        seg += 1;
        end = (end << 1) | 1;
    }
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mantissa = if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (((seg << 4) | mantissa) ^ mask) as u8
}

/// A-law decode of one byte.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

macro_rules! build_table {
    ($ty:ty, $f:expr) => {{
        let mut t: [$ty; 256] = [0; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $f(i as u8);
            i += 1;
        }
        t
    }};
}

const fn ulaw_to_alaw(b: u8) -> u8 {
    linear_to_alaw(ulaw_to_linear(b))
}
const fn alaw_to_ulaw(b: u8) -> u8 {
    linear_to_ulaw(alaw_to_linear(b))
}

static ULAW_TO_LINEAR: [i16; 256] = build_table!(i16, ulaw_to_linear);
static ALAW_TO_LINEAR: [i16; 256] = build_table!(i16, alaw_to_linear);
static ULAW_TO_ALAW: [u8; 256] = build_table!(u8, ulaw_to_alaw);
static ALAW_TO_ULAW: [u8; 256] = build_table!(u8, alaw_to_ulaw);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference points from ITU-T G.711 / Sun g711.c.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_encode_is_identity_on_codewords() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
            let back = linear_to_ulaw(ulaw_to_linear(b));
            // µ-law has two codes for zero (0x7F is "negative zero").
            if b != 0x7F {
                assert_eq!(back, b, "ulaw {b:#x}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut enc = Vec::new();
                codec.encode(&[s], &mut enc);
                let mut dec = Vec::new();
                codec.decode(&enc, &mut dec);
                let err = (i32::from(dec[0]) - i32::from(s)).abs();
                // Largest step is 1024 (µ-law) / 1024 (A-law) in the top segment, plus clipping.
                let bound = (i32::from(s).abs() / 16).max(16) + 700;
                assert!(err <= bound, "{codec:?} {s} -> {} err {err}", dec[0]);
            }
        }
    }

    #[test]
    fn transcode_matches_decode_then_encode() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut a = Vec::new();
        Codec::Pcmu.transcode(Codec::Pcma, &bytes, &mut a);
        let mut pcm = Vec::new();
        Codec::Pcmu.decode(&bytes, &mut pcm);
        let mut a2 = Vec::new();
        Codec::Pcma.encode(&pcm, &mut a2);
        assert_eq!(a, a2);
        let mut u = Vec::new();
        Codec::Pcma.transcode(Codec::Pcmu, &a, &mut u);
        assert_eq!(u.len(), 256);
        let mut same = Vec::new();
        Codec::Pcma.transcode(Codec::Pcma, &a, &mut same);
        assert_eq!(same, a);
        assert_eq!(Codec::Pcmu.silence(), linear_to_ulaw(0));
        assert_eq!(Codec::Pcma.silence(), linear_to_alaw(0));
    }
}
