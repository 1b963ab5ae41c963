//! RTMP ingest, FLV demux and HLS muxing. Knows nothing about signing.
