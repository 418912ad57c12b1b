//! Sans-IO SIP protocol for Switchboard: transactions (RFC 3261 §17), digest
//! authentication and the agent registrar.
//!
//! Contains no networking code and never reads the OS clock: time is an argument.
