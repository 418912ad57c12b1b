//! SIP message syntax for Switchboard: parse, print and frame RFC 3261 messages.
//!
//! Contains no networking code, no clock and no protocol state.
