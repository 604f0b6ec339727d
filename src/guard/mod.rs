//! What protects the data plane from abuse: DNS Cookies (RFC 7873/9018)
//! and response rate limiting. Secrets, checks and the limiter's table live
//! here so that the routing table can carry them and the answer core can
//! use them, without either depending on the other.

pub mod cookie;
pub mod rrl;
