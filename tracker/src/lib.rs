//! WebTorrent-compatible tracker: protocol types and server.
