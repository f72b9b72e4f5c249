"""The sidecar at run time: poller, leadership, published state, collector, HTTP server, pages."""
