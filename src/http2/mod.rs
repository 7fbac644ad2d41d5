//! gantry's own HTTP/2, built for proxying.
//!
//! A general HTTP/2 library serves every stream to a task of its own and keeps each
//! connection's streams behind one lock; a proxy needs neither. Here one task owns
//! each connection, client-facing or server-facing, and a call passes between the
//! two as an [`crate::upstream::exchange::Exchange`]: the client connection puts the
//! request in, the server connection takes it out and puts the response in. Frames
//! are cut from one read buffer and written into one write buffer per connection,
//! so a round of many calls costs one read and one write on each socket.
//!
//! - [`driver`]: the poll loop every connection task runs (read, news from other
//!   tasks, window credit, fair turns, one batched write), around a role's
//!   [`driver::Handler`];
//! - [`frame`]: the frame header, types, flags, error codes, and frame writers;
//! - [`hpack`]: header compression (RFC 7541);
//! - [`stream`]: stream states (RFC 9113 §5.1) and the legality of every stream
//!   frame, decided in one place; the closed-stream record; fair sending order;
//! - [`wire`]: one connection's framing state (settings, connection windows, header
//!   blocks, PING and SETTINGS answers);
//! - [`head`]: request and response heads to and from header blocks, with the
//!   checks RFC 9113 §8 makes of them.

pub mod driver;
pub mod frame;
pub mod head;
pub mod hpack;
pub mod stream;
pub mod wire;
