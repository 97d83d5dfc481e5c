//! Upstream connections: the connector, and the two lanes.
