//! Harness for the integration tests: spawns the real server and real peers.
