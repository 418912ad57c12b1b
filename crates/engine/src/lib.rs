//! Switchboard's queue engine: agents, skills, queues and the company's routing rules.
//!
//! Contains no networking, no database, no async runtime and no clock: time and
//! randomness come in as arguments.
