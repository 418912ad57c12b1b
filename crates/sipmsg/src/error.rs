//! The one error type of this crate.

/// Why a SIP message, or a header value inside one, could not be parsed.
///
/// Every variant maps to a short, static reason ([`ParseError::reason_phrase`]) suitable
/// for the reason phrase of a `400 Bad Request` (or `505`/`513`, see [`ParseError::status`]),
/// and to a stable class name ([`ParseError::kind`]) used by the test corpus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but CRLFs (or nothing at all).
    #[error("empty message")]
    Empty,
    /// The message (or a stream frame) exceeds the configured size limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes seen so far (at least).
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The header section is not terminated by an empty line.
    #[error("header section not terminated by an empty line")]
    Incomplete,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line")]
    BadStartLine,
    /// The SIP version is not `SIP/2.0`.
    #[error("unsupported SIP version")]
    BadVersion,
    /// The method is not an RFC 3261 token.
    #[error("malformed method")]
    BadMethod,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    BadStatusCode,
    /// The Request-URI cannot be parsed, or carries headers (RFC 3261 §19.1.5).
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// A URI cannot be parsed.
    #[error("malformed URI")]
    BadUri,
    /// A header line has no `:`.
    #[error("header line without a colon")]
    MissingColon,
    /// A header name is not a token, or a continuation line has no header to continue.
    #[error("malformed header name")]
    BadHeaderName,
    /// A control character outside a quoted-pair.
    #[error("control character in message head")]
    ControlCharacter,
    /// The message head is not UTF-8.
    #[error("message head is not valid UTF-8")]
    InvalidUtf8,
    /// Content-Length is not a non-negative decimal number, or appears more than once.
    #[error("malformed or repeated Content-Length")]
    BadContentLength,
    /// Content-Length announces more bytes than the datagram holds.
    #[error("Content-Length {declared} exceeds the {available} body bytes available")]
    BodyTooShort {
        /// The Content-Length value.
        declared: usize,
        /// Bytes present after the header section.
        available: usize,
    },
    /// A message on a stream transport has no Content-Length (RFC 3261 §18.3).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// A header required by RFC 3261 §8.1.1 is missing (canonical name given).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A single-valued header appears more than once (canonical name given).
    #[error("repeated {0} header")]
    DuplicateHeader(&'static str),
    /// A Via value cannot be parsed.
    #[error("malformed Via")]
    BadVia,
    /// A CSeq value cannot be parsed, or its number exceeds 32 bits.
    #[error("malformed CSeq")]
    BadCSeq,
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Max-Forwards is not a number in 0..=255.
    #[error("malformed Max-Forwards")]
    BadMaxForwards,
    /// Call-ID is empty or contains whitespace.
    #[error("malformed Call-ID")]
    BadCallId,
    /// A name-addr / addr-spec value cannot be parsed.
    #[error("malformed name-addr")]
    BadNameAddr,
    /// The From header cannot be parsed.
    #[error("malformed From")]
    BadFrom,
    /// The To header cannot be parsed.
    #[error("malformed To")]
    BadTo,
    /// A Contact value cannot be parsed.
    #[error("malformed Contact")]
    BadContact,
}

impl ParseError {
    /// A static reason phrase for the error response, e.g. `"Bad Request - Malformed Via"`.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            Self::Empty => "Bad Request - Empty Message",
            Self::TooLarge { .. } => "Message Too Large",
            Self::Incomplete => "Bad Request - Truncated Header Section",
            Self::BadStartLine => "Bad Request - Malformed Start Line",
            Self::BadVersion => "Version Not Supported",
            Self::BadMethod => "Bad Request - Malformed Method",
            Self::BadStatusCode => "Bad Request - Malformed Status Code",
            Self::BadRequestUri => "Bad Request - Malformed Request-URI",
            Self::BadUri => "Bad Request - Malformed URI",
            Self::MissingColon => "Bad Request - Header Without Colon",
            Self::BadHeaderName => "Bad Request - Malformed Header Name",
            Self::ControlCharacter => "Bad Request - Control Character",
            Self::InvalidUtf8 => "Bad Request - Invalid UTF-8",
            Self::BadContentLength => "Bad Request - Malformed Content-Length",
            Self::BodyTooShort { .. } => "Bad Request - Content-Length Exceeds Body",
            Self::MissingContentLength => "Bad Request - Missing Content-Length",
            Self::MissingHeader(name) => match *name {
                "Via" => "Bad Request - Missing Via",
                "From" => "Bad Request - Missing From",
                "To" => "Bad Request - Missing To",
                "Call-ID" => "Bad Request - Missing Call-ID",
                "CSeq" => "Bad Request - Missing CSeq",
                _ => "Bad Request - Missing Required Header",
            },
            Self::DuplicateHeader(_) => "Bad Request - Repeated Single-Valued Header",
            Self::BadVia => "Bad Request - Malformed Via",
            Self::BadCSeq => "Bad Request - Malformed CSeq",
            Self::CSeqMethodMismatch => "Bad Request - CSeq Method Mismatch",
            Self::BadMaxForwards => "Bad Request - Malformed Max-Forwards",
            Self::BadCallId => "Bad Request - Malformed Call-ID",
            Self::BadNameAddr => "Bad Request - Malformed Address",
            Self::BadFrom => "Bad Request - Malformed From",
            Self::BadTo => "Bad Request - Malformed To",
            Self::BadContact => "Bad Request - Malformed Contact",
        }
    }

    /// The status code to answer with: 505 for a bad version, 513 for an oversized
    /// message, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadVersion => 505,
            Self::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    /// The variant name (`"BadVia"`, `"BodyTooShort"` …): a stable error class for logs,
    /// metrics labels and the test corpus file names.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::TooLarge { .. } => "TooLarge",
            Self::Incomplete => "Incomplete",
            Self::BadStartLine => "BadStartLine",
            Self::BadVersion => "BadVersion",
            Self::BadMethod => "BadMethod",
            Self::BadStatusCode => "BadStatusCode",
            Self::BadRequestUri => "BadRequestUri",
            Self::BadUri => "BadUri",
            Self::MissingColon => "MissingColon",
            Self::BadHeaderName => "BadHeaderName",
            Self::ControlCharacter => "ControlCharacter",
            Self::InvalidUtf8 => "InvalidUtf8",
            Self::BadContentLength => "BadContentLength",
            Self::BodyTooShort { .. } => "BodyTooShort",
            Self::MissingContentLength => "MissingContentLength",
            Self::MissingHeader(_) => "MissingHeader",
            Self::DuplicateHeader(_) => "DuplicateHeader",
            Self::BadVia => "BadVia",
            Self::BadCSeq => "BadCSeq",
            Self::CSeqMethodMismatch => "CSeqMethodMismatch",
            Self::BadMaxForwards => "BadMaxForwards",
            Self::BadCallId => "BadCallId",
            Self::BadNameAddr => "BadNameAddr",
            Self::BadFrom => "BadFrom",
            Self::BadTo => "BadTo",
            Self::BadContact => "BadContact",
        }
    }
}
