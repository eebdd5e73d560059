//! The web pieces that capture contacts: forms, landing pages and tracked links. Everything a
//! visitor does is recorded through the same event pipeline as the tracking API; the public
//! endpoints (with the visitor cookie and the rate limit) are the server's.

pub mod forms;
pub mod links;
pub mod pages;
