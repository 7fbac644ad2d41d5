//! Property tests of the parsers: filled in by the parser-hardening work.
